"""`dt serve`: the Gradio page. Pick a model, set the target return, run an episode and watch it,
with the achieved return beside the target, the return earned against the return-to-go countdown,
and the model's sweep with this run's point on it.

Requests never share state (each episode loads its own weights, Agent and env: catalog.play);
at most `workers` episodes run at once and the rest wait in Gradio's queue. Bad input is one
message in the page (gr.Error), and the server goes on serving. The server binds 127.0.0.1 unless
told otherwise, and serves no file but the videos it made (Gradio's cache; no allowed_paths).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

from decision_transformer.errors import DTError
from decision_transformer.serve import catalog

TITLE = "Decision Transformer: set the target return, watch the agent"


def _figure(width=6.0, height=3.2):
    from matplotlib.figure import Figure                # no pyplot: nothing global, nothing leaks
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def trace_plot(played: catalog.Played):
    """The return earned so far and the return-to-go countdown the model was conditioned on."""
    fig, ax = _figure()
    t = range(len(played.returns_so_far))
    ax.plot(t, played.returns_so_far, label="return so far", color="tab:blue")
    ax.plot(t, played.return_to_go, label="return-to-go (target - return so far)", color="tab:orange")
    ax.axhline(played.target, color="grey", lw=0.8, ls="--", label=f"target {played.target:.0f}")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("env step")
    ax.set_ylabel("return")
    ax.legend(fontsize=8, loc="lower left")
    return fig


def sweep_plot(entry: catalog.Entry, rec: dict | None, point: tuple[float, float] | None = None):
    """Achieved return against target (mean ± std over the sweep's episodes), y = x, the
    dataset's best episode, and this run's (target, return)."""
    fig, ax = _figure()
    if rec:
        res = sorted(rec["results"], key=lambda r: r["target_return"])
        x = [r["target_return"] for r in res]
        m = [r["return_mean"] for r in res]
        s = [r.get("return_std") or 0.0 for r in res]
        ax.plot(x, m, "o-", color="tab:blue", label=f"sweep ({res[0].get('episodes', '?')} episodes per target)")
        ax.fill_between(x, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)], alpha=0.2, color="tab:blue")
    lo, hi = entry.low, entry.high
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="achieved = target")
    if entry.best is not None:
        ax.axhline(entry.best, color="tab:green", lw=0.8, ls=":", label=f"dataset's best episode ({entry.best:.0f})")
    if point is not None:
        ax.plot([point[0]], [point[1]], "*", color="tab:red", ms=14, label=f"this run ({point[1]:.0f})")
    ax.set_xlabel("target return")
    ax.set_ylabel("achieved return")
    ax.set_title(entry.name if rec else f"{entry.name} (sweep not computed yet)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def about(entry: catalog.Entry) -> str:
    card = entry.card
    lines = [f"**{entry.name}**: `{entry.architecture}` on `{entry.env_id}`, checkpoint `{entry.source}`."]
    if card.get("dataset"):
        lines.append(f"Trained on `{card['dataset']}`; the card's target is {card.get('target_return', entry.default):.0f}.")
    lines.append(f"Targets from {entry.low:.0f} ({entry.low_from}) to {entry.high:.0f} "
                 f"({catalog.HIGH_FACTOR}x the dataset's best episode).")
    return " ".join(lines)


class Page:
    """The handlers, over a fixed catalogue of models."""

    def __init__(self, entries: dict[str, catalog.Entry], backend: str = "auto", sweep_points: int = 8,
                 sweep_episodes: int = 5):
        self.entries, self.backend = entries, backend
        self.sweep_points, self.sweep_episodes = sweep_points, sweep_episodes
        self.tmp = Path(tempfile.mkdtemp(prefix="dt-serve-"))
        atexit.register(shutil.rmtree, self.tmp, True)

    def _sweep(self, entry, compute: bool):
        """compute False: a run or a model change never waits for a sweep, it shows a ready one."""
        return catalog.sweep(entry, self.sweep_points, self.sweep_episodes, backend=self.backend, compute=compute)

    @staticmethod
    @contextmanager
    def _one_message(what: str):
        """Any failure inside is one message in the page (gr.Error); an unexpected one also leaves
        its traceback in the server's log."""
        import gradio as gr
        try:
            yield
        except DTError as e:
            raise gr.Error(str(e), print_exception=False)
        except Exception as e:                          # noqa: BLE001 - the page gets one line, the log the rest
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"{what} failed ({type(e).__name__}: {e})", print_exception=False)

    def on_model(self, name):
        """The slider's range and default, the model's description, and its sweep if ready."""
        import gradio as gr
        with self._one_message(f"loading {name}"):
            entry = catalog.entry_named(self.entries, name)
        slider = gr.Slider(minimum=entry.low, maximum=entry.high, value=entry.default,
                           step=catalog.slider_step(entry.low, entry.high), label=f"Target return ({entry.low:.0f} to {entry.high:.0f})")
        return slider, about(entry), sweep_plot(entry, self._sweep(entry, compute=False))

    def on_sweep(self, name):
        """The model's sweep, computed once if it has none (after on_model: the page is usable meanwhile)."""
        with self._one_message(f"the sweep of {name}"):
            entry = catalog.entry_named(self.entries, name)
            rec = self._sweep(entry, compute=True)
        return sweep_plot(entry, rec)

    def on_run(self, name, target, seed):
        with self._one_message("the episode"):
            entry, t, s = catalog.check_request(self.entries, name, target, seed)
            played = catalog.play(entry, t, s, tempfile.mkdtemp(dir=self.tmp), backend=self.backend)
            rec = self._sweep(entry, compute=False)
        n = len(played.rewards)
        text = (f"### Return {played.total:.2f} at target {t:g}\n"
                f"{n} steps, env seed {s}, `{played.backend}` backend. The same episode as "
                f"`dt eval {entry.source} --target-return {t:g} --episodes 1 --num-envs 1 --seed {s}"
                f"{' --backend onnxruntime' if played.backend == 'onnxruntime' else ''}`.")
        return str(played.video), text, trace_plot(played), sweep_plot(entry, rec, (t, played.total))


def build_app(paths, backend: str = "auto", workers: int = 2, queue: int = 32, sweep_points: int = 8,
              sweep_episodes: int = 5):
    """The gr.Blocks of `dt serve` over the models under `paths` (catalog.discover)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")       # no network here; nothing to report
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import gradio as gr
    except ImportError:
        raise DTError("dt serve needs Gradio: pip install -e '.[serve]'")
    import torch
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, usable // workers))   # `workers` episodes at once share the cores
    entries = catalog.discover(paths)
    page = Page(entries, backend, sweep_points, sweep_episodes)
    names = list(entries)
    first = entries[names[0]]
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {TITLE}\nA Decision Transformer acts to earn the return it is asked for. Pick a model, "
                    "set the target, and run one episode: the return it earns is printed beside the target, and "
                    "the point joins the model's sweep of targets.")
        with gr.Row():
            model = gr.Dropdown(names, value=names[0], label="Model", elem_id="model")
            target = gr.Slider(first.low, first.high, value=first.default, step=catalog.slider_step(first.low, first.high),
                               label=f"Target return ({first.low:.0f} to {first.high:.0f})", elem_id="target")
            seed = gr.Number(0, precision=0, minimum=0, maximum=2**31 - 1, label="Env seed", elem_id="seed")
        run = gr.Button("Run an episode", variant="primary", elem_id="run")
        info = gr.Markdown(about(first), elem_id="about")
        with gr.Row():
            video = gr.Video(label="Episode", autoplay=True, loop=True, elem_id="video", interactive=False)
            with gr.Column():
                result = gr.Markdown("Run an episode to see its return.", elem_id="result")
                trace = gr.Plot(label="Return so far and return-to-go", elem_id="trace")
        sweep = gr.Plot(label="Sweep: achieved return against target", elem_id="sweep")
        model.change(page.on_model, inputs=model, outputs=[target, info, sweep]).then(
            page.on_sweep, inputs=model, outputs=sweep)
        demo.load(page.on_model, inputs=model, outputs=[target, info, sweep]).then(
            page.on_sweep, inputs=model, outputs=sweep)
        run.click(page.on_run, inputs=[model, target, seed], outputs=[video, result, trace, sweep])
    demo.queue(default_concurrency_limit=workers, max_size=queue)
    demo.page = page
    return demo


def serve(a) -> None:
    """`dt serve` (cli_options.ServeOptions): build the page, bind, serve until interrupted."""
    from decision_transformer.results import MODELS
    paths = list(a.paths) + list(a.models or ([] if a.paths else [MODELS]))
    demo = build_app(paths, backend=a.backend, workers=a.workers, queue=a.queue, sweep_points=a.sweep_points,
                     sweep_episodes=a.sweep_episodes)
    print(f"dt serve: {len(demo.page.entries)} model(s) on http://{a.host}:{a.port} (Ctrl-C stops it)")
    try:
        demo.launch(server_name=a.host, server_port=a.port, show_error=True, quiet=True, footer_links=[],
                    theme=None)
    except OSError as e:
        raise DTError(f"cannot serve on {a.host}:{a.port}: {e.strerror or e}; pick another --port")
