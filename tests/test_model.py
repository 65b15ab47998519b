import pytest
import torch
from conftest import hf_and_ours, random_batch

from decision_transformer import DecisionTransformer, DecisionTransformerConfig


def _compare(hf, ours, batch, tol=1e-5):
    with torch.no_grad():
        ref = hf(**batch, return_dict=False)
        got = ours(**batch)
    real = batch["attention_mask"].bool()
    for name, x, y in zip(("state", "action", "return"), ref, got):
        assert x.shape == y.shape, name
        assert (x - y)[real].abs().max().item() <= tol, name
    return got


@pytest.mark.parametrize("L,pad", [(20, [0, 5, 19, 0]), (7, [3, 0, 6, 1]), (20, [0, 0, 0, 0])])
def test_parity_with_transformers(L, pad):
    hf, ours = hf_and_ours()
    batch = random_batch(4, L, pad=pad)
    batch["timesteps"][0, -1] = 999                       # up to max_ep_len - 1
    _compare(hf, ours, batch)


def test_parity_with_transformers_eager_attention_and_gelu_multihead():
    hf, ours = hf_and_ours(n_head=4, activation_function="gelu_new", n_layer=2, hidden_size=64)
    hf.config._attn_implementation = "eager"
    _compare(hf, ours, random_batch(3, 10, pad=[0, 4, 9]))


def test_wpe_row_zero_is_added_to_every_token():
    hf, ours = hf_and_ours()
    batch = random_batch(2, 5)
    before = ours(**batch)[1]
    with torch.no_grad():
        ours.encoder.wpe.weight[1:].normal_()               # other rows: no effect
    assert torch.equal(ours(**batch)[1], before)
    with torch.no_grad():
        ours.encoder.wpe.weight[0].add_(torch.randn(128))   # row 0: changes everything
    assert (ours(**batch)[1] - before).abs().max() > 1e-4


def test_predict_last_action_equals_forward():
    _, ours = hf_and_ours()
    for L, pad in ((20, [0, 3, 19]), (4, [1, 0, 3])):
        batch = random_batch(3, L, pad=pad)
        full = ours(**batch)[1][:, -1]
        fast = ours.predict_last_action(*(batch[k] for k in ("states", "actions", "returns_to_go", "timesteps", "attention_mask")))
        assert (full - fast).abs().max() <= 1e-6


def test_interleaving_is_causal_over_r_s_a():
    """The action at step t depends on R_<=t, s_<=t, a_<t, never on a_t or anything later."""
    _, ours = hf_and_ours()
    batch = random_batch(1, 6)
    base = ours(**batch)[1]
    b2 = {k: v.clone() for k, v in batch.items()}
    b2["actions"][0, 3] += 1.0                               # a_3 changes actions at t > 3 only
    out = ours(**b2)[1]
    assert torch.equal(out[0, :4], base[0, :4]) and (out[0, 4:] - base[0, 4:]).abs().max() > 0
    b3 = {k: v.clone() for k, v in batch.items()}
    b3["returns_to_go"][0, 3] += 1.0                         # R_3 changes actions at t >= 3
    out = ours(**b3)[1]
    assert torch.equal(out[0, :3], base[0, :3]) and (out[0, 3] - base[0, 3]).abs().max() > 0


def test_discrete_actions_give_logits_and_learn():
    cfg = DecisionTransformerConfig(state_dim=5, act_dim=4, action_type="discrete", hidden_size=32,
                                    n_layer=1, max_ep_len=50, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    m = DecisionTransformer(cfg)
    B, L = 8, 6
    s = torch.randn(B, L, 5)
    a = (s[..., 0] > 0).long() + 2 * (s[..., 1] > 0).long()  # action is a function of the state
    kw = dict(states=s, actions=a, returns_to_go=torch.zeros(B, L, 1), timesteps=torch.arange(L).repeat(B, 1))
    assert m(**kw)[0].shape == (B, L, 5) and m(**kw)[1].shape == (B, L, 4)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(m(**kw)[1].reshape(-1, 4), a.reshape(-1))
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.2 * first


def test_image_states_nature_cnn():
    cfg = DecisionTransformerConfig(act_dim=6, action_type="discrete", state_type="image",
                                    state_shape=[4, 84, 84], hidden_size=128, n_layer=1, n_head=8, max_ep_len=100)
    m = DecisionTransformer(cfg).eval()
    assert m.embed_state.net(torch.zeros(1, 4, 84, 84)).shape == (1, 3136)
    s = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    sp, ap, rp = m(states=s, actions=torch.zeros(2, 3, dtype=torch.long), returns_to_go=torch.zeros(2, 3, 1),
                   timesteps=torch.zeros(2, 3, dtype=torch.long))
    assert sp is None and ap.shape == (2, 3, 6) and rp.shape == (2, 3, 1)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="state_shape"):
        DecisionTransformerConfig(state_type="image")
    with pytest.raises(ValueError, match="divisible"):
        DecisionTransformerConfig(hidden_size=100, n_head=3)
    with pytest.raises(ValueError, match="action_type"):
        DecisionTransformerConfig(action_type="continous")


def test_training_is_deterministic_under_seed():
    def run():
        torch.manual_seed(123)
        m = DecisionTransformer(DecisionTransformerConfig(state_dim=11, act_dim=3, max_ep_len=1000, n_layer=1)).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        batch = random_batch(4, 5)
        for _ in range(3):
            loss = ((m(**batch)[1] - batch["actions"]) ** 2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        return m.state_dict()
    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("pad", [[0, 0, 0], [0, 7, 19]])
def test_forward_actions_equals_forward_in_eval_and_with_dropout(pad):
    _, ours = hf_and_ours()
    batch = random_batch(3, 20, pad=pad)
    full = ours(**batch)[1]
    fast = ours.forward_actions(*(batch[k] for k in ("states", "actions", "returns_to_go", "timesteps", "attention_mask")))
    real = batch["attention_mask"].bool()
    assert (full - fast)[real].abs().max() <= 1e-6
    ours.train()                                     # gradients flow, shapes hold with dropout on
    out = ours.forward_actions(*(batch[k] for k in ("states", "actions", "returns_to_go", "timesteps", "attention_mask")))
    out.sum().backward()
    assert out.shape == (3, 20, 3) and ours.embed_state.weight.grad.abs().sum() > 0


def test_batched_inference_fused_linear_matches_forward():
    """Many rows in inference mode take oneDNN's fused linear (+ReLU): same values to float precision."""
    import decision_transformer.models.dt as dm
    _, ours = hf_and_ours()
    batch = random_batch(12, 20, pad=[0, 3, 19] + [0] * 9)   # 12 x 59 tokens >= FUSED_MIN_ROWS
    assert 12 * 59 >= dm.FUSED_MIN_ROWS
    full = ours(**batch)[1][:, -1]                            # autograd-enabled forward: addmm path
    fast = ours.predict_last_action(*(batch[k] for k in ("states", "actions", "returns_to_go", "timesteps", "attention_mask")))
    assert (full - fast).abs().max() <= 1e-5
    if dm._LINEAR_POINTWISE is not None:                      # and it really is the other kernel
        with torch.inference_mode():
            x = torch.randn(600, 128)
            lin = ours.encoder.h[0].mlp.c_fc
            ref = torch.relu(torch.addmm(lin.bias, x, lin.weight))
            assert (lin(x, relu=True) - ref).abs().max() <= 1e-5
