"""An optional ONNX Runtime backend for the Agent's exact forward (`backend="onnxruntime"`).

The same computation as `DecisionTransformer.predict_last_action` (the final a_t token dropped,
the last layer run for the s_t query only): the model's own `last_action` traced once per agent
by the torch ONNX exporter and run by ONNX Runtime. For the small per-step forward of evaluation, PyTorch eager spends most
of its time in per-op dispatch; ONNX Runtime's per-node cost is far lower, so the same math runs
faster (bench/rollout.py). Outputs agree with the torch path to float32 rounding (~1e-6, tested).

Needs `pip install onnxruntime onnx` (the `onnx` extra); without them the Agent says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from decision_transformer.errors import DTError
from decision_transformer.models.dt import DecisionTransformer

_EXPORT = threading.Lock()   # torch.onnx.export keeps global state: one export at a time per process


class _LastAction(torch.nn.Module):
    """The graph exported: DecisionTransformer.last_action, the model's own exact forward (one
    block implementation for training, the Agent, the KV cache and ONNX), with the attention
    mask given as an additive bias (0 / -inf)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, states, actions, returns_to_go, timesteps, bias):
        return self.m.last_action(states, actions, returns_to_go, timesteps, bias)


class OnnxLastAction:
    """callable(states, actions, rtg, timesteps, attention_bias) numpy -> (N, act_dim) numpy;
    attention_bias (N, 1, 3K-1, 3K-1) float32 is 0 where a token may attend and -inf elsewhere.
    batch: export for exactly this many rows (the Agent's N), so ONNX Runtime folds every shape
    computation away; None: any batch."""

    def __init__(self, model, K: int, threads: int | None = None, batch: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DTError("backend='onnxruntime' needs ONNX Runtime: pip install onnxruntime onnx "
                          "(or the project's [onnx] extra)")
        cfg = model.config
        if not isinstance(model, DecisionTransformer):
            raise DTError(f"backend='onnxruntime' runs Decision Transformers; this is a {cfg.architecture!r} "
                          "model: use backend='torch'")
        if next(model.parameters()).device.type != "cpu":
            raise DTError("backend='onnxruntime' runs on the CPU: move the model there (model.cpu()) "
                          "or use backend='torch'")
        N = batch or 2                                           # batch None: any batch, the axis is dynamic
        st = (N, K, *cfg.state_shape) if cfg.state_type == "image" else (N, K, cfg.state_dim)
        states = torch.zeros(st, dtype=torch.uint8 if cfg.state_type == "image" else torch.float32)
        actions = torch.zeros((N, K), dtype=torch.long) if cfg.action_type == "discrete" else \
            torch.zeros((N, K, cfg.act_dim))
        T = 3 * K - 1
        args = (states, actions, torch.zeros(N, K, 1), torch.zeros(N, K, dtype=torch.long), torch.zeros(N, 1, T, T))
        self.names = ["states", "actions", "returns_to_go", "timesteps", "attention_bias"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(_exported(model, args, self.names, dynamic=not batch), so,
                                            providers=["CPUExecutionProvider"])

    @staticmethod
    def bias(token_mask) -> np.ndarray:
        """A boolean token mask (see DecisionTransformer.token_mask) -> the additive bias."""
        return np.where(np.asarray(token_mask), np.float32(0), np.float32(-np.inf)).astype(np.float32)

    def __call__(self, states, actions, returns_to_go, timesteps, attention_bias) -> np.ndarray:
        feeds = dict(zip(self.names, (np.ascontiguousarray(x) for x in
                                      (states, actions, returns_to_go, timesteps, attention_bias))))
        return self.session.run(None, feeds)[0]


_CACHE: OrderedDict = OrderedDict()  # (weights, config, input shapes) -> ONNX bytes: the last few exports
_CACHE_SIZE = 4


def weights_digest(model) -> str:
    """A digest of the model's parameters and buffers (names, dtypes, shapes, values): equal exactly
    when the weights are."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _exported(model, args, names, dynamic: bool) -> bytes:
    """The model's last-action graph as ONNX bytes, traced for inputs shaped like `args`. The same
    weights, config and shapes give the same graph: an evaluation builds an Agent per target and
    per thread group, and a sweep or a page session many more, so the last few exports are kept,
    keyed by the weights' digest (a model trained in between is exported again)."""
    key = (type(model).__name__, json.dumps(model.config.to_dict(), sort_keys=True, default=str), weights_digest(model),
           tuple((tuple(a.shape), a.dtype) for a in args), dynamic)
    with _EXPORT:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        buf = io.BytesIO()
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_LastAction(model), args, buf, input_names=names, output_names=["action"],
                                  dynamic_axes={n: {0: "N"} for n in names + ["action"]} if dynamic else None,
                                  opset_version=17, dynamo=False)
        except ImportError as e:
            raise DTError(f"exporting the model to ONNX needs the onnx package ({e}): pip install onnx")
        finally:
            model.train(was_training)
        _CACHE[key] = buf.getvalue()
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return _CACHE[key]


class OnnxBackend:
    """The Agent's exact forward through ONNX Runtime (agent.py: TorchBackend has the interface):
    the model's own last-action forward, exported for a batch of the Agent's N."""

    def __init__(self, model, num_envs: int, K: int):
        self.run = OnnxLastAction(model, K, batch=num_envs)
        self.bias = self.run.bias(DecisionTransformer.window_masks(K).numpy())

    def reset(self, envs) -> None:
        pass

    def __call__(self, w) -> torch.Tensor:
        return torch.from_numpy(self.run(w.states, w.actions, w.returns_to_go, w.timesteps, self.bias[w.real]))


# ---------------------------------------------------------------------------------------------
# A standalone, deployable model: `dt export CKPT --format onnx OUT`
# ---------------------------------------------------------------------------------------------

ONNX_FILES = ("model.onnx", "config.json", "onnx_policy.py", "README.md")


class _Standalone(torch.nn.Module):
    """The policy's exact per-step forward on a raw K-step window: states as observed (normalised
    here), unscaled returns-to-go (scaled here), previous actions, timesteps and a 0/1 mask of
    real steps (left padding) -> the action at the last step (logits for discrete actions).
    Padded steps' states are zeroed after normalisation, as the Agent pads them."""

    def __init__(self, model, K: int):
        super().__init__()
        cfg = model.config
        self.m, self.K = model, K
        vec = cfg.state_type == "vector" and cfg.state_mean is not None
        self.register_buffer("mean", torch.tensor(cfg.state_mean if vec else [0.0], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(cfg.state_std if vec else [1.0], dtype=torch.float32))
        self.normalise, self.image = vec, cfg.state_type == "image"
        self.scale = float(cfg.return_scale or 1.0)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask):
        N, K = attention_mask.shape
        real = attention_mask > 0.5                                            # (N, K)
        if self.image:
            s = states * real.reshape(N, K, 1, 1, 1).to(states.dtype)
        else:
            s = (states - self.mean) / self.std if self.normalise else states
            s = s * real[..., None].to(s.dtype)
        return self.m.step_forward(s, actions, returns_to_go / self.scale, timesteps, real)   # the model's own


def _card(cfg, out_name: str) -> str:
    target = (cfg.target_returns or [0.0])[0]
    kind = "an action index (argmax of the logits)" if cfg.action_type == "discrete" else f"{cfg.act_dim} floats"
    return f"""# {cfg.architecture.upper()} policy for {cfg.env_id or 'its env'}, as ONNX

`model.onnx` is the policy's exact per-step forward, exported by `dt export CKPT --format onnx {out_name}`
(decision-transformer). It needs ONNX Runtime and numpy only:

```bash
pip install onnxruntime numpy gymnasium
```

```python
import gymnasium as gym
from onnx_policy import OnnxPolicy          # the file next to this card

policy = OnnxPolicy(".")                    # model.onnx + config.json
env = gym.make("{cfg.env_id}")
obs, _ = env.reset(seed=0)
policy.reset(target_return={target:g})
ret = 0.0
while True:
    action = policy.act(obs)                # {kind}
    obs, reward, terminated, truncated, _ = env.step(action)
    policy.observe(reward)
    ret += reward
    if terminated or truncated:
        break
print(ret)
```

Inputs (batch N, context K = {cfg.context_length}): `states` (N, K, {', '.join(map(str, cfg.state_shape or [cfg.state_dim]))})
{'uint8 frames' if cfg.state_type == 'image' else 'float32, as observed (the graph normalises them)'}, `actions` {'(N, K) int64' if cfg.action_type == 'discrete' else f'(N, K, {cfg.act_dim}) float32'}
(the previous actions, 0 at the last step), `returns_to_go` (N, K, 1) float32, unscaled (the graph
divides by {cfg.return_scale or 1.0:g}), `timesteps` (N, K) int64 (below {cfg.max_ep_len}), `attention_mask` (N, K) float32,
1 for real steps, left-padded with 0. Output `action`: (N, {cfg.act_dim}), the action at the last step
({'logits' if cfg.action_type == 'discrete' else 'in [-1, 1]' if cfg.action_tanh else 'unbounded'}). `config.json` holds the checkpoint's configuration
(state mean/std, return scale, reference scores).
"""


def export_onnx(source, out, overwrite: bool = False) -> Path:
    """Write OUT/{model.onnx, config.json, onnx_policy.py, README.md}: a deployable policy."""
    from decision_transformer.fileio import atomic_dir, check_writable
    from decision_transformer.models.checkpoint import CheckpointError, from_pretrained
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise CheckpointError(f"{out} already exists: choose another output, or pass --overwrite to replace "
                                  "an ONNX export there")
        extra = sorted(p.name for p in out.iterdir() if p.name not in ONNX_FILES) \
            if out.is_dir() and not out.is_symlink() else None
        if extra is None or extra or not (out / "model.onnx").is_file():
            raise CheckpointError(f"{out} is not an ONNX export (no model.onnx, or other files): --overwrite only "
                                  "replaces an export; choose another output")
    check_writable(out)
    model = from_pretrained(source).eval()
    cfg, K = model.config, model.config.context_length
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise DTError(f"exporting to ONNX needs the onnx package ({e}): pip install onnx onnxruntime")
    st = (1, K, *cfg.state_shape) if cfg.state_type == "image" else (1, K, cfg.state_dim)
    args = (torch.zeros(st, dtype=torch.uint8 if cfg.state_type == "image" else torch.float32),
            torch.zeros((1, K), dtype=torch.long) if cfg.action_type == "discrete" else torch.zeros((1, K, cfg.act_dim)),
            torch.zeros(1, K, 1), torch.zeros(1, K, dtype=torch.long), torch.ones(1, K))
    names = ["states", "actions", "returns_to_go", "timesteps", "attention_mask"]

    def write(tmp: Path):
        with _EXPORT, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Standalone(model, K), args, str(tmp / "model.onnx"), input_names=names,
                              output_names=["action"], dynamic_axes={n: {0: "N"} for n in names + ["action"]},
                              opset_version=17, dynamo=False)
        (tmp / "config.json").write_text(json.dumps({"decision_transformer": cfg.to_dict()}, indent=2) + "\n")
        shutil.copyfile(Path(__file__).with_name("onnx_policy.py"), tmp / "onnx_policy.py")
        (tmp / "README.md").write_text(_card(cfg, out.name))
    return atomic_dir(out, write)
