"""`dt video`: one episode rendered offscreen, with the target and running return overlaid.

Rendering is headless through MuJoCo's EGL backend (MUJOCO_GL=egl, Mesa's software EGL is
enough; set MUJOCO_GL=osmesa with libosmesa6 installed as the alternative). Output by suffix:
.mp4 (imageio-ffmpeg) or .gif; written to a temp name and renamed, never half a file.
"""

from __future__ import annotations

import os
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


def record(model, env_id: str, target_return: float, output, seed: int = 0, max_steps: int = 1000,
           fps: int = 30, size: int | None = None, gif_every: int = 2, gif_colors: int = 64, sample: bool = False,
           temperature: float = 1.0) -> tuple[Path, float, int]:
    """Render one episode; `size` renders SIZE x SIZE frames (default: the env's). A GIF renders
    only every `gif_every`-th step (played at the real speed) with a `gif_colors`-colour palette
    per frame, which keeps a 1000-step episode small (models/*/replay.gif: 128 px, every 4th, 32
    colours: ~1.4 MB for Hopper)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import imageio.v2 as imageio

    from decision_transformer.envs import make_env
    from decision_transformer.inference.agent import Agent
    out = Path(output)
    if fps < 1 or max_steps < 1:
        raise OptionError(f"{{fps}} and {{max_steps}} must be >= 1, got {fps} and {max_steps}")
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise DTError(f"{out}: the video must end in .mp4 or .gif")
    from decision_transformer.fileio import check_writable
    check_writable(out)                          # before rendering the episode, not after
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DTError(f"cannot write to {out.parent}: {e.strerror or e}")
    from decision_transformer.envs import family
    env = make_env(env_id, render_mode="rgb_array",
                   **({"width": size, "height": size} if size and family(env_id) == "gym" else {}))
    agent = Agent(model, num_envs=1, target_return=target_return, deterministic=not sample, temperature=temperature,
                  seed=seed if sample else None)
    obs, _ = env.reset(seed=seed)
    frames, ret, n = [], 0.0, 0
    try:
        env.render()
        _follow_body(env)
        first = env.render()
    except Exception as e:
        raise DTError(f"offscreen rendering failed ({type(e).__name__}: {str(e)[:160]}); "
                      "MUJOCO_GL=egl needs libegl1 (Mesa), or use MUJOCO_GL=osmesa with libosmesa6")
    gif = out.suffix.lower() == ".gif"
    every = max(1, int(gif_every)) if gif else 1
    above = family(env_id) != "gym"
    frames.append(_overlay(first, f"target {target_return:.0f}   return {ret:8.1f}   t {n}", above))
    while n < max_steps:
        obs, r, term, trunc, _ = env.step(agent.act(obs[None])[0])
        agent.observe([r], [term or trunc])
        ret += float(r)
        n += 1
        if n % every == 0 or term or trunc:
            frames.append(_overlay(env.render(), f"target {target_return:.0f}   return {ret:8.1f}   t {n}", above))
        if term or trunc:
            break
    env.close()
    from decision_transformer.fileio import atomic_path
    with atomic_path(out) as tmp:
        if gif:
            from PIL import Image
            pal = [Image.fromarray(f).quantize(colors=gif_colors, method=Image.Quantize.MEDIANCUT) for f in frames]
            pal[0].save(tmp, format="GIF", save_all=True, append_images=pal[1:], loop=0, optimize=True,
                        duration=10 * round(100 * every / fps))          # GIF stores centiseconds
        else:
            imageio.mimsave(tmp, frames, fps=fps, macro_block_size=1)
    return out, ret, n
