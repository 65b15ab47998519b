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


def test_train_flags_come_from_the_config_with_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for f in ("--batch-size N windows per gradient step, >= 1 (default: 64)", "--lr X peak learning rate (AdamW), > 0",
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
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--warmup-steps", "-5"], "--warmup-steps must be >= 0"),
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
