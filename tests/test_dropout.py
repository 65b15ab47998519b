import torch

from decision_transformer.dropout import FastDropout, fast_dropout, keep_mask


def test_keep_probability_and_scale():
    n = 2_000_000
    for p in (0.1, 0.5):
        k = keep_mask((n,), p).float().mean().item()
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(k - (1 - p)) < 6 * sigma
    x = torch.ones(n)
    y = fast_dropout(x, 0.1)
    vals = set(torch.unique(y).tolist())
    assert vals == {0.0, 1.0 / 0.9} or all(abs(v - w) < 1e-6 for v, w in zip(sorted(vals), (0.0, 1 / 0.9)))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_mask_bits_are_independent_of_position():
    m = keep_mask((1000, 1000), 0.25).float()
    assert abs(m[:, ::2].mean().item() - m[:, 1::2].mean().item()) < 0.01  # both halves of each 64-bit draw


def test_gradient_is_the_same_mask_and_eval_is_identity():
    torch.manual_seed(3)
    x = torch.randn(1000, requires_grad=True)
    y = fast_dropout(x, 0.3)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.7))
    assert torch.all(x.grad[~kept] == 0)
    d = FastDropout(0.3).eval()
    assert torch.equal(d(x), x)


def test_deterministic_under_manual_seed():
    torch.manual_seed(7); a = keep_mask((999,), 0.1)
    torch.manual_seed(7); b = keep_mask((999,), 0.1)
    assert torch.equal(a, b)
