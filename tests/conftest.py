import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")      # tests never touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# Under pytest-xdist, each worker gets its share of the CPUs for torch's intra-op threads, and so do
# the processes the tests start: two workers that each run two threads on two cores slow each other
# 3-4x (the machine's note on threads), which made the run half as fast again.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _share = max(1, _usable // _WORKERS)
    torch.set_num_threads(_share)
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


# The files that take longest, longest first (seconds of one worker, measured on 2 AVX2 cores). Under
# `make test` (--dist loadfile --no-loadscope-reorder) the workers take files in collection order:
# the long ones first, so that no worker is left with one of them while the other has finished.
SLOWEST_FILES = ("test_results.py", "test_serve_browser.py", "test_odt.py", "test_ddp.py", "test_train.py",
                 "test_io_failures.py", "test_results_v1.py", "test_suite.py", "test_agent.py", "test_pixels.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))       # stable: the rest keep their order


def pytest_report_header(config):
    """The CPUs the run may use: the test run's time depends on them (README)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpus: {usable} usable of {os.cpu_count()}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def hopper_configs(**kw):
    """A (transformers config, our config) pair with Hopper dims and the seed's architecture."""
    from transformers import DecisionTransformerConfig as HFConfig

    from decision_transformer import DecisionTransformerConfig

    base = dict(state_dim=11, act_dim=3, hidden_size=128, max_ep_len=1000, n_layer=3, n_head=1)
    base.update(kw)
    return HFConfig(**base), DecisionTransformerConfig(**base)


def hf_and_ours(**kw):
    """A random-weight transformers model, its wpe table randomised (only row 0 is used), and ours
    loaded from its state dict with plain load_state_dict."""
    from transformers import DecisionTransformerModel

    from decision_transformer import DecisionTransformer

    hc, oc = hopper_configs(**kw)
    hf = DecisionTransformerModel(hc).eval()
    with torch.no_grad():
        hf.encoder.wpe.weight.normal_(0, 0.1)
    ours = DecisionTransformer(oc).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    return hf, ours


def random_batch(B, L, state_dim=11, act_dim=3, max_ep_len=1000, pad=None, gen=None):
    g = gen or torch.Generator().manual_seed(1)
    s = torch.randn(B, L, state_dim, generator=g)
    a = torch.rand(B, L, act_dim, generator=g) * 2 - 1
    r = torch.randn(B, L, 1, generator=g) * 3
    t = torch.randint(0, max_ep_len, (B, L), generator=g)
    mask = torch.ones(B, L)
    for i, p in enumerate(pad or []):
        mask[i, :p] = 0
        s[i, :p] = 0; a[i, :p] = 0; r[i, :p] = 0; t[i, :p] = 0
    return dict(states=s, actions=a, returns_to_go=r, timesteps=t, attention_mask=mask)
