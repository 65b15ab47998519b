"""One `dt serve` request's episode, timed: the published hopper-medium at target 1800 for
1000 steps, played and rendered (256 px, a frame every 4th step, fast render) and written as MP4,
with each backend; beside it the same episode unrendered (dt eval); then what a frame costs with and
without the scene's shadows. Run with nothing else busy."""

import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

from decision_transformer.evaluation.evaluate import evaluate  # noqa: E402
from decision_transformer.models.checkpoint import from_pretrained  # noqa: E402
from decision_transformer.results import MODELS  # noqa: E402
from decision_transformer.serve import catalog  # noqa: E402


def main(repeats: int = 3):
    torch.set_num_threads(1)                       # a server with 2 workers on 2 cores: one thread each
    e = catalog.entry_of(MODELS / "hopper-medium")
    target, seed = 1800.0, 3                       # an episode that runs its full 1000 steps
    model = from_pretrained(e.checkpoint)
    print(f"{os.uname().machine}, torch {torch.__version__}, 1 thread; {e.name} at target {target:.0f}, seed {seed}")
    base = None
    for backend in ("torch", "onnxruntime"):   # what --backend auto picks where ONNX Runtime is installed
        play, plain = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            p = catalog.play(e, target, seed, tempfile.mkdtemp(), backend=backend)
            play.append(time.perf_counter() - t)
            t = time.perf_counter()
            evaluate(model, e.env_id, [target], episodes=1, num_envs=1, seed=seed, threads=1, backend=backend)
            plain.append(time.perf_counter() - t)
        best, bplain = min(play), min(plain)
        base = base or best
        print(f"{backend:12s} {len(p.rewards)} steps: played + rendered + written {best:.2f} s "
              f"(dt eval's episode alone {bplain:.2f} s); ratio to torch {best / base:.2f}")


def render_cost(frames: int = 40):
    """ms per 256 x 256 Hopper frame in software GL, with the scene's shadows and multisampling and
    without them (what `fast` turns off)."""
    import gymnasium as gym
    import numpy as np
    for fast in (False, True):
        env = gym.make("Hopper-v5", render_mode="rgb_array", width=catalog.VIDEO_SIZE, height=catalog.VIDEO_SIZE)
        env.reset(seed=0)
        if fast:
            env.unwrapped.model.vis.quality.offsamples = 0
            env.unwrapped.model.light_castshadow[:] = 0
        env.render()
        t = time.perf_counter()
        for _ in range(frames):
            env.step(np.zeros(3))
            env.render()
        print(f"render {'without' if fast else 'with'} shadows and multisampling: "
              f"{1000 * (time.perf_counter() - t) / frames:.1f} ms a frame")
        env.close()


if __name__ == "__main__":
    main()
    render_cost()
