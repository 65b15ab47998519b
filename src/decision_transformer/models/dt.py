"""The Decision Transformer (Chen et al., 2021), weight-compatible with `transformers`.

Per timestep t the model sees three tokens, interleaved R_1, s_1, a_1, R_2, s_2, a_2, ...:
a return-to-go, a state and an action, each embedded by its own layer plus a learned
embedding of the episode timestep. A causal GPT-2 trunk reads the 3L tokens; the action a_t
is predicted from the hidden state of token s_t, the next state and return from token a_t.

Parameter names and shapes equal `transformers.DecisionTransformerModel` (its GPT-2 Conv1D
weights are stored (in, out), so we keep them that way and use `x @ W + b`), including the
`encoder.wpe` table of which only row 0 is ever used: the Hub model calls its trunk with all
position ids = 0, so row 0 is added to every token.

Outputs at padded (attention_mask = 0) positions are not meaningful: every padded query only
sees itself. `transformers` leaves them implementation-defined too (its eager and SDPA paths
disagree there); real positions match it to float precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from decision_transformer.models.dropout import FastDropout, fast_dropout
from decision_transformer.models.encoders import image_encoder
from decision_transformer.models.policy import Policy, PolicyConfig, register
from decision_transformer.options import option


@dataclass
class DecisionTransformerConfig(PolicyConfig):
    """The policy fields (policy.py) plus the transformer's; field names are `transformers`'."""
    hidden_size: int = option(128, "embedding width", range="[1, inf)", cli=False)
    n_layer: int = option(3, "transformer blocks", range="[1, inf)", cli=False)
    n_head: int = option(1, "attention heads", range="[1, inf)", cli=False)
    n_inner: int | None = option(None, "MLP width (None: 4 x hidden_size)", range="[1, inf)", cli=False)
    activation_function: str = "relu"
    resid_pdrop: float = option(0.1, "residual dropout", range="[0, 1)", cli=False)
    embd_pdrop: float = option(0.1, "embedding dropout", range="[0, 1)", cli=False)
    attn_pdrop: float = option(0.1, "attention dropout", range="[0, 1)", cli=False)
    layer_norm_epsilon: float = option(1e-5, "LayerNorm epsilon", range="(0, inf)", cli=False)
    initializer_range: float = option(0.02, "std of the initial weights", range="[0, inf)", cli=False)
    n_positions: int = option(1024, "rows of the (row-0-only) GPT-2 position table", range="[1, inf)", cli=False)
    embed_tanh: bool = False        # tanh on the return (and vector state / continuous action) embeddings: Atari DT
    timestep_embedding: bool = True  # False: no timestep embedding (the Online DT's default); not `transformers`'
    vocab_size: int = 1
    architecture: str = "dt"

    def __post_init__(self):
        super().__post_init__()
        if self.hidden_size % self.n_head:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by n_head {self.n_head}")
        if self.activation_function not in _ACT:
            raise ValueError(f"activation_function must be one of {sorted(_ACT)}, got {self.activation_function!r}")

    @classmethod
    def from_training(cls, opts, **policy) -> "DecisionTransformerConfig":
        """From the training options (train.TrainConfig) and the policy fields the data gives."""
        return cls(hidden_size=opts.hidden_size, n_layer=opts.n_layer, n_head=opts.n_head,
                   activation_function=opts.activation_function, resid_pdrop=opts.dropout, embd_pdrop=opts.dropout,
                   attn_pdrop=opts.dropout, embed_tanh=opts.embed_tanh,
                   timestep_embedding=opts.timestep_embedding, **policy)


_ACT = {"relu": F.relu, "gelu": lambda x: F.gelu(x, approximate="tanh"),
        "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "gelu_exact": F.gelu, "tanh": torch.tanh, "silu": F.silu}
ACTIVATIONS = tuple(_ACT)


# Inference on many rows (batched evaluation): oneDNN's linear with the bias and ReLU fused into
# the GEMM epilogue, ~2x faster than addmm + relu at 50 envs x 59 tokens (docs/performance.md).
# Same math, different kernel (outputs agree to ~1e-6). Training and small batches use addmm.
_LINEAR_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None
FUSED_MIN_ROWS = 512


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored (in, out), y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.n_in = n_in                          # a Python int: no shape ops in an exported graph
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self._wt_cache = None                     # (version, ptr, W^T contiguous) for the fused path

    def forward(self, x, relu: bool = False):  # (..., n_in) -> (..., n_out)
        x2 = x.reshape(-1, self.n_in)
        if (_LINEAR_POINTWISE is not None and x2.shape[0] >= FUSED_MIN_ROWS and torch.is_inference_mode_enabled()
                and x.dtype == torch.float32 and x.device.type == "cpu"):
            key = (self.weight._version, self.weight.data_ptr())
            if self._wt_cache is None or self._wt_cache[0] != key:
                self._wt_cache = (key, self.weight.t().contiguous())
            y = _LINEAR_POINTWISE(x2, self._wt_cache[1], self.bias, "relu" if relu else "none", [], "")
        else:
            y = torch.addmm(self.bias, x2, self.weight)
            if relu:
                y = torch.relu_(y)      # in place on addmm's fresh output (addmm's backward does not need it)
        return y.view(*x.shape[:-1], -1)


# ---------------------------------------------------------------------------------------------
# The trunk: GPT-2 blocks, attention through scaled_dot_product_attention.
# ---------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, cfg: DecisionTransformerConfig):
        super().__init__()
        self.n_head, self.h = cfg.n_head, cfg.hidden_size
        self.c_attn = Conv1D(cfg.hidden_size, 3 * cfg.hidden_size)
        self.c_proj = Conv1D(cfg.hidden_size, cfg.hidden_size)
        self.attn_pdrop, self.resid_drop = cfg.attn_pdrop, FastDropout(cfg.resid_pdrop)

    def forward(self, x, mask, query: slice | None = None, cache=None):
        # x (B, T, H); mask (B|1, 1, Tq, T) bool, True = may attend, or None = causal, no padding.
        # query: the token positions whose outputs are wanted (None = all T); keys are always all T.
        # With a query and mask None, every query sees every key.
        # cache: (k_buf, v_buf, new, window) for the KV-cache mode: the T new tokens' keys and values
        # are written to buf[:, :, new] and the queries attend over buf[:, :, window] (mask over it).
        B, T, H = x.shape
        nh, hd = self.n_head, H // self.n_head
        q, k, v = self.c_attn(x).split(H, dim=2)                   # 3 x (B, T, H)
        if query is not None:
            q = q[:, query]                                         # (B, Tq, H)
        if nh == 1:                                                 # the same views, fewer ops in a graph
            q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
        else:
            q = q.reshape(B, -1, nh, hd).transpose(1, 2)            # (B, nh, Tq, hd)
            k = k.view(B, T, nh, hd).transpose(1, 2)                # (B, nh, T, hd)
            v = v.view(B, T, nh, hd).transpose(1, 2)
        if cache is not None:
            k_buf, v_buf, new, window = cache
            k_buf[:, :, new], v_buf[:, :, new] = k, v
            k, v = k_buf[:, :, window], v_buf[:, :, window]
        p = self.attn_pdrop if self.training else 0.0
        traced_bias = torch.jit.is_tracing() and mask is not None and mask.is_floating_point()
        if (p > 0 and x.device.type == "cpu") or traced_bias:
            # Same math as SDPA(dropout_p): softmax(qk^T/sqrt(d) + mask), dropout, @ v; spelled
            # out because the CPU SDPA kernel draws its dropout mask ~4x slower (see dropout.py),
            # and for ONNX export (fewer graph nodes than SDPA's export).
            # Other devices use SDPA with dropout_p, and its fused kernels.
            # Here `mask` is an additive float bias (0 / -inf): the trunk's, built once, or the
            # exporter's input; or None.
            att = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / math.sqrt(hd))  # (B, nh, Tq, T)
            if mask is not None:
                att = att.add_(mask)
            att = att.softmax(dim=-1)
            y = fast_dropout(att, p) @ v                            # (B, nh, Tq, hd)
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=query is None, dropout_p=p, scale=1.0 / math.sqrt(hd))
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=1.0 / math.sqrt(hd))
        y = y.squeeze(1) if nh == 1 else y.transpose(1, 2).reshape(B, -1, H)   # (B, Tq, H)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: DecisionTransformerConfig):
        super().__init__()
        inner = cfg.n_inner or 4 * cfg.hidden_size
        self.c_fc = Conv1D(cfg.hidden_size, inner)
        self.c_proj = Conv1D(inner, cfg.hidden_size)
        self.act = _ACT[cfg.activation_function]
        self.dropout = FastDropout(cfg.resid_pdrop)

    def forward(self, x):  # (B, T, H) -> (B, T, H)
        if self.act is F.relu:
            h = self.c_fc(x, relu=True)
        else:
            h = self.act(self.c_fc(x))
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, cfg: DecisionTransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, mask, query: slice | None = None, cache=None):  # (B, T, H) -> (B, Tq, H)
        a = self.attn(self.ln_1(x), mask, query, cache)
        x = (x if query is None else x[:, query]) + a
        return x + self.mlp(self.ln_2(x))


class GPT2Trunk(nn.Module):
    """Named like transformers' DecisionTransformerGPT2Model: wte (unused), wpe (row 0), h, ln_f."""

    def __init__(self, cfg: DecisionTransformerConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)    # kept for weight compatibility
        self.wpe = nn.Embedding(cfg.n_positions, cfg.hidden_size)   # only row 0 is used
        self.drop = FastDropout(cfg.embd_pdrop)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)

    def forward(self, x, mask, query: slice | None = None):
        """x (B, T, H) token embeddings + wpe row 0, mask (B, 1, T, T) or None (causal, no
        padding) -> (B, Tq, H).
        With `query`, the last layer computes attention and MLP for those positions only: the
        outputs no later use needs are never computed (every earlier layer still runs on all T)."""
        T = x.shape[1]
        x = self.drop(x)            # x already carries wpe row 0 (added in DecisionTransformer.embed)
        if self.training and self.h[0].attn.attn_pdrop > 0 and x.device.type == "cpu":   # explicit attention:
            if mask is None:                                        # one additive bias for all layers
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_()[None, None]
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(~mask, float("-inf"))
        for block in self.h[:-1]:
            x = block(x, mask)
        if query is not None:
            if mask is not None:
                mask = mask[:, :, query]
            elif query != slice(T - 1, T):                          # a lone last query sees all keys
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_()[None, None, query]
        return self.ln_f(self.h[-1](x, mask, query))


# ---------------------------------------------------------------------------------------------
# The model. Modality embeddings: Linear for vectors, a conv encoder for frames (encoders.py).
# ---------------------------------------------------------------------------------------------

class DecisionTransformer(Policy):
    window_anchor = "start"         # training windows as the official get_batch draws them (sampler.py)

    def __init__(self, config: DecisionTransformerConfig | None = None, **kwargs):
        super().__init__()
        cfg = self.config = config or DecisionTransformerConfig(**kwargs)
        H = cfg.hidden_size
        self.encoder = GPT2Trunk(cfg)
        self.embed_timestep = nn.Embedding(cfg.max_ep_len, H)
        self.embed_return = nn.Linear(1, H)
        if cfg.state_type == "image":
            self.embed_state = image_encoder(cfg, H)
        else:
            self.embed_state = nn.Linear(cfg.state_dim, H)
        if cfg.action_type == "discrete":
            self.embed_action = nn.Sequential(nn.Embedding(cfg.act_dim, H), nn.Tanh())
        else:
            self.embed_action = nn.Linear(cfg.act_dim, H)
        self.embed_ln = nn.LayerNorm(H)
        # image states are not reconstructed (the paper predicts actions only)
        self.predict_state = nn.Linear(H, cfg.state_dim) if cfg.state_type == "vector" else None
        tanh = cfg.action_tanh and cfg.action_type == "continuous"
        self.predict_action = nn.Sequential(nn.Linear(H, cfg.act_dim), *([nn.Tanh()] if tanh else []))
        self.predict_return = nn.Linear(H, 1)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():                    # GPT-2's scaled residual init
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, cfg.initializer_range / math.sqrt(2 * cfg.n_layer))
        self._drop_timestep_embedding()

    def _drop_timestep_embedding(self):
        """config.timestep_embedding False (the Online DT's default): the timestep table is zeros and
        frozen, so every path that embeds tokens (training, the exact forward, the KV cache, the ONNX
        graph) adds nothing, and the checkpoint keeps the DT's layout. The model then knows its place
        in the episode from the return-to-go alone."""
        if not self.config.timestep_embedding:
            nn.init.zeros_(self.embed_timestep.weight)
            self.embed_timestep.weight.requires_grad_(False)

    def init_official(self):
        """Re-initialise as the official code does (kzl/decision-transformer, gym/): only the GPT-2
        trunk gets N(0, initializer_range) (its own init, without GPT-2's scaled residual
        projections) and no position embedding (the official trunk has none: wpe is zero); every
        DT-level layer (the timestep, return, state and action embeddings, embed_ln, the heads)
        keeps PyTorch's defaults: nn.Embedding N(0, 1), nn.Linear kaiming-uniform. The default
        __init__ gives every layer N(0, 0.02), as `transformers` does."""
        self.encoder.apply(self._init_weights)
        nn.init.zeros_(self.encoder.wpe.weight)
        for part in (self.embed_timestep, self.embed_return, self.embed_state, self.embed_action, self.embed_ln,
                     self.predict_state, self.predict_action, self.predict_return):
            for m in part.modules() if part is not None else ():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self._drop_timestep_embedding()
        return self

    def _init_weights(self, m):
        std = self.config.initializer_range
        if isinstance(m, (nn.Linear, Conv1D)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def embed_modalities(self, states, actions, returns_to_go):
        """Each modality's embedding before the timestep's: (r, s, a), each (..., H). Image
        encoders and the discrete action embedding end in tanh; `embed_tanh` (the Atari DT's)
        puts one on the others. The one place tokens are embedded (training, the exact forward,
        the KV cache, the ONNX graph)."""
        s = self.embed_state(states)
        a = self.embed_action(actions.long() if self.config.action_type == "discrete" else actions)
        r = self.embed_return(returns_to_go)
        if self.config.embed_tanh:
            r = torch.tanh(r)
            s = s if self.config.state_type == "image" else torch.tanh(s)
            a = a if self.config.action_type == "discrete" else torch.tanh(a)
        return r, s, a

    def embed(self, states, actions, returns_to_go, timesteps):
        """Interleaved token embeddings, layer-normed, plus the trunk's position row 0: (B, 3L, H)."""
        B, L = timesteps.shape
        time = self.embed_timestep(timesteps)                       # (B, L, H)
        r, s, a = self.embed_modalities(states, actions, returns_to_go)
        x = (torch.stack((r, s, a), dim=2) + time[:, :, None]).reshape(B, 3 * L, -1)  # R1 s1 a1 R2 ...
        return self.norm_tokens(x)

    def norm_tokens(self, x):
        """embed_ln(x) + the trunk's position row 0, in one op: row 0 folded into embed_ln's bias
        (see GPT2Trunk.forward). Every path that embeds tokens ends here (training, the exact
        last-action forward, the KV cache, the ONNX graph)."""
        ln = self.embed_ln
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias + self.encoder.wpe.weight[0], ln.eps)

    @staticmethod
    def token_mask(attention_mask, T: int):
        """(B, L) real-step mask -> (B, 1, T, T) bool: causal, real keys only, a query always sees itself."""
        keys = attention_mask.bool().repeat_interleave(3, dim=1)[:, :T]   # (B, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=keys.device).tril_()
        return (causal & keys[:, None, None, :]) | torch.eye(T, dtype=torch.bool, device=keys.device)

    @classmethod
    def window_masks(cls, K: int):
        """The token masks of a K-step window whose last c steps are real, for c = 0..K: (K+1, 1, 3K-1, 3K-1),
        indexed by the real-step count (the Agent's windows are left-padded)."""
        steps = (torch.arange(K)[None, :] >= K - torch.arange(K + 1)[:, None]).float()   # (K+1, K)
        return cls.token_mask(steps, 3 * K - 1)

    def forward(self, states=None, actions=None, rewards=None, returns_to_go=None, timesteps=None,
                attention_mask=None, return_dict=False, **unused):
        """states (B, L, state_dim | C,H,W), actions (B, L, act_dim) or (B, L) indices,
        returns_to_go (B, L, 1), timesteps (B, L) long, attention_mask (B, L) 1 = real.
        Returns (state_preds (B, L, state_dim) | None, action_preds (B, L, act_dim), return_preds (B, L, 1)).
        `rewards` is accepted and ignored, as in `transformers`."""
        B, L = timesteps.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, L, dtype=torch.bool, device=timesteps.device)
        x = self.embed(states, actions, returns_to_go, timesteps)   # (B, 3L, H)
        mask = None if bool(attention_mask.all()) else self.token_mask(attention_mask, 3 * L)
        x = self.encoder(x, mask)                                   # (B, 3L, H)
        x = x.view(B, L, 3, -1)                                     # [:, :, 1] = s_t tokens, [:, :, 2] = a_t
        state_preds = self.predict_state(x[:, :, 2]) if self.predict_state is not None else None
        action_preds = self.predict_action(x[:, :, 1])
        return_preds = self.predict_return(x[:, :, 2])
        if return_dict:
            return {"state_preds": state_preds, "action_preds": action_preds, "return_preds": return_preds}
        return state_preds, action_preds, return_preds

    def forward_actions(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        """Action predictions only, (B, L, act_dim): equal to forward(...)[1], for training on
        the paper's action loss."""
        return self.predict_action(self.state_features(states, actions, returns_to_go, timesteps, attention_mask))

    def state_features(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        """The trunk's output at the L state tokens, (B, L, H): what the action head reads. The final
        a_L token (no state token sees it) is not embedded, and the last layer computes attention +
        MLP for the L state tokens only, as nothing else reaches the loss: ~18% fewer FLOPs in the
        paper config."""
        B, L = timesteps.shape
        x = self.embed(states, actions, returns_to_go, timesteps)[:, :-1]   # (B, 3L-1, H)
        T = x.shape[1]
        if attention_mask is None:
            mask = None
        elif torch.compiler.is_compiling() or not bool(attention_mask.all()):  # compiled: no data-dependent branch
            mask = self.token_mask(attention_mask, T)
        else:
            mask = None
        return self.encoder(x, mask, query=slice(1, T, 3))         # (B, L, H): the s_t tokens

    @torch.inference_mode()
    def predict_last_action(self, states, actions, returns_to_go, timesteps, attention_mask=None,
                            token_mask=None):
        """The action at the final timestep only: (B, act_dim). Same values as
        forward(...)[1][:, -1], with less work (see last_action).
        token_mask: a precomputed (B, 1, 3L-1, 3L-1) mask (see token_mask()); if both masks are
        None, no step is padding."""
        if token_mask is None and attention_mask is not None and not bool(attention_mask.all()):
            token_mask = self.token_mask(attention_mask, 3 * timesteps.shape[1] - 1)
        return self.last_action(states, actions, returns_to_go, timesteps, token_mask)

    def last_action(self, states, actions, returns_to_go, timesteps, mask=None):
        """The exact last-action forward, without branches on data (the ONNX graph is this
        method, traced): the final a_t token (which s_t cannot see) is not embedded, and the last
        layer runs its attention and MLP for the s_t query alone. mask: (B, 1, 3L-1, 3L-1), bool
        (True = may attend) or an additive float bias (0 / -inf), or None (no padding)."""
        x = self.embed(states, actions, returns_to_go, timesteps)[:, :-1]   # (B, 3L-1, H): drop a_L
        T = x.shape[1]
        x = self.encoder(x, mask, query=slice(T - 1, T))           # (B, 1, H)
        return self.predict_action(x[:, 0])

    def step_forward(self, states, actions, returns_to_go, timesteps, real):
        """last_action with the token mask built from (N, K) real steps (the exported graph)."""
        T = 3 * int(real.shape[1]) - 1        # a constant in the traced graph: K is fixed per export
        allowed = self.token_mask(real, T)                                 # (N, 1, T, T), the model's rule
        bias = torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill(~allowed, float("-inf"))
        return self.last_action(states, actions, returns_to_go, timesteps, bias)

    @staticmethod
    def transformers_compatible(config) -> bool:
        """transformers.DecisionTransformerModel holds continuous actions and vector states only, and
        always embeds the timestep."""
        return config.action_type == "continuous" and config.state_type == "vector" and config.timestep_embedding

    # Checkpoint I/O lives in checkpoint.py; these are the familiar entry points.
    def save_pretrained(self, path, **kw):
        from decision_transformer.models.checkpoint import save_pretrained
        return save_pretrained(self, path, **kw)

    @classmethod
    def from_pretrained(cls, source, **kw) -> "DecisionTransformer":
        from decision_transformer.models.checkpoint import from_pretrained
        return from_pretrained(source, **kw)


register("dt", DecisionTransformerConfig, DecisionTransformer)
