"""The misuse corpus: `dt` invoked wrongly, as a new user would. Every case must exit 2 with exactly
one `error:` line (argparse's usage line aside), no traceback, and leave the working directory as it
was. Other parametrised cases of the same contract live beside the code they exercise
(test_cli.py, test_checkpoint.py, test_io_failures.py)."""


import pytest
import toyenv  # noqa: F401  (registers LineReach-v0)

from decision_transformer.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Small inputs made on the fly (toyenv.make_misuse_inputs, shared with tools/misuse_audit.py)."""
    d = tmp_path_factory.mktemp("inputs")
    toyenv.make_misuse_inputs(d)
    return d


T = "--target-return"
CASES = [
    # dt train
    ("train-no-dataset", ["train", "--output", "{w}/r"], "--dataset is required"),
    ("train-missing-file", ["train", "--dataset", "{w}/nope.npz", "--output", "{w}/r"], "no such file"),
    ("train-unknown-preset", ["train", "--dataset", "{i}/toy.npz", "--preset", "nosuch", "--output", "{w}/r"],
     "unknown preset 'nosuch'"),
    ("train-preset-not-json", ["train", "--dataset", "{i}/toy.npz", "--preset", "{i}/bad.json", "--output", "{w}/r"],
     "bad.json: not valid JSON"),
    ("train-preset-a-list", ["train", "--dataset", "{i}/toy.npz", "--preset", "{i}/list.json", "--output", "{w}/r"],
     "a preset is a JSON object of training options, got a list"),
    ("train-preset-unknown-key", ["train", "--dataset", "{i}/toy.npz", "--preset", "{i}/unknown.json", "--output", "{w}/r"],
     "unknown training option(s): learning_rate"),
    ("train-corrupt-npz", ["train", "--dataset", "{i}/garbage.npz", "--output", "{w}/r"], "garbage.npz"),
    ("train-corrupt-hdf5", ["train", "--dataset", "{i}/garbage.hdf5", "--output", "{w}/r"], "garbage.hdf5"),
    ("train-unknown-env", ["train", "--dataset", "{i}/toy.npz", "--env", "NoSuchEnv-v9", "--output", "{w}/r"],
     "cannot make env 'NoSuchEnv-v9'"),
    ("train-env-mismatch", ["train", "--dataset", "{i}/toy.npz", "--env", "Hopper-v5", "--output", "{w}/r"],
     "has observations (2,) but Hopper-v5 has (11,)"),
    ("train-resume-nothing", ["train", "--resume", "{w}/nothing"], "not a run directory (no config.json)"),
    ("train-resume-preset", ["train", "--resume", "{i}/run", "--preset", "paper"], "--preset cannot be given"),
    ("train-resume-change", ["train", "--resume", "{i}/run", "--batch-size", "8"], "--resume with different options (batch_size)"),
    ("train-resume-other-data", ["train", "--resume", "{i}/run", "--dataset", "{w}/not-there.npz"],
     "--resume with different options (dataset)"),               # refused before the dataset is looked for
    ("train-over-a-run", ["train", "--dataset", "{i}/toy.npz", "--output", "{i}/run"], "already holds a run"),
    ("train-steps-text", ["train", "--dataset", "{i}/toy.npz", "--steps", "ten"], "--steps must be an integer, got 'ten'"),
    ("train-model-unknown", ["train", "--dataset", "{i}/toy.npz", "--model", "gpt"], "invalid choice: 'gpt'"),
    ("train-activation-unknown", ["train", "--dataset", "{i}/toy.npz", "--activation-function", "swish"], "invalid choice"),
    ("train-dropout-negative", ["train", "--dataset", "{i}/toy.npz", "--dropout", "-0.1", "--output", "{w}/r"],
     "--dropout must be in [0, 1), got -0.1"),
    ("train-batch-zero", ["train", "--dataset", "{i}/toy.npz", "--batch-size", "0", "--output", "{w}/r"],
     "--batch-size must be in [1, 65536], got 0"),
    ("train-context-zero", ["train", "--dataset", "{i}/toy.npz", "--context-length", "0", "--output", "{w}/r"],
     "--context-length must be in [1, 4096], got 0"),
    ("train-eval-episodes-zero", ["train", "--dataset", "{i}/toy.npz", "--eval-episodes", "0", "--output", "{w}/r"],
     "--eval-episodes must be in [1, 100000], got 0"),
    # dt eval / sweep / video / info / export
    ("eval-missing", ["eval", "{w}/nope"], "no such checkpoint directory"),
    ("eval-a-file", ["eval", "{i}/file.txt"], "is a file"),
    ("eval-a-plain-dir", ["eval", "{i}"], "no config.json here"),
    ("eval-unknown-env", ["eval", "{i}/ck", "--env", "NoSuchEnv-v9", "--episodes", "1"], "cannot make env 'NoSuchEnv-v9'"),
    ("eval-wrong-env", ["eval", "{i}/ck", "--env", "Hopper-v5", "--episodes", "1"], "expects observations of shape (2,)"),
    ("eval-mean-wrong-length", ["eval", "{i}/ck", "--state-mean", "{i}/mean3.txt", "--episodes", "1"],
     "state_mean has 3 values but the model's state_dim is 2"),
    ("eval-target-text", ["eval", "{i}/ck", T, "lots", "--episodes", "1"], "--target-return must be a number, got 'lots'"),
    ("eval-target-inf", ["eval", "{i}/ck", T, "inf", "--episodes", "1"], "--target-return must be a finite number"),
    ("eval-backend-unknown", ["eval", "{i}/ck", "--backend", "tvm"], "invalid choice: 'tvm'"),
    ("eval-mode-unknown", ["eval", "{i}/ck", "--mode", "fast"], "invalid choice: 'fast'"),
    ("eval-json-into-a-file", ["eval", "{i}/ck", "--episodes", "1", "--num-envs", "1", "--json", "{i}/file.txt/e.json"],
     "cannot write"),
    ("sweep-targets-two-parts", ["sweep", "{i}/ck", "--targets", "1:2", "--output", "{w}/s"], "use LO:HI:N"),
    ("sweep-targets-reversed", ["sweep", "{i}/ck", "--targets", "5:1:3", "--output", "{w}/s"], "need HI > LO and N in [2, 1000]"),
    ("sweep-targets-one-point", ["sweep", "{i}/ck", "--targets", "1:5:1", "--output", "{w}/s"], "need HI > LO and N in [2, 1000]"),
    ("sweep-targets-n-text", ["sweep", "{i}/ck", "--targets", "1:5:x", "--output", "{w}/s"], "N must be an integer"),
    ("sweep-output-under-a-file", ["sweep", "{i}/ck", "--targets", "1:5:2", "--episodes", "1", "--num-envs", "1",
                                   "--output", "{i}/file.txt/s"], "cannot write to"),
    ("video-bad-suffix", ["video", "{i}/ck", T, "1", "-o", "{w}/v.avi"], "must end in .mp4 or .gif"),
    ("video-target-text", ["video", "{i}/ck", T, "high", "-o", "{w}/v.gif"], "--target-return must be a number"),
    ("info-missing", ["info", "{w}/nope"], "no such checkpoint directory"),
    ("export-unknown-format", ["export", "{i}/ck", "--format", "onnx2", "{w}/x"], "invalid choice: 'onnx2'"),
    ("export-over-a-file", ["export", "{i}/ck", "{i}/file.txt"], "already exists"),
    # dt collect / data / suite
    ("collect-bad-policy", ["collect", "--env", "LineReach-v0", "--policy", "greedy", "--episodes", "1", "--output", "{w}/c"],
     "policy 'greedy'"),
    ("collect-missing-zip", ["collect", "--env", "LineReach-v0", "--policy", "{w}/p.zip", "--episodes", "1", "--output",
                             "{w}/c"], "no such policy file"),
    ("collect-unknown-env", ["collect", "--env", "NoSuchEnv-v9", "--policy", "random", "--episodes", "1", "--output",
                             "{w}/c"], "cannot make env 'NoSuchEnv-v9'"),
    ("collect-both-counts", ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1", "--steps", "5",
                             "--output", "{w}/c"], "not allowed with argument"),
    ("collect-noise-kind", ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1", "--noise",
                            "uniform:0.1", "--output", "{w}/c"], "bad --noise 'uniform:0.1'"),
    ("collect-epsilon-over-one", ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1", "--noise",
                                  "epsilon:2", "--output", "{w}/c"], "bad --noise 'epsilon:2'"),
    ("data-info-missing", ["data", "info", "{w}/nope.hdf5", "--plot", "none"], "no such file"),
    ("data-info-corrupt", ["data", "info", "{i}/garbage.hdf5", "--plot", "none"], "garbage.hdf5"),
    ("suite-unknown-env", ["suite", "build", "--env", "Ant-v5"], "no committed policies for Ant-v5"),
    ("suite-unknown-level", ["suite", "build", "--env", "Hopper-v5", "--level", "legendary"], "unknown level 'legendary'"),
    ("suite-replay-not-a-run", ["suite", "replay", "--run-dir", "{i}/run"], "not a `dt suite dqn` run directory"),
    ("suite-dqn-zero-steps", ["suite", "dqn", "--env", "MinAtar/Breakout-v1", "--run-dir", "{w}/q", "--steps", "0"],
     "--steps must be in [1, 100000000], got 0"),
    # devices, sampling, episode limits, ONNX export (issues #12, #13)
    ("train-device-unknown", ["train", "--dataset", "{i}/toy.npz", "--output", "{w}/r", "--device", "tpu"],
     "use auto, cpu, cuda, cuda:N or mps"),
    ("train-bf16-on-cpu", ["train", "--dataset", "{i}/toy.npz", "--output", "{w}/r", "--device", "cpu",
                           "--precision", "bf16"], "--precision bf16 is for CUDA devices"),
    ("train-precision-unknown", ["train", "--dataset", "{i}/toy.npz", "--output", "{w}/r", "--precision", "fp8"],
     "invalid choice: 'fp8'"),
    ("eval-temperature-alone", ["eval", "{i}/ck", "--temperature", "2"], "--temperature applies to --sample"),
    ("eval-temperature-zero", ["eval", "{i}/ck", "--sample", "--temperature", "0"], "--temperature must be > 0"),
    ("eval-max-steps-zero", ["eval", "{i}/ck", "--max-episode-steps", "0"], "--max-episode-steps must be in [1, 10000000], got 0"),
    ("eval-onnx-on-cuda", ["eval", "{i}/ck", "--backend", "onnxruntime", "--device", "cuda"],
     "onnxruntime runs on the CPU"),
    ("export-onnx-over-a-file", ["export", "{i}/ck", "--format", "onnx", "{i}/file.txt"], "already exists"),
    ("export-onnx-overwrite-a-file", ["export", "{i}/ck", "--format", "onnx", "{i}/file.txt", "--overwrite"],
     "not an ONNX export"),
    ("video-device-unknown", ["video", "{i}/ck", T, "19", "-o", "{w}/v.gif", "--device", "gpu0"],
     "use auto, cpu, cuda, cuda:N or mps"),
    # run-directory files cut short or hand-edited, on --resume (the generated cases: test_fault_injection.py)
    ("resume-config-cut", ["train", "--resume", "{i}/run_cut"], "config.json is cut short or not JSON"),
    ("resume-dangling-last", ["train", "--resume", "{i}/run_dangling", "--steps", "5"],
     "checkpoints/last points at 00000002, which is missing; the newest intact checkpoint is step 1"),
    ("resume-state-edited", ["train", "--resume", "{i}/run_edited", "--steps", "5"],
     "trainer.safetensors is changed since the checkpoint was written"),
    ("resume-a-checkpoint", ["train", "--resume", "{i}/run/checkpoints/last"], "is one checkpoint of a run, not a run"),
    # dataset fields of the wrong type or size: data info says what training refuses
    ("data-info-text-rewards", ["data", "info", "{i}/text_rewards.npz", "--plot", "none"], "field rewards: not numbers"),
    ("train-text-rewards", ["train", "--dataset", "{i}/text_rewards.npz", "--output", "{w}/r"], "field rewards: not numbers"),
    ("data-info-huge-actions", ["data", "info", "{i}/huge_actions.npz", "--plot", "none"], "beyond the 1e+08"),
    ("train-huge-actions", ["train", "--dataset", "{i}/huge_actions.npz", "--output", "{w}/r"], "beyond the 1e+08"),
    # options that would change a run on resume
    ("resume-steps-below", ["train", "--resume", "{i}/run", "--steps", "1"], "--steps 1 is below the run's last checkpoint"),
    ("resume-another-dataset", ["train", "--resume", "{i}/run", "--dataset", "{i}/toy2.npz"],
     "--resume with different options (dataset)"),
    # unbounded requests
    ("sweep-1e8-targets", ["sweep", "{i}/ck", "--targets", "1:5:100000000", "--output", "{w}/s"], "N in [2, 1000]"),
    ("eval-1e9-episodes", ["eval", "{i}/ck", "--episodes", "1000000000"], "--episodes must be in [1, 100000]"),
    ("eval-1e5-envs", ["eval", "{i}/ck", "--num-envs", "100000"], "--num-envs must be in [1, 1024]"),
    ("collect-1e9-episodes", ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1000000000",
                              "--output", "{w}/c"], "--episodes must be in [1, 100000]"),
    ("train-1e11-steps", ["train", "--dataset", "{i}/toy.npz", "--steps", "100000000000", "--output", "{w}/r"],
     "--steps must be in [1, 1000000000]"),
    ("train-model-beyond-memory", ["train", "--dataset", "{i}/toy.npz", "--hidden-size", "16384", "--n-layer", "48",
                                   "--output", "{w}/r"], "GiB are free on cpu: lower --hidden-size"),
    # a pair of options follows one rule everywhere
    ("eval-ref-min-alone", ["eval", "{i}/ck", "--ref-min-score", "0"], "give both --ref-min-score and --ref-max-score"),
    ("sweep-ref-max-alone", ["sweep", "{i}/ck", "--targets", "1:5:2", "--ref-max-score", "9", "--output", "{w}/s"],
     "give both --ref-min-score and --ref-max-score"),
    # messages that used to mislead
    ("train-mistyped-path", ["train", "--dataset", "{i}/toy.np", "--output", "{w}/r"], "(did you mean"),
    ("train-preset-file-missing", ["train", "--dataset", "{i}/toy.npz", "--preset", "{w}/nope.json", "--output",
                                   "{w}/r"], "nope.json does not exist"),
    ("eval-config-one-bad-field", ["eval", "{i}/ck_bad_field"], "n_layer must be an integer, got 'three'"),
    ("data-info-minari-bad-metadata", ["data", "info", "{i}/minari_bad_meta", "--plot", "none"],
     "metadata.json: total_steps is -5, not a count"),
]


@pytest.mark.parametrize("argv, msg", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_misuse_is_one_clear_line_and_leaves_nothing(argv, msg, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(inputs) for p in inputs.rglob("*"))
    try:
        rc = main([a.format(i=inputs, w=tmp_path) for a in argv])
    except SystemExit as e:                          # argparse: usage line + one error line
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert sum("error:" in line for line in err.splitlines()) == 1 and "Traceback" not in err, err
    assert msg in err, err
    assert list(tmp_path.iterdir()) == [], "left behind: " + ", ".join(p.name for p in tmp_path.iterdir())
    assert sorted(p.relative_to(inputs) for p in inputs.rglob("*")) == before


def test_collect_checks_its_output_before_collecting(tmp_path, capsys, monkeypatch):
    """An unwritable output fails before any episode is run; --overwrite never deletes a non-dataset."""
    from decision_transformer.suite import collect as C
    ran = []
    monkeypatch.setattr(C, "rollout_episodes", lambda *a, **k: ran.append(1) or ([], False))
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1",
                 "--output", "/proc/version/data"]) == 2
    assert "cannot write to /proc" in capsys.readouterr().err and not ran
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1", "--output", str(keep),
                 "--overwrite"]) == 2
    assert "is not a Minari dataset: --overwrite only replaces a dataset" in capsys.readouterr().err and not ran
    assert (keep / "notes.txt").read_text() == "precious"
