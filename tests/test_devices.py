"""`--device` and `--precision`: explicit cpu works, what the machine lacks is one line."""

import json

import pytest
import torch
import toyenv

from decision_transformer.cli import main
from decision_transformer.devices import resolve_device
from decision_transformer.errors import DTError


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return str(toyenv.make_dataset(tmp_path_factory.mktemp("toy") / "toy.npz"))


TINY = ["--env", "LineReach-v0", "--context-length", "4", "--hidden-size", "16", "--n-layer", "1",
        "--return-scale", "10", "--max-ep-len", "32", "--target-return", "19", "--warmup-steps", "1", "--quiet"]


def test_explicit_cpu_trains_like_the_default_and_resumes_on_auto(toy, tmp_path):
    assert main(["train", "--dataset", toy, "--output", str(tmp_path / "a"), "--steps", "20", *TINY]) == 0
    assert main(["train", "--dataset", toy, "--output", str(tmp_path / "b"), "--steps", "20", "--device", "cpu",
                 *TINY]) == 0
    from safetensors.torch import load_file
    wa = load_file(tmp_path / "a" / "checkpoints" / "last" / "model.safetensors")
    wb = load_file(tmp_path / "b" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)              # same device, same seed: same weights
    assert json.loads((tmp_path / "b" / "config.json").read_text())["device"] == "cpu"
    # where a run runs may change on resume (what it computes may not)
    assert main(["train", "--resume", str(tmp_path / "b"), "--steps", "30", "--device", "auto", "--quiet"]) == 0
    assert main(["eval", str(tmp_path / "b"), "--device", "cpu", "--episodes", "2", "--num-envs", "2"]) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(toy, tmp_path, capsys):
    assert main(["train", "--dataset", toy, "--output", str(tmp_path / "c"), "--steps", "5", "--device", "cuda",
                 *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: CUDA is not available on this machine") and err.count("\n") == 1
    assert not (tmp_path / "c").exists()                            # nothing written
    assert main(["eval", "tests/fixtures/dt-run", "--device", "cuda:1", "--episodes", "1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_bad_device_and_precision_are_one_line(toy, tmp_path, capsys):
    with pytest.raises(DTError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device("tpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        assert main(["train", "--dataset", toy, "--output", str(tmp_path / "d"), "--steps", "5", "--device", "cpu",
                     "--precision", "bf16", *TINY]) == 2
        assert "--precision bf16 is for CUDA devices" in capsys.readouterr().err
    assert main(["eval", "tests/fixtures/dt-run", "--backend", "onnxruntime", "--device", "cuda",
                 "--episodes", "1"]) == 2
    assert "onnxruntime runs on the CPU" in capsys.readouterr().err
