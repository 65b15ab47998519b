"""Training-step speed, paper config: ours vs transformers.DecisionTransformerModel.

    python bench/train_step.py [--reps 3] [--steps 20] [--profile] [--interleaved 40]

K=20, hidden 128, 3 layers, 1 head, batch 64, dropout 0.1, ReLU, fused AdamW (lr 1e-4, wd 1e-4),
grad clip 0.25, MSE on actions: the same loss and optimizer for both models. transformers runs
its forward (all three heads); ours runs `forward_actions`, what our trainer uses, which skips the
work that cannot reach the action loss (FLOPs below are counted for the full forward). Each case runs in
a fresh process, alternating; the machine's fp32 matmul peak is measured in the same run (a
2048^3 sgemm on all threads) and each step's FLOPs are counted from the model's shapes, so the
fraction of peak is reported beside the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

K, B, H, LAYERS, STATE, ACT = 20, 64, 128, 3, 11, 3


def step_flops() -> float:
    """Forward + backward matmul FLOPs of one step (backward = 2x forward)."""
    T = 3 * K
    per_tok = LAYERS * (H * 3 * H + H * H + 2 * H * 4 * H)          # qkv, proj, fc, fc-proj
    attn = LAYERS * 2 * T * H                                          # qk^T and att @ v, per token
    embed = (STATE + ACT + 1) * H / 3 + H * ACT / 3                   # embeddings + action head
    return 3 * 2 * B * T * (per_tok + attn + embed)


def _batch():
    import torch
    g = torch.Generator().manual_seed(0)
    return dict(states=torch.randn(B, K, STATE, generator=g), actions=torch.rand(B, K, ACT, generator=g) * 2 - 1,
                returns_to_go=torch.randn(B, K, 1, generator=g), timesteps=torch.randint(0, 1000, (B, K), generator=g),
                attention_mask=torch.ones(B, K))


def _model(which):
    import torch
    torch.manual_seed(0)
    kw = dict(state_dim=STATE, act_dim=ACT, hidden_size=H, max_ep_len=1000, n_layer=LAYERS, n_head=1,
              resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    if which == "transformers":
        from transformers import DecisionTransformerConfig, DecisionTransformerModel
        return DecisionTransformerModel(DecisionTransformerConfig(**kw)).train()
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    return DecisionTransformer(DecisionTransformerConfig(**kw)).train()


def _setup(name: str):
    """(model, one training step as a closure) for 'transformers' or ours."""
    import torch
    model, batch = _model(name), _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)  # same for both
    mask = batch["attention_mask"].bool()
    keys = ("states", "actions", "returns_to_go", "timesteps", "attention_mask")

    def step():
        if name != "transformers":   # our trainer's path: only what the action loss needs (forward_actions)
            ap = model.forward_actions(*(batch[k] for k in keys))
        else:
            _, ap, _ = model(**batch, return_dict=False)
        loss = ((ap - batch["actions"]) ** 2)[mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
    return model, step


def case(name: str, a) -> dict:
    import os

    import torch
    if name == "ours_serial":                  # ablation: the dropout kernel built without OpenMP
        os.environ["DT_NATIVE_OPENMP"] = "0"
    if name == "peak":
        n = 2048
        x, y = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            x @ y
        t0 = time.perf_counter()
        for _ in range(10):
            x @ y
        return {"gflops": 10 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9}
    if name == "interleaved":
        return interleaved(a)
    model, step = _setup(name)
    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - t0) / a.steps * 1e3
    out = {"ms_per_step": ms}
    if a.profile:
        from torch.profiler import profile
        with profile() as p:
            for _ in range(5):
                step()
        rows = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
        out["profile"] = [(e.key, round(e.self_cpu_time_total / 5e3, 2)) for e in rows]
    return out


def interleaved(a) -> dict:
    """Both models in one process, their steps alternating (2 of one, then 2 of the other, the
    order swapped every round): a slow phase of a noisy machine hits both alike. The ratio is
    taken per round; its median and quartiles are reported."""
    import statistics
    runs = {n: _setup(n)[1] for n in ("transformers", "ours")}
    for step in runs.values():
        for _ in range(5):
            step()
    ratios, times = [], {n: [] for n in runs}
    for r in range(a.steps):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        got = {}
        for n in order:
            t0 = time.perf_counter()
            runs[n]()
            runs[n]()
            got[n] = (time.perf_counter() - t0) / 2 * 1e3
            times[n].append(got[n])
        ratios.append(got["transformers"] / got["ours"])
    q = statistics.quantiles(ratios, n=4)
    return {"ratio_median": statistics.median(ratios), "ratio_q1": q[0], "ratio_q3": q[2],
            **{f"{n}_ms_median": statistics.median(v) for n, v in times.items()}, "rounds": a.steps}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--interleaved", type=int, metavar="ROUNDS", default=0,
                   help="also run both models in one process, steps alternating, for ROUNDS rounds")
    a = p.parse_args()
    if a.case:
        print(json.dumps(case(a.case, a)))
        return
    from _harness import alternate, median
    extra = ["--steps", str(a.steps)] + (["--profile"] if a.profile else [])
    r = alternate(__file__, ["transformers", "ours", "ours_serial", "peak"], a.reps, *extra)
    hf, ours, peak = median(r["transformers"], "ms_per_step"), median(r["ours"], "ms_per_step"), median(r["peak"], "gflops")
    gf = step_flops() / 1e9
    print(f"paper-config training step, {gf:.1f} GFLOP (median of {a.reps}); machine fp32 peak {peak:.0f} GFLOP/s")
    for name, ms in (("transformers", hf), ("ours", ours)):
        print(f"  {name:13s} {ms:7.1f} ms/step  {gf / ms * 1e3:6.1f} GFLOP/s = {gf / ms * 1e3 / peak:4.0%} of peak"
              f"   peak RSS {median(r[name], 'peak_rss_mb'):.0f} MB")
    print(f"  speed-up      {hf / ours:.2f}x  (goal >= 1.5x)")
    serial = median(r["ours_serial"], "ms_per_step")
    print(f"  ablation: ours with the single-threaded dropout kernel {serial:.1f} ms/step = {hf / serial:.2f}x")
    if a.interleaved:
        from _harness import run_case
        r = run_case(__file__, "interleaved", "--steps", str(a.interleaved))
        print(f"  same process, steps alternating, {r['rounds']} rounds: transformers {r['transformers_ms_median']:.1f} "
              f"ms, ours {r['ours_ms_median']:.1f} ms; per-round ratio median {r['ratio_median']:.2f}x "
              f"(quartiles {r['ratio_q1']:.2f}-{r['ratio_q3']:.2f})")
    if a.profile:
        print("  our step, top ops by self time (ms/step):")
        for k, v in r["ours"][0]["profile"]:
            print(f"    {v:7.2f}  {k}")


if __name__ == "__main__":
    main()
