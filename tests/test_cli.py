"""The `dt` command's surface: every flag documented, options declared once and validated."""

import argparse

import pytest

from decision_transformer.cli import build_parser, main
from decision_transformer.training.trainer import TrainConfig


def _subparsers(p, path=()):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield path + (name,), sp
                yield from _subparsers(sp, path + (name,))


def test_every_flag_of_every_subcommand_has_help():
    missing = [f"dt {' '.join(path)} {a.option_strings[0] if a.option_strings else a.dest}"
               for path, sp in _subparsers(build_parser()) for a in sp._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert not missing, missing


def test_every_flag_of_every_command_comes_from_a_declaration():
    """The parser is built from option declarations (cli_options.py, TrainConfig): no hand-written flag,
    and every count or size has a declared range."""
    from dataclasses import fields

    from decision_transformer.options import _kind
    commands = [(path, sp) for path, sp in _subparsers(build_parser()) if "options" in sp._defaults]
    assert len(commands) == 18
    for path, sp in commands:
        declared = list(fields(sp._defaults["options"])) + (list(fields(TrainConfig)) if path == ("train",) else [])
        dests = {a.dest for a in sp._actions if not isinstance(a, argparse._HelpAction)}
        assert dests <= {f.name for f in declared}, (path, dests - {f.name for f in declared})
        for f in declared:
            if f.metadata.get("cli") and _kind(f)[0] is int:
                assert f.metadata["range"], f"dt {' '.join(path)} {f.name}: an integer option without a range"


def test_train_flags_come_from_the_config_with_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for f in ("--batch-size N windows per gradient step, in [1, 65536] (default: 64)", "--lr X peak learning rate, > 0",
              "(default: 0.0001)", "--dropout X dropout on embeddings, attention and residuals, in [0, 1) (default: 0.1)"):
        assert f in out, f
    flags = {a.dest for path, sp in _subparsers(build_parser()) if path == ("train",) for a in sp._actions}
    assert set(TrainConfig.__dataclass_fields__) <= flags                         # every option has its flag


@pytest.mark.parametrize("argv, msg", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--grad-clip", "-1"], "--grad-clip must be > 0, got -1"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1"),
    (["--num-threads", "-1"], "--num-threads must be >= 0, got -1"),
    (["--hidden-size", "7", "--n-head", "2"], "--hidden-size 7 is not a multiple of --n-head 2"),
    (["--dropout", "1"], "--dropout must be in [0, 1), got 1"),
    (["--top-pct", "0"], "--top-pct must be in (0, 100], got 0"),
    (["--target-return", "100", "nan"], "--target-return must be a finite number"),
    (["--steps", "0"], "--steps must be in [1, 1000000000], got 0"),
    (["--warmup-steps", "-5"], "--warmup-steps must be in [0, 1000000000]"),
    (["--return-scale", "0"], "--return-scale must be > 0"),
])
def test_bad_training_options_are_one_line_errors_before_any_work(argv, msg, tmp_path, capsys):
    assert main(["train", "--dataset", "no/such-v0", "--output", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {msg}" or (err.startswith(f"error: {msg}") and "\n" not in err)
    assert not (tmp_path / "r").exists()                                    # nothing written


def test_bad_values_in_a_preset_file_are_caught_too(tmp_path, capsys):
    (tmp_path / "p.json").write_text('{"context_length": 5.5, "lr": -1}')
    assert main(["train", "--dataset", "x", "--preset", str(tmp_path / "p.json")]) == 2
    assert "--context-length must be an integer, got 5.5" in capsys.readouterr().err


@pytest.fixture(scope="module")
def hopper_ck(tmp_path_factory):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    d = tmp_path_factory.mktemp("ck") / "ck"
    DecisionTransformer(DecisionTransformerConfig(state_dim=11, act_dim=3, n_layer=1, hidden_size=16, max_ep_len=1000,
                                                  return_scale=1000.0, env_id="Hopper-v5", target_returns=[3600.0],
                                                  state_mean=[0.0] * 11, state_std=[1.0] * 11)).save_pretrained(d)
    return str(d)


@pytest.mark.parametrize("argv, msg", [
    (["eval", "{ck}", "--episodes", "0"], "--episodes must be in [1, 100000], got 0"),
    (["eval", "{ck}", "--num-envs", "0", "--episodes", "2"], "--num-envs must be in [1, 1024], got 0"),
    (["eval", "{ck}", "--episodes", "100000000"], "--episodes must be in [1, 100000], got 100000000"),
    (["eval", "{ck}", "--seed", "-1"], "--seed must be in [0, 2147483647], got -1"),
    (["eval", "{ck}", "--temperature", "0.5"], "--temperature applies to --sample: pass --sample too"),
    (["eval", "{ck}", "--ref-min-score", "0"], "give both --ref-min-score and --ref-max-score, or neither"),
    (["sweep", "{ck}", "--targets", "1:2:2", "--ref-max-score", "9", "--output", "{tmp}/s"],
     "give both --ref-min-score and --ref-max-score, or neither"),                  # the same rule in every command
    (["eval", "{ck}", "--target-return", "nan"], "--target-return must be a finite number, got nan"),
    (["sweep", "{ck}", "--targets", "0:1:100000000", "--output", "{tmp}/s"], "need HI > LO and N in [2, 1000]"),
    (["eval", "{ck}", "--target-return=-1e30", "--episodes", "2", "--num-envs", "2"], "the model produced NaN/inf actions"),
    (["eval", "{ck}", "--target-return", "-1e30", "--episodes", "2", "--num-envs", "2"], "the model produced NaN/inf actions"),
    (["sweep", "{ck}", "--targets", "1:2:2", "--episodes", "0", "--output", "{tmp}/s"], "--episodes must be in [1, 100000]"),
    (["video", "{ck}", "--target-return", "1", "-o", "{tmp}/v.gif", "--fps", "0"], "--fps must be in [1, 240], got 0"),
    (["video", "{ck}", "--target-return", "1", "-o", "{tmp}/v.gif", "--max-steps", "0"], "--max-steps must be in [1, 10000000], got 0"),
    (["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "0", "--output", "{tmp}/c"], "--episodes must be in [1, 100000], got 0"),
    (["collect", "--env", "Hopper-v5", "--policy", "random", "--steps", "-5", "--output", "{tmp}/c"], "--steps must be in [1, 10000000], got -5"),
    (["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "2", "--num-envs", "0", "--output", "{tmp}/c"],
     "--num-envs must be in [1, 1024], got 0"),
    (["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "2", "--noise", "gaussian:1..2", "--output",
      "{tmp}/c"], "bad --noise 'gaussian:1..2'"),
    (["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "2", "--output", "a//b-v0"],
     "bad output 'a//b-v0': a Minari id like"),
])
def test_bad_numbers_elsewhere_are_one_line_errors_and_write_nothing(argv, msg, hopper_ck, tmp_path, capsys):
    argv = [a.format(ck=hopper_ck, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and msg in err and "\n" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_collect_into_a_plain_relative_name_writes_that_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["collect", "--env", "Hopper-v5", "--policy", "random", "--episodes", "2", "--output", "mydata",
                 "--quiet"]) == 0
    assert (tmp_path / "mydata" / "data").is_dir() and "wrote" in capsys.readouterr().out


def test_a_mistyped_local_path_is_named_with_near_matches(tmp_path, capsys):
    (tmp_path / "hopper_medium").mkdir()
    assert main(["data", "info", str(tmp_path / "hoper_medium")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'hoper_medium'}: no such file or directory (did you mean " \
                  f"{tmp_path / 'hopper_medium'}?)"


def test_action_dimension_mismatch_is_caught_before_training(tmp_path, capsys):
    import numpy as np
    n = 40                                                    # Hopper's observations, but 1-D actions
    data = tmp_path / "toy.npz"
    np.savez(data, observations=np.zeros((n, 11), np.float32), next_observations=np.zeros((n, 11), np.float32),
             actions=np.zeros((n, 1), np.float32), rewards=np.zeros(n, np.float32), terminations=np.arange(n) % 20 == 19,
             truncations=np.zeros(n, bool))
    assert main(["train", "--dataset", str(data), "--env", "Hopper-v5", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "has 1-dimensional actions but Hopper-v5 takes 3-dimensional actions" in err
    assert not (tmp_path / "r").exists()


def test_without_env_the_env_the_data_names_is_checked_and_eval_checks_actions(tmp_path, capsys):
    """No --env: the env in the dataset's metadata is checked before training; `dt eval` checks the
    checkpoint's actions against the env's (one line each, nothing written)."""
    import h5py
    import numpy as np

    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    n = 40
    with h5py.File(tmp_path / "d.hdf5", "w") as f:                 # Hopper's observations, 1-D actions
        f["observations"], f["actions"] = np.zeros((n, 11), np.float32), np.zeros((n, 1), np.float32)
        f["rewards"], f["terminals"], f["timeouts"] = np.zeros(n, np.float32), np.arange(n) % 20 == 19, np.zeros(n, bool)
        f.attrs["env_id"] = "Hopper-v5"
    assert main(["train", "--dataset", str(tmp_path / "d.hdf5"), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 1-dimensional actions but Hopper-v5 takes 3-dimensional actions (the env its metadata names" in err
    assert "\n" not in err and not (tmp_path / "r").exists()
    DecisionTransformer(DecisionTransformerConfig(state_dim=11, act_dim=1, n_layer=1, hidden_size=16, max_ep_len=100,
                                                  env_id="Hopper-v5", target_returns=[1.0], state_mean=[0.0] * 11,
                                                  state_std=[1.0] * 11)).save_pretrained(tmp_path / "ck")
    assert main(["eval", str(tmp_path / "ck"), "--episodes", "1", "--num-envs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: the checkpoint acts with 1-dimensional actions but Hopper-v5 takes 3-dimensional actions: " \
                  "evaluate it on the env it was trained on"


def test_info_into_a_closed_pipe_is_quiet(tmp_path):
    import subprocess
    import sys

    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    n = 30_000                        # state_mean/std print one number per line: far more than a pipe buffer
    DecisionTransformer(DecisionTransformerConfig(state_dim=n, act_dim=3, n_layer=1, hidden_size=4, state_mean=[0.0] * n,
                                                  state_std=[1.0] * n)).save_pretrained(tmp_path / "ck")
    p = subprocess.run(f"{sys.executable} -m decision_transformer.cli info {tmp_path / 'ck'} | head -1", shell=True,
                       capture_output=True, text=True)
    assert p.stdout.strip() == "{" and "Error" not in p.stderr and "Traceback" not in p.stderr


def test_library_errors_name_parameters_and_the_cli_names_flags(capsys):
    """One message, two audiences: Python callers read parameter names, `dt` users read flags."""
    import gymnasium as gym  # noqa: F401
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    from decision_transformer.errors import OptionError
    from decision_transformer.evaluation.evaluate import evaluate
    from decision_transformer.suite.collect import collect
    model = DecisionTransformer(DecisionTransformerConfig(state_dim=11, act_dim=3, max_ep_len=100))
    with pytest.raises(OptionError) as e:
        evaluate(model, "Hopper-v5", [1.0], episodes=0)
    assert str(e.value) == "episodes and num_envs must be >= 1, got 0 and 50"
    assert e.value.render(lambda p: "--" + p.replace("_", "-")) == "--episodes and --num-envs must be >= 1, got 0 and 50"
    with pytest.raises(OptionError, match="^give both ref_min_score and ref_max_score, or neither$"):
        collect("Hopper-v5", "random", "x/y-v0", steps=10, ref_min_score=0.0)
    assert main(["collect", "--env", "Hopper-v5", "--policy", "random", "--steps", "10", "--output", "x/y-v0",
                 "--ref-min-score", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: give both --ref-min-score and --ref-max-score, or neither"
