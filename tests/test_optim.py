"""LAMB (training/optim.py) against a NumPy transcription of the paper's Algorithm 2 and, with its
trust ratio off, against torch.optim.Adam; its state through a checkpoint's round trip; the
presets every command ships load and validate."""

import json

import numpy as np
import pytest
import torch

from decision_transformer.training.optim import Lamb, make_optimizer


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g)), torch.nn.Parameter(torch.zeros(5)),
            torch.nn.Parameter(torch.randn(2, generator=g) * 30)]          # norm > 10: phi clamps it


def _grads(step, params):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=g) for p in params]


def _lamb_numpy(ws, grads, lr, b1, b2, eps, wd, clamp=10.0):
    """You et al. (ICLR 2020), Algorithm 2, per tensor: bias-corrected Adam ratio plus decoupled decay,
    scaled by phi(|w|) / |r| with phi(z) = min(z, clamp) (1 where either norm is 0)."""
    ws = [w.astype(np.float64) for w in ws]
    m = [np.zeros_like(w) for w in ws]
    v = [np.zeros_like(w) for w in ws]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            r = (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + eps) + wd * ws[i]
            wn, rn = min(np.linalg.norm(ws[i]), clamp), np.linalg.norm(r)
            ws[i] = ws[i] - lr * (wn / rn if wn > 0 and rn > 0 else 1.0) * r
    return ws


def test_lamb_is_algorithm_2_of_the_paper():
    params = _params()
    start = [p.detach().numpy().copy() for p in params]
    opt = Lamb(params, lr=0.05, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.01)
    grads = []
    for step in range(25):
        gs = _grads(step, params)
        grads.append([g.numpy().astype(np.float64) for g in gs])
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()
    want = _lamb_numpy(start, grads, 0.05, 0.9, 0.99, 1e-6, 0.01)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-5, atol=1e-6)
    assert not torch.equal(params[1].detach(), torch.zeros(5))         # a zero tensor moves (ratio 1)


def test_lamb_without_its_trust_ratio_is_adam():
    a, b = _params(), _params()
    lamb = Lamb(a, lr=0.01, trust_ratio=False)
    adam = torch.optim.Adam(b, lr=0.01)
    for step in range(30):
        for pa, pb, g in zip(a, b, _grads(step, a)):
            pa.grad, pb.grad = g.clone(), g.clone()
        lamb.step()
        adam.step()
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_lamb_resumes_exactly_from_its_saved_state():
    from decision_transformer.training.trainer import load_optimizer, optimizer_tensors
    a = _params()
    opt = Lamb(a, lr=0.02, weight_decay=0.1)
    for step in range(5):
        for p, g in zip(a, _grads(step, a)):
            p.grad = g
        opt.step()
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_b = Lamb(b, lr=0.02, weight_decay=0.1)
    sd = opt.state_dict()
    saved = {k: v.clone() for k, v in optimizer_tensors(sd).items()}              # as if read from the files
    load_optimizer(opt_b, saved, json.loads(json.dumps(sd["param_groups"])))
    for step in range(5, 10):
        for pa, pb, g in zip(a, b, _grads(step, a)):
            pa.grad, pb.grad = g.clone(), g.clone()
        opt.step()
        opt_b.step()
    assert all(torch.equal(pa, pb) for pa, pb in zip(a, b))


def test_the_odt_temperature_has_its_own_group_without_decay_or_trust_ratio():
    from decision_transformer import OnlineDecisionTransformer, OnlineDecisionTransformerConfig
    m = OnlineDecisionTransformer(OnlineDecisionTransformerConfig(state_dim=3, act_dim=2, hidden_size=16, n_layer=1,
                                                                  n_head=1, max_ep_len=20))
    groups = m.param_groups()
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert groups[1]["params"] == [m.log_temperature] and groups[1]["weight_decay"] == 0.0
    for name in ("adamw", "lamb"):
        opt = make_optimizer(name, m.param_groups(), lr=1e-3, weight_decay=0.5)
        assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert make_optimizer("lamb", m.param_groups(), 1e-3, 0.5).param_groups[1]["trust_ratio"] is False
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", m.param_groups(), 1e-3, 0.0)


def test_every_shipped_preset_is_valid():
    from decision_transformer.options import read_preset, preset_names
    from decision_transformer.training import finetune, trainer
    assert {"odt-hopper-medium", "odt-walker2d", "odt-halfcheetah", "paper"} <= set(preset_names(trainer.PRESETS))
    for name in preset_names(trainer.PRESETS):
        trainer.TrainConfig.from_sources(name, {"dataset": "x"})
    assert {"hopper-medium", "hopper-medium-replay", "walker2d", "halfcheetah"} <= set(preset_names(finetune.PRESETS))
    for name in preset_names(finetune.PRESETS):
        finetune.FinetuneConfig(checkpoint="x", **read_preset(name, finetune.PRESETS)).validate()
