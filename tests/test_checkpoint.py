import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import hf_and_ours, random_batch

from decision_transformer import DecisionTransformer, DecisionTransformerConfig
from decision_transformer.errors import CheckpointError
from decision_transformer.models.checkpoint import (
    export_transformers,
    from_pretrained,
    save_pretrained,
)


def _same_outputs(a, b, batch=None):
    batch = batch or random_batch(3, 20, pad=[0, 4, 17])
    with torch.no_grad():
        x = a(**batch, return_dict=False)
        y = b(**batch, return_dict=False)
    real = batch["attention_mask"].bool()
    return max((p - q)[real].abs().max().item() for p, q in zip(x, y))


def test_ours_save_load_roundtrip_keeps_metadata(tmp_path):
    _, ours = hf_and_ours()
    ours.config.state_mean = [0.1] * 11
    ours.config.state_std = [2.0] * 11
    ours.config.return_scale, ours.config.env_id, ours.config.target_returns = 1000.0, "Hopper-v5", [3600, 1800]
    ours.save_pretrained(tmp_path / "ck")
    assert sorted(os.listdir(tmp_path / "ck")) == ["config.json", "model.safetensors"]
    back = DecisionTransformer.from_pretrained(tmp_path / "ck")
    assert _same_outputs(ours, back) == 0.0
    assert back.config.to_dict() == ours.config.to_dict()



def test_saved_files_have_the_permissions_of_plain_files(tmp_path):
    """safetensors creates its file 0600; a checkpoint is shared like any file (umask applies)."""
    _, ours = hf_and_ours()
    old = os.umask(0o022)
    try:
        ours.save_pretrained(tmp_path / "ck")
    finally:
        os.umask(old)
    modes = {f: (tmp_path / "ck" / f).stat().st_mode & 0o777 for f in ("config.json", "model.safetensors")}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644}
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o755

def test_transformers_save_pretrained_loads_in_ours(tmp_path):
    hf, _ = hf_and_ours()
    hf.save_pretrained(tmp_path / "hf")
    ours = DecisionTransformer.from_pretrained(tmp_path / "hf")
    assert ours.config.context_length == 20
    assert _same_outputs(hf, ours) <= 1e-5


def test_ours_and_export_load_in_transformers(tmp_path):
    from transformers import DecisionTransformerModel

    _, ours = hf_and_ours()
    ours.config.state_mean, ours.config.state_std = [0.5] * 11, [1.5] * 11
    ours.save_pretrained(tmp_path / "ours")
    direct = DecisionTransformerModel.from_pretrained(tmp_path / "ours").eval()
    assert _same_outputs(direct, ours) <= 1e-5
    from decision_transformer.cli import main
    assert main(["export", str(tmp_path / "ours"), "--format", "transformers", str(tmp_path / "exp")]) == 0
    exported = DecisionTransformerModel.from_pretrained(tmp_path / "exp").eval()
    assert _same_outputs(exported, ours) <= 1e-5
    again = from_pretrained(tmp_path / "exp")                 # metadata survives the export
    assert again.config.state_mean == [0.5] * 11


def _hub_2022_layout(d, ours):
    """What edbeeching/decision-transformer-gym-* hold: a transformers-4.17 config without
    max_length and a pickled .bin with GPT-2's attention buffers."""
    d.mkdir()
    conf = {"_name_or_path": "edbeeching/decision-transformer-gym-hopper-medium",
            "architectures": ["DecisionTransformerModel"], "model_type": "decision_transformer",
            "act_dim": 3, "state_dim": 11, "action_tanh": True, "activation_function": "relu",
            "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1, "hidden_size": 128,
            "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "max_ep_len": 1000,
            "n_head": 1, "n_inner": None, "n_layer": 3, "n_positions": 1024, "n_embd": 768,
            "bos_token_id": 50256, "eos_token_id": 50256, "scale_attn_weights": True,
            "torch_dtype": "float32", "transformers_version": "4.17.0.dev0", "use_cache": True,
            "vocab_size": 1}
    (d / "config.json").write_text(json.dumps(conf))
    sd = dict(ours.state_dict())
    for i in range(3):
        sd[f"encoder.h.{i}.attn.bias"] = torch.tril(torch.ones(1024, 1024, dtype=torch.uint8)).view(1, 1, 1024, 1024)
        sd[f"encoder.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(sd, d / "pytorch_model.bin")


def test_2022_hub_layout_loads_with_k20(tmp_path):
    _, ours = hf_and_ours()
    _hub_2022_layout(tmp_path / "hub", ours)
    m = from_pretrained(tmp_path / "hub", state_mean=[0.0] * 11, state_std=[1.0] * 11)
    assert m.config.context_length == 20 and m.config.state_mean == [0.0] * 11
    assert _same_outputs(ours, m) == 0.0


def test_bin_is_never_unpickled_unsafely(tmp_path):
    d = tmp_path / "evil"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "decision_transformer", "state_dim": 11, "act_dim": 3}))

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    import pickle
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Payload()}, f)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        from_pretrained(d)
    assert not (tmp_path / "pwned").exists()


def _saved(tmp_path):
    _, ours = hf_and_ours()
    ours.save_pretrained(tmp_path / "ck")
    from safetensors.torch import load_file, save_file
    return tmp_path / "ck", load_file(str(tmp_path / "ck" / "model.safetensors")), save_file


def test_missing_unexpected_and_wrong_shape_are_named(tmp_path):
    d, sd, save_file = _saved(tmp_path)
    sd2 = dict(sd); del sd2["embed_return.weight"]; sd2["extra.weight"] = torch.zeros(1)
    save_file(sd2, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing embed_return.weight \| unexpected extra.weight"):
        from_pretrained(d)
    sd3 = dict(sd); sd3["embed_state.weight"] = torch.zeros(128, 17)
    save_file(sd3, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"wrong shape embed_state.weight \(128, 17\) != \(128, 11\)"):
        from_pretrained(d)


def test_corrupt_and_missing_files(tmp_path):
    d, _, _ = _saved(tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        from_pretrained(d)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        from_pretrained(tmp_path / "empty")


def test_hub_id_offline_is_one_clear_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    p = subprocess.run([sys.executable, "-m", "decision_transformer.cli", "info",
                        "edbeeching/decision-transformer-gym-hopper-medium"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: edbeeching/decision-transformer-gym-hopper-medium: "
                                                    "not a local directory, and the Hugging Face Hub could not provide it")


def test_writes_are_atomic(tmp_path, monkeypatch):
    _, ours = hf_and_ours()
    ours.save_pretrained(tmp_path / "ck")
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_pretrained(ours, tmp_path / "ck")                 # overwrite fails half-way
    with pytest.raises(OSError):
        save_pretrained(ours, tmp_path / "new")
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck"]              # no half checkpoint, no temp left


def test_export_refuses_architectures_transformers_lacks(tmp_path):
    m = DecisionTransformer(DecisionTransformerConfig(state_dim=4, act_dim=2, action_type="discrete", n_layer=1))
    m.save_pretrained(tmp_path / "d")
    assert from_pretrained(tmp_path / "d").config.action_type == "discrete"
    with pytest.raises(CheckpointError, match="no transformers equivalent"):
        export_transformers(tmp_path / "d", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_never_deletes_what_it_did_not_write(tmp_path, capsys):
    from decision_transformer.cli import main
    _, model = hf_and_ours()
    save_pretrained(model, tmp_path / "ours")
    src = str(tmp_path / "ours")
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    plain = tmp_path / "notes.txt"
    plain.write_text("precious")
    for dest in (other, plain):
        assert main(["export", src, str(dest)]) == 2
        assert "already exists" in capsys.readouterr().err
        assert main(["export", src, str(dest), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "not a checkpoint directory" in err and len(err.strip().splitlines()) == 1
    assert (other / "keep.txt").read_text() == "precious" and plain.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt", "ours"]     # no debris
    assert main(["export", src, str(tmp_path / "exp")]) == 0
    assert main(["export", src, str(tmp_path / "exp")]) == 2                  # exists: refused
    assert main(["export", src, str(tmp_path / "exp"), "--overwrite"]) == 0   # a checkpoint dir: replaced


@pytest.mark.parametrize("edit, msg", [
    (lambda c: c.__setitem__("state_std", [0.0] * 11), "state_std must be > 0, got 0"),
    (lambda c: c.__setitem__("return_scale", 0), "return_scale must be > 0, got 0"),
    (lambda c: c.__setitem__("context_length", 5.5), "context_length must be an integer, got 5.5"),
    (lambda c: c.__setitem__("hidden_size", -16), "hidden_size must be >= 1, got -16"),
    (lambda c: c.pop("state_dim"), "no state_dim in the configuration"),
    (lambda c: c.__setitem__("max_ep_len", 0), "max_ep_len must be >= 1, got 0"),
    (lambda c: c.__setitem__("state_mean", ["nan"] + [0.0] * 10), "state_mean must be a number, got 'nan'"),
    (lambda c: c.__setitem__("act_dim", "three"), "act_dim must be an integer, got 'three'"),
    (lambda c: c.__setitem__("resid_pdrop", 1.5), "resid_pdrop must be in [0, 1), got 1.5"),
    (None, "not a checkpoint configuration (a JSON object is expected)"),
])
def test_bad_checkpoint_configs_are_one_line_errors(edit, msg, tmp_path, capsys):
    from decision_transformer.cli import main
    _, ours = hf_and_ours()
    ours.config.state_mean, ours.config.state_std, ours.config.return_scale = [0.0] * 11, [1.0] * 11, 1000.0
    save_pretrained(ours, tmp_path / "ck")
    raw = json.loads((tmp_path / "ck" / "config.json").read_text())
    if edit is None:
        raw = [1, 2]
    else:
        edit(raw["decision_transformer"])
    (tmp_path / "ck" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=re.escape(msg)):
        from_pretrained(tmp_path / "ck")
    assert main(["info", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_the_pickle_refusal_never_suggests_running_untrusted_code(tmp_path, capsys):
    from decision_transformer.cli import main
    d = tmp_path / "evil"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "decision_transformer", "state_dim": 11, "act_dim": 3}))

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    import pickle
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Payload()}, f)
    assert main(["info", str(d)]) == 2
    err = capsys.readouterr().err
    assert "could run code" in err and "weights_only=False" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists()
