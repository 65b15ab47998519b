"""Making gymnasium environments, with one clear error when an id cannot be made."""

from __future__ import annotations

from decision_transformer.errors import DTError


def make_env(env_id: str, **kwargs):
    """gym.make(env_id, **kwargs), or a one-line DTError naming the id and gymnasium's reason."""
    import gymnasium as gym
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise DTError(f"cannot make env {env_id!r}: {e}")


def make_vec(env_id: str, num_envs: int):
    """`num_envs` copies in a SyncVectorEnv that resets an env in the step its episode ends
    (AutoresetMode.SAME_STEP: the step's observation is already the next episode's first)."""
    import gymnasium as gym
    make_env(env_id).close()                       # an id that cannot be made fails here, in one line
    return gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
