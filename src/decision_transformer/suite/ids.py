"""The suite's dataset ids, one rule for every env family (D4RL-style Minari ids):

    Hopper-v5,  medium, v0       -> dt/hopper/medium-v0
    Hopper-v5,  medium, v1       -> dt/hopper/medium-v1
    MinAtar/Breakout-v1, replay  -> dt/minatar-breakout/replay-v0
    ALE/Breakout-v5,     replay  -> dt/atari-breakout/replay-v0
"""

from __future__ import annotations


def env_name(env_id: str) -> str:
    """The short name of an env in dataset ids and run names: hopper, minatar-breakout, atari-breakout."""
    if "/" in env_id:
        family, game = env_id.split("/", 1)
        family = "atari" if family.upper() == "ALE" else family.lower()
        return f"{family}-{game.split('-')[0].lower()}"
    return env_id.split("-")[0].lower()


def dataset_id(env_id: str, level: str, version: str = "v0") -> str:
    return f"dt/{env_name(env_id)}/{level}-{version}"
