import pytest
import torch

from decision_transformer.models import _native
from decision_transformer.models.dropout import (
    FastDropout,
    fast_dropout,
    fused_keep_mask,
    keep_mask,
)


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    if request.param == "fused":
        if _native.load() is None:
            pytest.skip("no C compiler here: the fused kernel is unavailable")
    else:
        monkeypatch.setattr(_native, "load", lambda: None)
    return request.param


def test_the_fused_kernel_builds_here():
    assert _native.load() is not None      # CI has gcc: the fast path must really be exercised


def _mask(path, shape, p):
    return fused_keep_mask(shape, p) if path == "fused" else keep_mask(shape, p)


def test_keep_probability_and_scale(path):
    n = 2_000_000
    for p in (0.1, 0.5):
        k = _mask(path, (n,), p).float().mean().item()
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(k - (1 - p)) < 6 * sigma
    y = fast_dropout(torch.ones(n), 0.1)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.9))
    assert abs((y != 0).float().mean().item() - 0.9) < 6 * (0.09 / n) ** 0.5


def test_neighbouring_elements_and_calls_are_independent(path):
    n, p = 2_000_000, 0.3
    m = _mask(path, (n,), p).float()
    both = (m[:-1] * m[1:]).mean().item()                      # P(keep_i and keep_i+1) = (1-p)^2
    assert abs(both - (1 - p) ** 2) < 6 * ((1 - p) ** 2 / n) ** 0.5
    m2 = _mask(path, (n,), p).float()                         # a new call: a new, independent mask
    assert abs((m * m2).mean().item() - (1 - p) ** 2) < 6 * ((1 - p) ** 2 / n) ** 0.5


def test_gradient_uses_the_same_mask_and_eval_is_identity(path):
    torch.manual_seed(3)
    x = torch.randn(10_000, requires_grad=True)
    y = fast_dropout(x, 0.3)
    (y * 2).sum().backward()
    kept = y.detach() != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.03)
    assert torch.allclose(y.detach()[kept], x.detach()[kept] / 0.7)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2 / 0.7))
    assert torch.all(x.grad[~kept] == 0)
    d = FastDropout(0.3).eval()
    assert torch.equal(d(x), x)


def test_deterministic_under_manual_seed(path):
    x = torch.randn(999)
    torch.manual_seed(7); a = fast_dropout(x, 0.1)
    torch.manual_seed(7); b = fast_dropout(x, 0.1)
    torch.manual_seed(8); c = fast_dropout(x, 0.1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_non_contiguous_input(path):
    x = torch.randn(64, 60, 128).transpose(1, 2)
    torch.manual_seed(1)
    y = fast_dropout(x, 0.1)
    assert y.shape == x.shape and torch.all((y == 0) | torch.isclose(y, x / 0.9))


def test_fused_kernel_gives_the_same_mask_on_any_number_of_threads():
    if _native.load() is None:
        pytest.skip("no C compiler here: the fused kernel is unavailable")
    x = torch.randn(3776, 512)                 # above the kernel's OpenMP threshold (32,768 elements)
    threads = torch.get_num_threads()
    out = []
    try:
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            torch.manual_seed(5)
            out.append(fast_dropout(x, 0.1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert (out[0] != 0).float().mean().item() == pytest.approx(0.9, abs=0.002)
