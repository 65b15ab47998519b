"""`dt video`: one episode rendered offscreen, with the target and running return overlaid.

Rendering is headless through MuJoCo's EGL backend (MUJOCO_GL=egl, Mesa's software EGL is
enough; set MUJOCO_GL=osmesa with libosmesa6 installed as the alternative). Output by suffix:
.mp4 (imageio-ffmpeg) or .gif; written to a temp name and renamed, never half a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decision_transformer.errors import DTError, OptionError


def _overlay(frame: np.ndarray, text: str, above: bool = False) -> np.ndarray:
    """The text on a black bar over the frame's top (MuJoCo: sky), or `above` it (games: the top
    rows are play area)."""
    from PIL import Image, ImageDraw
    frame = np.asarray(frame, dtype=np.uint8)
    if above:
        frame = np.concatenate([np.zeros((22, *frame.shape[1:]), np.uint8), frame])
    img = Image.fromarray(frame)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, img.width, 22], fill=(0, 0, 0))
    d.text((6, 5), text, fill=(255, 255, 255))
    return np.asarray(img)


def _follow_body(env) -> None:
    """Make the MuJoCo camera follow the robot. The v5 locomotion envs ask for it
    (default_camera_config trackbodyid), but gymnasium renders with camera_id=-1, which resets
    the camera to FREE on every frame, so the robot walks out of the picture."""
    import mujoco
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    if renderer is None or renderer.camera_id != -1:            # a named/fixed camera: leave it
        return
    cam = renderer._get_viewer("rgb_array").cam
    renderer.camera_id = None                                  # render with our camera as set
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    if cam.trackbodyid < 1:
        cam.trackbodyid = 1                                    # the first body after the world
    cam.distance = max(cam.distance, 4.0)                      # the whole robot, below the overlay bar


@dataclass
class Episode:
    """One rendered episode: `frames` (every `every`-th step, the first and the last always, the
    overlay drawn), the reward of every step, and the env's steps per second of real time."""
    frames: list
    rewards: np.ndarray
    steps_per_second: float

    @property
    def total(self) -> float:
        return float(self.rewards.sum())


def render_episode(model, env_id: str, target_return: float, seed: int = 0, max_steps: int = 1000,
                   size: int | None = None, every: int = 1, sample: bool = False, temperature: float = 1.0,
                   backend: str = "torch", fast: bool = False) -> Episode:
    """One episode of the exact Agent at `target_return`, env reset with `seed`, rendered offscreen
    (`size`: SIZE x SIZE frames for the MuJoCo envs, default the env's): the steps and return are
    those of `dt eval --episodes 1 --seed SEED` with the same backend. `fast`: MuJoCo scenes drawn
    without shadows or multisampling, which Mesa's software GL draws ~6x faster (bench/serve_episode.py; dt serve)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from decision_transformer.envs import family, make_env
    from decision_transformer.inference.agent import Agent
    if max_steps < 1:
        raise OptionError(f"{{max_steps}} must be >= 1, got {max_steps}")
    env = make_env(env_id, render_mode="rgb_array",
                   **({"width": size, "height": size} if size and family(env_id) == "gym" else {}))
    try:
        agent = Agent(model, num_envs=1, target_return=target_return, deterministic=not sample,
                      temperature=temperature, seed=seed if sample else None, backend=backend)
        obs, _ = env.reset(seed=seed)
        model_vis = getattr(getattr(env.unwrapped, "model", None), "vis", None)
        if fast and model_vis is not None:                # read when the GL context is made, at the first render
            model_vis.quality.offsamples = 0
            env.unwrapped.model.light_castshadow[:] = 0
        try:
            env.render()
            _follow_body(env)
            first = env.render()
        except Exception as e:
            raise DTError(f"offscreen rendering failed ({type(e).__name__}: {str(e)[:160]}); "
                          "MUJOCO_GL=egl needs libegl1 (Mesa), or use MUJOCO_GL=osmesa with libosmesa6")
        every, above, rewards = max(1, int(every)), family(env_id) != "gym", []
        label = lambda: f"target {target_return:.0f}   return {sum(rewards):8.1f}   t {len(rewards)}"  # noqa: E731
        frames = [_overlay(first, label(), above)]
        while len(rewards) < max_steps:
            obs, r, term, trunc, _ = env.step(agent.act(obs[None])[0])
            agent.observe([r], [term or trunc])
            rewards.append(float(r))
            if len(rewards) % every == 0 or term or trunc:
                frames.append(_overlay(env.render(), label(), above))
            if term or trunc:
                break
        dt = getattr(env.unwrapped, "dt", None)
        sps = 1.0 / dt if dt else float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
    return Episode(frames, np.asarray(rewards, np.float64), sps)


def write_video(frames, output, fps: float, gif_colors: int = 64) -> Path:
    """Frames to OUTPUT (.mp4: H.264, yuv420p, which browsers play; .gif: a palette per frame),
    written to a temp name and renamed."""
    import imageio.v2 as imageio

    from decision_transformer.fileio import atomic_path
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DTError(f"cannot write to {out.parent}: {e.strerror or e}")
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".gif":
            from PIL import Image
            pal = [Image.fromarray(f).quantize(colors=gif_colors, method=Image.Quantize.MEDIANCUT) for f in frames]
            pal[0].save(tmp, format="GIF", save_all=True, append_images=pal[1:], loop=0, optimize=True,
                        duration=10 * round(100 / fps))                    # GIF stores centiseconds
        else:
            h, w = frames[0].shape[:2]                                 # yuv420p: even sides
            if h % 2 or w % 2:
                frames = [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0))) for f in frames]
            imageio.mimsave(tmp, frames, format="FFMPEG", fps=fps, macro_block_size=1, codec="libx264",
                            pixelformat="yuv420p")
    return out


def record(model, env_id: str, target_return: float, output, seed: int = 0, max_steps: int = 1000,
           fps: int = 30, size: int | None = None, gif_every: int = 2, gif_colors: int = 64, sample: bool = False,
           temperature: float = 1.0) -> tuple[Path, float, int]:
    """Render one episode; `size` renders SIZE x SIZE frames (default: the env's). A GIF renders
    only every `gif_every`-th step (played at the real speed) with a `gif_colors`-colour palette
    per frame, which keeps a 1000-step episode small (models/*/replay.gif: 128 px, every 4th, 32
    colours: ~1.4 MB for Hopper)."""
    out = Path(output)
    if fps < 1 or max_steps < 1:
        raise OptionError(f"{{fps}} and {{max_steps}} must be >= 1, got {fps} and {max_steps}")
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise DTError(f"{out}: the video must end in .mp4 or .gif")
    from decision_transformer.fileio import check_writable
    check_writable(out)                          # before rendering the episode, not after
    gif = out.suffix.lower() == ".gif"
    every = max(1, int(gif_every)) if gif else 1
    ep = render_episode(model, env_id, target_return, seed=seed, max_steps=max_steps, size=size, every=every,
                        sample=sample, temperature=temperature)
    write_video(ep.frames, out, fps / every if gif else fps, gif_colors=gif_colors)
    return out, ep.total, len(ep.rewards)
