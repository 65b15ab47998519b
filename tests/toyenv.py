"""A tiny, fast continuous-control task for learning tests: reach a goal on a line.

Observation (x, g): position and goal in [-1, 1]; action a in [-1, 1] moves x by 0.2 a;
reward 1 - |x - g| per step; 20 steps. Optimal return ~18-19, uniform random ~6-8.
"""

import gymnasium as gym
import numpy as np


class LineReach(gym.Env):
    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.g = self.np_random.uniform(-1, 1, size=2)
        self.t = 0
        return np.array([self.x, self.g], np.float32), {}

    def step(self, a):
        self.x = float(np.clip(self.x + 0.2 * float(np.clip(a[0], -1, 1)), -1, 1))
        self.t += 1
        r = 1.0 - abs(self.x - self.g)
        return np.array([self.x, self.g], np.float32), r, False, self.t >= 20, {}


if "LineReach-v0" not in gym.registry:
    gym.register("LineReach-v0", entry_point=LineReach)


def expert(obs):
    return np.clip((obs[..., 1:2] - obs[..., 0:1]) / 0.2, -1, 1)


def make_dataset(path, episodes=300, seed=0):
    """Episodes of mixed skill: action = k * expert + (1 - k) * uniform, k in {0, .25, .5, .75, 1}."""
    rng = np.random.default_rng(seed)
    env = LineReach()
    cols = {k: [] for k in ("observations", "next_observations", "actions", "rewards", "terminations", "truncations")}
    for ep in range(episodes):
        k = (ep % 5) / 4
        obs, _ = env.reset(seed=seed * 100_000 + ep)
        done = False
        while not done:
            a = (k * expert(obs) + (1 - k) * rng.uniform(-1, 1, 1)).astype(np.float32)
            nobs, r, term, trunc, _ = env.step(a)
            for key, v in zip(cols, (obs, nobs, a, r, term, trunc)):
                cols[key].append(v)
            obs, done = nobs, term or trunc
    np.savez(path, **{k: np.asarray(v) for k, v in cols.items()})
    return path


def setup() -> None:
    """A worker process's set-up hook (Ray's worker_process_setup_hook): importing this module
    registered the env."""


def make_misuse_inputs(d) -> None:
    """The inputs of the misuse corpus (tests/test_bad_inputs.py, tools/misuse_audit.py): a toy
    dataset, a checkpoint, finished runs (one with damaged files), odd files and bad datasets."""
    import json
    import shutil
    from pathlib import Path

    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    from decision_transformer.cli import main
    d = Path(d)
    make_dataset(d / "toy.npz", episodes=10)
    make_dataset(d / "toy2.npz", episodes=5, seed=1)
    DecisionTransformer(DecisionTransformerConfig(state_dim=2, act_dim=1, n_layer=1, hidden_size=8, max_ep_len=32,
                                                  return_scale=10.0, env_id="LineReach-v0", target_returns=[19.0],
                                                  state_mean=[0.0, 0.0], state_std=[1.0, 1.0])).save_pretrained(d / "ck")
    for run, every in (("run", 2), ("run2", 1)):
        assert main(["train", "--dataset", str(d / "toy.npz"), "--output", str(d / run), "--steps", "2",
                     "--checkpoint-every", str(every), "--context-length", "3", "--hidden-size", "8", "--n-layer", "1",
                     "--max-ep-len", "32", "--return-scale", "10", "--quiet", "--env", "LineReach-v0"]) == 0
    (d / "file.txt").write_text("not a checkpoint")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "garbage.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (d / "bad.json").write_text("{not json")
    (d / "list.json").write_text(json.dumps([1, 2]))
    (d / "unknown.json").write_text(json.dumps({"learning_rate": 1e-3}))
    np.savetxt(d / "mean3.txt", np.zeros(3))
    # run-directory files cut short or hand-edited
    shutil.copytree(d / "run2", d / "run_cut", symlinks=True)
    text = (d / "run_cut" / "config.json").read_text()
    (d / "run_cut" / "config.json").write_text(text[:len(text) // 2])
    shutil.copytree(d / "run2", d / "run_dangling", symlinks=True)
    shutil.rmtree(d / "run_dangling" / "checkpoints" / "00000002")
    shutil.copytree(d / "run2", d / "run_edited", symlinks=True)
    state = d / "run_edited" / "checkpoints" / "00000002" / "trainer.safetensors"
    state.write_bytes(state.read_bytes()[:-8] + bytes(255 - b for b in state.read_bytes()[-8:]))   # edited
    # dataset fields of the wrong type or size
    z = dict(np.load(d / "toy.npz"))
    np.savez(d / "text_rewards.npz", **{**z, "rewards": z["rewards"].astype(str)})
    np.savez(d / "huge_actions.npz", **{**z, "actions": z["actions"] * 1e12})
    # a checkpoint config with one bad field, and Minari metadata of the wrong kind
    shutil.copytree(d / "ck", d / "ck_bad_field")
    conf = json.loads((d / "ck_bad_field" / "config.json").read_text())
    conf["decision_transformer"]["n_layer"] = "three"
    (d / "ck_bad_field" / "config.json").write_text(json.dumps(conf))
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "2", "--output",
                 str(d / "minari_bad_meta"), "--quiet"]) == 0
    meta = d / "minari_bad_meta" / "data" / "metadata.json"
    m = json.loads(meta.read_text())
    m["total_steps"] = -5                              # the right type, a wrong value
    meta.write_text(json.dumps(m))
