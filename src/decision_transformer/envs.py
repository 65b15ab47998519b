"""Making gymnasium environments, with one clear error when an id cannot be made.

Three families, told apart by the id, each made the same way everywhere (collect, train's
checks, eval, sweep, video, behaviour policies):

- MuJoCo and any other registered id: `gym.make(id)` as is.
- MinAtar, `MinAtar/<Game>-v0|v1` (the `minatar` package): frames as images, channels first:
  (C, 10, 10) uint8 in {0, 1}. v1 uses the minimal action set; both keep MinAtar's sticky actions
  (p = 0.1). A time limit of MINATAR_MAX_STEPS steps bounds an episode (MinAtar has none).
- Atari, `ALE/<Game>-v5` (ale-py, ROMs included), with the Decision Transformer paper's
  evaluation protocol (docs/pixels.md): no sticky actions, frame-skip 4 with a max-pool over the last
  two frames, up to 30 no-ops at reset, 84x84 grey, a stack of the last 4 frames -> (4, 84, 84)
  uint8. An episode ends at game over (not at a lost life), and rewards are raw (not clipped).
  Behaviour policies collect with sticky actions (p = 0.25), as DQN-Replay did: `sticky=True`.

Datasets store each frame once: for Atari only the newest frame of the stack, (1, 84, 84); the
training sampler and the Agent rebuild the 4-frame stack (`frame_stack`).
"""

from __future__ import annotations

import gymnasium as gym
import matplotlib
import numpy as np

from decision_transformer.errors import DTError

MINATAR_MAX_STEPS = 10_000
ATARI_FRAME_STACK = 4
ATARI_STICKY = 0.25         # DQN-Replay's sticky-action probability (data collection only)


def family(env_id: str) -> str:
    """'minatar', 'atari' or 'gym'."""
    if env_id.startswith("MinAtar/"):
        return "minatar"
    if env_id.startswith("ALE/"):
        return "atari"
    return "gym"


def frame_stack(env_id: str) -> int:
    """How many stored frames make one observation of the env (1 except Atari)."""
    return ATARI_FRAME_STACK if family(env_id) == "atari" else 1


def stored_frame(env_id: str, obs: np.ndarray) -> np.ndarray:
    """What a dataset stores of one observation: Atari keeps the newest frame, (1, 84, 84)."""
    return obs[..., -1:, :, :] if frame_stack(env_id) > 1 else obs


def _register(fam: str) -> None:
    try:
        if fam == "minatar":
            import minatar.gym
            if "MinAtar/Breakout-v1" not in gym.registry:
                minatar.gym.register_envs()
        elif fam == "atari":
            import ale_py
            gym.register_envs(ale_py)
    except ImportError as e:
        pkg = {"minatar": "minatar", "atari": "ale-py opencv-python-headless"}[fam]
        raise DTError(f"{fam} environments need `pip install {pkg}` ({e})")


def make_env(env_id: str, sticky: bool = False, **kwargs):
    """gym.make(env_id, **kwargs) with the family's wrappers (module docstring), or a one-line
    DTError naming the id and gymnasium's reason."""
    fam = family(env_id)
    if fam != "gym":
        _register(fam)
    try:
        if fam == "atari":
            from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
            env = gym.make(env_id, frameskip=1, repeat_action_probability=ATARI_STICKY if sticky else 0.0,
                           full_action_space=False, max_num_frames_per_episode=108_000, **kwargs)
            env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False,
                                     grayscale_obs=True, scale_obs=False)
            return FrameStackObservation(env, ATARI_FRAME_STACK, padding_type="reset")
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise DTError(f"cannot make env {env_id!r}: {e}")
    except ImportError as e:
        raise DTError(f"cannot make env {env_id!r}: {e}")
    if fam == "minatar":
        env = MinAtarFrames(gym.wrappers.TimeLimit(env, MINATAR_MAX_STEPS))
    return env


def make_vec(env_id: str, num_envs: int, sticky: bool = False, max_episode_steps: int | None = None):
    """`num_envs` copies in a SyncVectorEnv that resets an env in the step its episode ends
    (AutoresetMode.SAME_STEP: the step's observation is already the next episode's first).
    max_episode_steps: a time limit on top of the env's own (episodes cut there are truncated)."""
    def one():
        env = make_env(env_id, sticky=sticky)
        return gym.wrappers.TimeLimit(env, max_episode_steps) if max_episode_steps else env
    one().close()                                  # an id that cannot be made fails here, in one line
    return gym.vector.SyncVectorEnv([one for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


class MinAtarFrames(gym.ObservationWrapper):
    """(10, 10, C) bool -> (C, 10, 10) uint8 in {0, 1}; rgb_array renders a 160x160 picture, one
    colour per channel (MinAtar's own rendering needs seaborn)."""

    def __init__(self, env):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)
        cmap = matplotlib.colormaps["cubehelix"]
        self._palette = (np.array([(0, 0, 0)] + [cmap(0.15 + 0.7 * i / max(c - 1, 1))[:3] for i in range(c)])
                         * 255).astype(np.uint8)

    def observation(self, obs):
        return np.ascontiguousarray(np.moveaxis(np.asarray(obs, dtype=np.uint8), -1, 0))

    def render(self):
        if self.env.render_mode != "rgb_array":
            return self.env.render()
        state = self.env.unwrapped.game.state()                     # (10, 10, C) bool
        idx = np.max(state * np.arange(1, state.shape[-1] + 1), axis=-1)
        return np.repeat(np.repeat(self._palette[idx], 16, axis=0), 16, axis=1)
