import sys
import threading

import gymnasium as gym
import numpy as np
import pytest
import torch
import toyenv  # noqa: F401  (registers LineReach-v0)

from decision_transformer import DecisionTransformer, DecisionTransformerConfig
from decision_transformer.errors import DTError
from decision_transformer.evaluation.evaluate import run_episodes
from decision_transformer.evaluation.parallel import (
    one_thread_per_group,
    run_in_threads,
    split,
)


def _model():
    torch.manual_seed(3)
    m = DecisionTransformer(DecisionTransformerConfig(state_dim=2, act_dim=1, hidden_size=32, n_layer=2,
                                                      max_ep_len=32, context_length=8, return_scale=10.0))
    with torch.no_grad():                     # actions far from 0, so the returns depend on the model
        m.predict_action[0].weight.mul_(20)
    return m.eval()


def test_split():
    assert split(50, 2) == [25, 25]
    assert split(7, 3) == [3, 2, 2]
    assert split(1, 1) == [1]


def test_threaded_groups_equal_the_same_groups_run_one_after_the_other():
    m = _model()
    R2, L2 = run_episodes(m, "LineReach-v0", 15.0, episodes=24, num_envs=10, seed=4, threads=2)
    again = run_episodes(m, "LineReach-v0", 15.0, episodes=24, num_envs=10, seed=4, threads=2)
    assert np.array_equal(R2, again[0]) and np.array_equal(L2, again[1])          # deterministic
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # as each group's forward runs in the threaded run
    try:
        a = run_episodes(m, "LineReach-v0", 15.0, episodes=12, num_envs=5, seed=4, threads=1)   # envs 0-4
        b = run_episodes(m, "LineReach-v0", 15.0, episodes=12, num_envs=5, seed=9, threads=1)   # envs 5-9
    finally:
        torch.set_num_threads(threads)
    assert len(R2) == 24 and np.all(L2 == 20)
    assert np.array_equal(R2, np.concatenate([a[0], b[0]]))
    assert np.ptp(R2) > 1.0                                                    # not a constant policy


def test_one_env_per_episode_gives_the_same_episodes_whatever_the_threads():
    m = _model()
    R1, _ = run_episodes(m, "LineReach-v0", 15.0, episodes=6, num_envs=6, seed=0, threads=1)
    R3, _ = run_episodes(m, "LineReach-v0", 15.0, episodes=6, num_envs=6, seed=0, threads=3)
    np.testing.assert_allclose(R1, R3, atol=1e-4)       # env i, seed i: same episode (batch size rounding only)


def test_thread_settings_are_restored_even_after_an_error():
    threads, switch = torch.get_num_threads(), sys.getswitchinterval()
    with pytest.raises(RuntimeError):
        with one_thread_per_group(2):
            assert torch.get_num_threads() == 1 and sys.getswitchinterval() < switch
            raise RuntimeError
    assert torch.get_num_threads() == threads and sys.getswitchinterval() == switch


def test_an_error_in_one_thread_stops_the_others_and_is_raised():
    seen = []

    def work(i, stop):
        if i == 0:
            raise DTError("observation contains NaN or inf")
        while not stop.wait(0.01):            # would run forever unless told to stop
            pass
        seen.append(threading.current_thread().name)
        return i

    with pytest.raises(DTError, match="NaN"):
        run_in_threads(work, [0, 1, 2])
    assert len(seen) == 2


class _NanAfter5(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, a):
        self.t += 1
        return np.full(2, np.nan if self.t >= 5 else 0.0, np.float32), 0.0, False, self.t >= 20, {}


def test_bad_observations_in_a_thread_give_the_agents_one_line_error():
    if "NanAfter5-v0" not in gym.registry:
        gym.register("NanAfter5-v0", entry_point=_NanAfter5)
    with pytest.raises(DTError, match="observation contains NaN"):
        run_episodes(_model(), "NanAfter5-v0", 15.0, episodes=4, num_envs=4, seed=0, threads=2)
    with pytest.raises(DTError, match="threads must be >= 1"):
        run_episodes(_model(), "LineReach-v0", 15.0, episodes=4, num_envs=4, seed=0, threads=0)


def test_onnx_backend_in_threads_equals_torch():
    pytest.importorskip("onnxruntime")
    m = _model()
    R_t, _ = run_episodes(m, "LineReach-v0", 15.0, episodes=8, num_envs=8, seed=2, threads=2)
    R_o, _ = run_episodes(m, "LineReach-v0", 15.0, episodes=8, num_envs=8, seed=2, threads=2, backend="onnxruntime")
    np.testing.assert_allclose(R_t, R_o, atol=1e-3)
