"""Checkpoints: a directory with `config.json` + `model.safetensors`.

Our directories are also `transformers` directories (for continuous-action, vector-state
models): config.json carries `model_type: decision_transformer` and every field
`transformers.DecisionTransformerConfig` needs, and the tensor names are the same, so
`transformers.DecisionTransformerModel.from_pretrained(dir)` loads them as they are.

Reading accepts: our directories; `transformers` directories (`model.safetensors` and/or
`pytorch_model.bin`, including the 2022 Hub layout: a 4.17 config without `max_length` -> K = 20,
GPT-2 attention buffers in the .bin); or a Hub id, resolved with `huggingface_hub`.
Loading is strict, and `.bin` files are only read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from decision_transformer.errors import CheckpointError, DTError
from decision_transformer.fileio import atomic_dir, make_plain, why
from decision_transformer.models.policy import (
    PolicyConfig,
    build,
    config_from_dict,
)
from decision_transformer.rundir import checkpoint_of

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
BIN = "pytorch_model.bin"
DEFAULT_K = 20  # the Hub configs have no max_length; the blog read the generation default (20)
# GPT-2 attention buffers that old `transformers` versions saved with the weights.
_IGNORED = re.compile(r"^encoder\.h\.\d+\.attn\.(bias|masked_bias)$")
_METADATA = ("context_length", "return_scale", "state_mean", "state_std", "env_id", "target_returns")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def transformers_config(cfg) -> dict:
    """The keys `transformers.DecisionTransformerConfig` reads (model_type included)."""
    return {
        "model_type": "decision_transformer", "architectures": ["DecisionTransformerModel"],
        "state_dim": cfg.state_dim, "act_dim": cfg.act_dim, "hidden_size": cfg.hidden_size,
        "max_ep_len": cfg.max_ep_len, "action_tanh": cfg.action_tanh, "vocab_size": cfg.vocab_size,
        "n_positions": cfg.n_positions, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
        "n_inner": cfg.n_inner, "activation_function": cfg.activation_function,
        "resid_pdrop": cfg.resid_pdrop, "embd_pdrop": cfg.embd_pdrop, "attn_pdrop": cfg.attn_pdrop,
        "layer_norm_epsilon": cfg.layer_norm_epsilon, "initializer_range": cfg.initializer_range,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "add_cross_attention": False,
        "bos_token_id": None, "eos_token_id": None, "torch_dtype": "float32",
    }


def is_transformers_compatible(cfg: PolicyConfig) -> bool:
    """The model's own answer (Policy.transformers_compatible), through the registry."""
    from decision_transformer.models.policy import lookup
    return lookup(cfg.architecture)[1].transformers_compatible(cfg)


def save_pretrained(model, path, *, transformers_only: bool = False) -> Path:
    """Write `path/config.json` + `path/model.safetensors` atomically (temp dir + rename)."""
    return atomic_dir(Path(path), lambda tmp: write_checkpoint_files(model, tmp, transformers_only=transformers_only))


def write_checkpoint_files(model, d: Path, *, transformers_only: bool = False) -> None:
    """config.json + model.safetensors into the (temporary) directory d."""
    cfg = model.config
    if transformers_only:  # evaluation metadata rides along as extra keys, which transformers keeps
        conf = {k: getattr(cfg, k) for k in _METADATA}
    else:
        conf = {"decision_transformer": cfg.to_dict()}
    if is_transformers_compatible(cfg):
        conf = {**transformers_config(cfg), **conf}
    elif transformers_only:
        raise CheckpointError(
            f"a {cfg.action_type}-action, {cfg.state_type}-state {cfg.architecture} model has no transformers "
            "equivalent (DecisionTransformerModel is a DT with continuous actions + vector states only)")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_tensors(tensors, d / WEIGHTS, metadata={"format": "pt"})
    (d / CONFIG).write_text(json.dumps(conf, indent=2) + "\n")


def _read_config(d: Path) -> PolicyConfig:
    p = d / CONFIG
    if not p.is_file():
        raise CheckpointError(f"{d}: no {CONFIG} here; a checkpoint is a directory with {CONFIG} + {WEIGHTS}: pass one, "
                              f"or restore its {CONFIG}")
    try:
        raw = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p}: not valid JSON ({e}); the checkpoint is corrupt, re-save or re-download it")
    if not isinstance(raw, dict) or not isinstance(raw.get("decision_transformer", {}), dict):
        raise CheckpointError(f"{p}: not a checkpoint configuration (a JSON object is expected)")
    try:
        if "decision_transformer" in raw:                      # ours: any registered model
            d = raw["decision_transformer"]
        else:
            if raw.get("model_type") not in (None, "decision_transformer"):
                raise CheckpointError(f"{p}: model_type is {raw.get('model_type')!r}, not a Decision Transformer")
            d = {**raw, "architecture": "dt", "context_length": int(raw.get("max_length") or DEFAULT_K)}
        missing = [k for k in ("state_dim", "act_dim") if k not in d]
        if missing:
            raise CheckpointError(f"{p}: no {' or '.join(missing)} in the configuration; the file is incomplete")
        return config_from_dict(d)
    except CheckpointError:
        raise
    except (TypeError, ValueError, DTError) as e:
        raise CheckpointError(f"{p}: invalid configuration ({e}); restore the file, or re-save the checkpoint")


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> None:
    """safetensors' save_file, with its I/O errors raised as OSError (a full disk is ENOSPC), so
    callers handle every failed write the same way."""
    import errno

    from safetensors import SafetensorError
    from safetensors.torch import save_file
    try:
        save_file(tensors, str(path), metadata=metadata)
        make_plain(path)                            # readable like config.json beside it, not 0600
    except SafetensorError as e:
        msg = str(e)
        if "os error 28" in msg:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise OSError(f"cannot write {path}: {msg}") from None


def read_weights(d: Path) -> dict[str, torch.Tensor]:
    if (d / WEIGHTS).is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(d / WEIGHTS))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{d / WEIGHTS}: cannot read ({e}); the file is corrupt or truncated: restore it, or "
                                  "re-save or re-download the checkpoint")
    if (d / BIN).is_file():
        import pickle
        import warnings
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sd = torch.load(str(d / BIN), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:           # torch's own text suggests weights_only=False: never do that
            raise CheckpointError(f"{d / BIN}: holds Python objects besides tensors; it is read with weights_only=True "
                                  "only, because loading such objects could run code: only plain state dicts of "
                                  "tensors are accepted")
        except Exception as e:  # other pickle/zip errors come in many types
            raise CheckpointError(f"{d / BIN}: cannot read it as a plain state dict ({why(e)}); it is corrupt "
                                  "or truncated")
        if not isinstance(sd, dict):
            raise CheckpointError(f"{d / BIN}: holds a {type(sd).__name__}, not a state dict")
        return sd
    raise CheckpointError(f"{d}: no weights ({WEIGHTS} or {BIN}) in this directory: restore them, or re-save the checkpoint")


def load_state_dict_strict(model, sd: dict, where: str = "checkpoint") -> None:
    """Load or fail naming every missing, unexpected or wrongly shaped tensor."""
    sd = {k: v for k, v in sd.items() if not _IGNORED.match(k)}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k} {tuple(sd[k].shape)} != {tuple(own[k].shape)}" for k in sorted(set(sd) & set(own))
              if tuple(sd[k].shape) != tuple(own[k].shape)]
    kinds = [f"{k} {sd[k].dtype} where {own[k].dtype} belongs" for k in sorted(set(sd) & set(own))
             if sd[k].dtype.is_floating_point != own[k].dtype.is_floating_point]   # fp16/bf16/fp64 weights load
    problems = []
    if kinds:
        problems.append(f"wrong type {'; '.join(kinds)}")
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected)}")
    if shapes:
        problems.append(f"wrong shape {'; '.join(shapes)}")
    if problems:
        raise CheckpointError(f"{where}: the weights ({WEIGHTS}) do not match the config: {' | '.join(problems)}; "
                              "re-save the checkpoint")
    model.load_state_dict(sd, strict=True)


def resolve(source) -> Path:
    """A local checkpoint directory, a `dt train` run directory (its last checkpoint), or a Hub id
    downloaded (or found in the local cache) with huggingface_hub."""
    p = Path(source)
    if p.is_dir():
        return checkpoint_of(p)                    # a run directory stands for its last checkpoint
    if p.exists():
        raise CheckpointError(f"{p}: is a file; a checkpoint is a directory with {CONFIG} + {WEIGHTS}")
    if not _HUB_ID.match(str(source)):
        raise CheckpointError(f"{source}: no such checkpoint directory")
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(str(source), allow_patterns=[CONFIG, WEIGHTS, BIN, "README.md"]))
    except Exception as e:
        raise CheckpointError(
            f"{source}: not a local directory, and the Hugging Face Hub could not provide it "
            f"({why(e)}); download it where the Hub is reachable and pass the directory")


def from_pretrained(source, *, state_mean=None, state_std=None, context_length=None,
                    return_scale=None, env_id=None, map_location="cpu"):
    """Load a checkpoint (see module doc); keyword arguments fill or override evaluation metadata."""
    d = resolve(source)
    cfg = _read_config(d)
    for k, v in dict(state_mean=state_mean, state_std=state_std, context_length=context_length,
                     return_scale=return_scale, env_id=env_id).items():
        if v is not None:
            setattr(cfg, k, [float(x) for x in v] if k.startswith("state_") else v)
    for k in ("state_mean", "state_std"):
        v = getattr(cfg, k)
        if v is not None and len(v) != cfg.state_dim:
            raise CheckpointError(f"{k} has {len(v)} values but the model's state_dim is {cfg.state_dim}")
    model = build(cfg)
    load_state_dict_strict(model, read_weights(d), where=str(d))
    return model.to(map_location).eval()


def export_transformers(source, out, overwrite: bool = False) -> Path:
    """Write a directory that `transformers.DecisionTransformerModel.from_pretrained` loads.

    An existing `out` is never touched unless `overwrite`, and even then only if it is a
    checkpoint directory (config.json + weights, nothing else but a model card): the export
    never deletes what it did not write."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise CheckpointError(f"{out} already exists: choose another output, or pass --overwrite to replace "
                                  "a checkpoint directory there")
        extra = sorted(p.name for p in out.iterdir() if p.name not in (CONFIG, WEIGHTS, BIN, "README.md")) \
            if out.is_dir() and not out.is_symlink() else None
        if extra is None or not (out / CONFIG).is_file() or extra:
            raise CheckpointError(f"{out} is not a checkpoint directory (" +
                                  ("it holds " + ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
                                   if extra else "no config.json + weights" if extra is not None else "not a directory") +
                                  "): --overwrite only replaces a checkpoint directory; choose another output")
    from decision_transformer.fileio import check_writable
    check_writable(out)
    model = from_pretrained(source)
    return save_pretrained(model, out, transformers_only=True)
