import numpy as np
import torch

from decision_transformer.data.datasets import Episode, TrajectoryDataset
from decision_transformer.data.sampler import WindowSampler, returns_to_go


def _ds(lengths=(3, 25, 40, 1, 19), seed=0):
    rng = np.random.default_rng(seed)
    eps = [Episode(rng.normal(size=(T, 4)).astype(np.float32), rng.uniform(-1, 1, (T, 2)).astype(np.float32),
                   rng.normal(size=T).astype(np.float32), np.eye(T, dtype=bool)[-1], np.zeros(T, bool)) for T in lengths]
    return TrajectoryDataset.from_episodes(eps, "t")


def _reference_window(ds, ep, start, K, scale, mean, std, max_ep_len):
    """A plain per-sample version of the official get_batch (padding 0, left)."""
    e = ds.episode(ep)
    s = e.observations[start:start + K]; a = e.actions[start:start + K]
    rtg = np.array([e.rewards[t:].astype(np.float64).sum() for t in range(start, start + len(s))]) / scale
    ts = np.minimum(np.arange(start, start + len(s)), max_ep_len - 1)
    pad = K - len(s)
    return {"states": np.concatenate([np.zeros((pad, 4)), (s - mean) / std]),
            "actions": np.concatenate([np.zeros((pad, 2)), a]),
            "returns_to_go": np.concatenate([np.zeros(pad), rtg])[:, None],
            "timesteps": np.concatenate([np.zeros(pad, int), ts]),
            "attention_mask": np.concatenate([np.zeros(pad), np.ones(len(s))])}


def test_returns_to_go_per_episode():
    ds = _ds()
    rtg = returns_to_go(ds)
    for i in range(ds.num_episodes):
        e = ds.episode(i)
        np.testing.assert_allclose(rtg[ds.offsets[i]:ds.offsets[i + 1]], np.cumsum(e.rewards[::-1].astype(np.float64))[::-1], rtol=1e-6)


def test_sampler_matches_the_plain_reference():
    ds = _ds()
    sp = WindowSampler(ds, K=10, batch_size=256, scale=7.0, max_ep_len=30, seed=3)
    idx, mask, local = sp.sample_indices()
    sp.rng = np.random.default_rng(3)
    batch = sp.sample()
    mean, std = ds.state_stats()
    for b in range(256):
        real = idx[b][mask[b]]
        ep = int(np.searchsorted(ds.offsets, real[0], side="right") - 1)
        start = int(real[0] - ds.offsets[ep])
        ref = _reference_window(ds, ep, start, 10, 7.0, mean, std, 30)
        for k, v in ref.items():
            np.testing.assert_allclose(batch[k][b].numpy(), v, rtol=1e-5, atol=1e-6, err_msg=k)
    assert batch["timesteps"].dtype == torch.int64 and batch["states"].dtype == torch.float32
    assert (batch["attention_mask"].sum(1) < 10).any() and (batch["attention_mask"].sum(1) == 10).any()


def test_episode_and_start_distribution():
    ds = _ds()
    sp = WindowSampler(ds, K=5, batch_size=20000, seed=0)
    idx, mask, _ = sp.sample_indices()
    last = idx[:, -1]                                    # the window's last real step
    ep = np.searchsorted(ds.offsets, last, side="right") - 1
    freq = np.bincount(ep, minlength=ds.num_episodes) / len(ep)
    np.testing.assert_allclose(freq, ds.lengths / ds.num_steps, atol=0.015)   # proportional to length


def test_deterministic_under_seed():
    ds = _ds()
    a = WindowSampler(ds, seed=11).sample()
    b = WindowSampler(ds, seed=11).sample()
    c = WindowSampler(ds, seed=12).sample()
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["states"], c["states"])
    s = WindowSampler(ds, seed=11); s.sample(); st = s.state_dict()
    x = s.sample(); s.load_state_dict(st); y = s.sample()
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_end_anchored_windows_make_every_step_a_last_step_equally_often():
    """BC predicts the window's last step only. With the official ("start") windows the first K-1
    steps of an episode are never last; "end" windows end at a uniformly drawn step."""
    ds = _ds()
    K = 5
    first = np.concatenate([ds.offsets[i] + np.arange(min(K - 1, ds.lengths[i])) for i in range(ds.num_episodes)
                            if ds.lengths[i] > 1])
    first = first[~np.isin(first, ds.offsets[1:] - 1)]                 # an episode's own last step may be last
    start_last = WindowSampler(ds, K=K, batch_size=20000, seed=0).sample_indices()[0][:, -1]
    assert not np.isin(first, start_last).any()
    sp = WindowSampler(ds, K=K, batch_size=200000, seed=0, anchor="end")
    idx, mask, local = sp.sample_indices()
    assert mask[:, -1].all()
    freq = np.bincount(idx[:, -1], minlength=ds.num_steps) / len(idx)
    np.testing.assert_allclose(freq, 1 / ds.num_steps, atol=0.003)    # uniform over all 88 steps
    for b in range(500):                                                # the K-1 steps before it, same episode
        last = idx[b, -1]
        ep = int(np.searchsorted(ds.offsets, last, side="right") - 1)
        t = last - ds.offsets[ep]
        n = min(K, t + 1)
        np.testing.assert_array_equal(idx[b, K - n:], np.arange(last - n + 1, last + 1))
        np.testing.assert_array_equal(local[b, K - n:], np.arange(t - n + 1, t + 1))
        assert not mask[b, :K - n].any() and (idx[b, :K - n] == ds.num_steps).all()
