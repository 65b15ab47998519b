"""An optional ONNX Runtime backend for the Agent's exact forward (`backend="onnxruntime"`).

The same computation as `DecisionTransformer.predict_last_action` (the final a_t token dropped,
the last layer run for the s_t query only), written export-friendly (`_LastAction`), exported
once per agent with the torch ONNX exporter and run by ONNX Runtime. For the small per-step forward of evaluation, PyTorch eager spends most
of its time in per-op dispatch; ONNX Runtime's per-node cost is far lower, so the same math runs
faster (bench/rollout.py). Outputs agree with the torch path to float32 rounding (~1e-6, tested).

Needs `pip install onnxruntime onnx` (the `onnx` extra); without them the Agent says so.
"""

from __future__ import annotations

import io
import math
import threading
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from decision_transformer.errors import DTError
from decision_transformer.models.dt import DecisionTransformer

_EXPORT = threading.Lock()   # torch.onnx.export keeps global state: one export at a time per process


class _LastAction(torch.nn.Module):
    """predict_last_action written for export: the residual stream stays 2-D (N*T, H) so every
    linear layer is one Gemm (ONNX Runtime fuses bias and ReLU into it), the attention mask is an
    additive bias (no Where/IsNaN nodes), and one head needs no head reshapes. Same math as the
    model (tested to float32 rounding); used only to build the ONNX graph."""

    def __init__(self, model, T: int):
        super().__init__()
        self.m, self.T = model, T

    def attn(self, blk, x, bias, last_only: bool):  # x (N*T, H), bias (N, 1, Tq, T) -> (N*Tq, H)
        a, T = blk.attn, self.T
        H, nh = a.h, a.n_head
        hd, Tq = H // nh, 1 if last_only else T
        h = F.layer_norm(x, blk.ln_1.normalized_shape, blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
        q, k, v = torch.addmm(a.c_attn.bias, h, a.c_attn.weight).reshape(-1, T, 3 * H).split(H, dim=2)
        if last_only:
            q = q[:, -1:]                                                   # (N, 1, H)
        if nh == 1:
            att = torch.matmul(q, k.transpose(1, 2)) * (1.0 / math.sqrt(hd)) + bias[:, 0]   # (N, Tq, T)
            y = torch.matmul(att.softmax(-1), v)                            # (N, Tq, H)
        else:
            q = q.reshape(-1, Tq, nh, hd).transpose(1, 2)                   # (N, nh, Tq, hd)
            k = k.reshape(-1, T, nh, hd).transpose(1, 2)
            v = v.reshape(-1, T, nh, hd).transpose(1, 2)
            att = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(hd)) + bias
            y = torch.matmul(att.softmax(-1), v).transpose(1, 2)            # (N, Tq, nh, hd)
        return torch.addmm(a.c_proj.bias, y.reshape(-1, H), a.c_proj.weight)

    @staticmethod
    def mlp(blk, x):  # (M, H) -> (M, H)
        h = F.layer_norm(x, blk.ln_2.normalized_shape, blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
        act = blk.mlp.act
        h = torch.addmm(blk.mlp.c_fc.bias, h, blk.mlp.c_fc.weight)
        return torch.addmm(blk.mlp.c_proj.bias, torch.relu(h) if act is F.relu else act(h), blk.mlp.c_proj.weight)

    def forward(self, states, actions, returns_to_go, timesteps, bias):
        H = self.m.config.hidden_size
        x = self.m.embed(states, actions, returns_to_go, timesteps)[:, :-1].reshape(-1, H)   # (N*T, H)
        *first, last = self.m.encoder.h
        for blk in first:
            x = x + self.attn(blk, x, bias, False)
            x = x + self.mlp(blk, x)
        x = x.reshape(-1, self.T, H)[:, -1] + self.attn(last, x, bias[:, :, -1:], True)     # (N, H): s_t
        x = x + self.mlp(last, x)
        lf = self.m.encoder.ln_f
        return self.m.predict_action(F.layer_norm(x, lf.normalized_shape, lf.weight, lf.bias, lf.eps))


class OnnxLastAction:
    """callable(states, actions, rtg, timesteps, attention_bias) numpy -> (N, act_dim) numpy;
    attention_bias (N, 1, 3K-1, 3K-1) float32 is 0 where a token may attend and -inf elsewhere."""

    def __init__(self, model, K: int, threads: int | None = None):
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
        N = 2                                                    # any batch: the axis is dynamic
        st = (N, K, *cfg.state_shape) if cfg.state_type == "image" else (N, K, cfg.state_dim)
        states = torch.zeros(st, dtype=torch.uint8 if cfg.state_type == "image" else torch.float32)
        actions = torch.zeros((N, K), dtype=torch.long) if cfg.action_type == "discrete" else \
            torch.zeros((N, K, cfg.act_dim))
        T = 3 * K - 1
        args = (states, actions, torch.zeros(N, K, 1), torch.zeros(N, K, dtype=torch.long), torch.zeros(N, 1, T, T))
        self.names = ["states", "actions", "returns_to_go", "timesteps", "attention_bias"]
        buf = io.BytesIO()
        was_training = model.training
        model.eval()
        try:
            with _EXPORT, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_LastAction(model, T), args, buf, input_names=self.names, output_names=["action"],
                                  dynamic_axes={n: {0: "N"} for n in self.names + ["action"]},
                                  opset_version=17, dynamo=False)
        except ImportError as e:
            raise DTError(f"exporting the model to ONNX needs the onnx package ({e}): pip install onnx")
        finally:
            model.train(was_training)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])

    @staticmethod
    def bias(token_mask) -> np.ndarray:
        """A boolean token mask (see DecisionTransformer.token_mask) -> the additive bias."""
        return np.where(np.asarray(token_mask), np.float32(0), np.float32(-np.inf)).astype(np.float32)

    def __call__(self, states, actions, returns_to_go, timesteps, attention_bias) -> np.ndarray:
        feeds = dict(zip(self.names, (np.ascontiguousarray(x) for x in
                                      (states, actions, returns_to_go, timesteps, attention_bias))))
        return self.session.run(None, feeds)[0]
