"""How much a policy reads its return-to-go, against its timestep: the mean action at the last
step of dataset windows, and how far it moves when the return-to-go or the timesteps change.

A return-conditioned policy that follows its target moves when the return-to-go does; one that
has learnt to key its actions on the episode timestep instead (the learned timestep table is a
shortcut: in the data, the time of a state says much about its action) barely moves, and then
neither a higher target nor hindsight-relabelled returns can steer it. The numbers are mean
absolute differences of the (deterministic) action over real steps, in action units (tanh-bounded
actions: [-1, 1] per dimension), on windows drawn as training draws them.
"""

from __future__ import annotations

import torch

WINDOWS = 512         # windows per measurement (the campaign's)
CHANGES = {           # name -> what changes in the window (returns-to-go are scaled, as the model sees them)
    "return_to_go_x2": "every return-to-go doubled",
    "return_to_go_x0.5": "every return-to-go halved",
    "timestep_plus_100": "every timestep 100 later (capped at max_ep_len - 1)",
}


@torch.no_grad()
def conditioning(model, dataset, windows: int = WINDOWS, seed: int = 0) -> dict:
    """{"windows": n, "action_abs_mean": mean |a|, CHANGES key: mean |a' - a|} for the policy's
    action at the last step of `windows` windows of `dataset` (sampled with the model's K, return
    scale, state statistics and window anchor)."""
    from decision_transformer.data.sampler import WindowSampler
    mc = model.config
    was_training = model.training
    model.eval()
    try:
        b = WindowSampler(dataset, K=mc.context_length, batch_size=windows, scale=mc.return_scale or 1.0,
                          max_ep_len=mc.max_ep_len, seed=seed, state_mean=mc.state_mean, state_std=mc.state_std,
                          anchor=model.window_anchor).sample()

        def act(w):
            return model.predict_last_action(w["states"], w["actions"], w["returns_to_go"], w["timesteps"],
                                             attention_mask=w["attention_mask"]).float()
        base = act(b)
        changed = {
            "return_to_go_x2": {**b, "returns_to_go": b["returns_to_go"] * 2},
            "return_to_go_x0.5": {**b, "returns_to_go": b["returns_to_go"] * 0.5},
            "timestep_plus_100": {**b, "timesteps": (b["timesteps"] + 100).clamp(max=mc.max_ep_len - 1)},
        }
        out = {"windows": int(windows), "seed": int(seed), "action_abs_mean": float(base.abs().mean()),
               "changes": dict(CHANGES)}                          # what each number measures, in the record
        for name in CHANGES:
            out[name] = float((act(changed[name]) - base).abs().mean())
        return out
    finally:
        model.train(was_training)


def describe(rec: dict) -> str:
    """"0.005 / 0.068": what doubling the return-to-go, then shifting the timesteps, moves the action."""
    return f"{rec['return_to_go_x2']:.3f} / {rec['timestep_plus_100']:.3f}"

