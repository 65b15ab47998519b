"""I/O failures on a real, small filesystem (a tmpfs mounted for the test; skipped where the test
cannot mount one): one clear line, no debris, and a run that can be continued."""

import os
import subprocess
from pathlib import Path

import pytest
import toyenv

from decision_transformer.cli import main


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)      # lazy: a file left open (h5py) cannot block it


def _resize(mnt, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)


def _train(data, out, steps, resume=False):
    if resume:
        return main(["train", "--resume", str(out), "--steps", str(steps), "--quiet"])
    return main(["train", "--dataset", str(data), "--env", "LineReach-v0", "--output", str(out), "--steps", str(steps),
                 "--checkpoint-every", "5", "--log-every", "1", "--context-length", "4", "--hidden-size", "32",
                 "--n-layer", "1", "--max-ep-len", "32", "--return-scale", "10", "--num-threads", "1", "--quiet"])


def _hidden(d: Path):
    return [p for p in d.rglob(".*") if p.name != ".lock"]


def test_a_full_disk_during_training_is_one_line_and_the_run_continues(small_fs, tmp_path, capsys):
    data = toyenv.make_dataset(tmp_path / "toy.npz", episodes=20)
    run = small_fs / "run"
    # 400 KB: the first checkpoint (~600 KB with the optimizer state) does not fit
    assert _train(data, run, 10) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "No space left on device" in err and "before its first checkpoint" in err and "same command again" in err
    assert not _hidden(run)                                   # no temp checkpoint left filling the disk
    _resize(small_fs, "4m")                                   # space freed: the same command starts it over
    assert _train(data, run, 10) == 0
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 11))                        # the failed attempt's rows are gone
    # a full disk after a checkpoint: the run stays resumable from it
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 100_000))
    capsys.readouterr()
    assert _train(data, run, 20, resume=True) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "last checkpoint (step 10)" in err and "--resume" in err, err
    assert (run / "checkpoints" / "last").resolve().name == "00000010" and not _hidden(run)
    filler.unlink()
    assert _train(data, run, 20, resume=True) == 0
    assert (run / "checkpoints" / "last").resolve().name == "00000020"
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 21))


def test_json_output_on_a_full_disk_leaves_no_empty_file(small_fs, tmp_path, capsys):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    DecisionTransformer(DecisionTransformerConfig(state_dim=2, act_dim=1, n_layer=1, hidden_size=8, max_ep_len=32,
                                                  return_scale=10.0, env_id="LineReach-v0", target_returns=[19.0],
                                                  state_mean=[0.0, 0.0], state_std=[1.0, 1.0])).save_pretrained(
        tmp_path / "ck")
    (small_fs / "filler").write_bytes(b"\0" * (os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize))
    assert main(["eval", str(tmp_path / "ck"), "--episodes", "2", "--num-envs", "2", "--json",
                 str(small_fs / "e.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot write") and "No space left on device" in err[-1]
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]          # no e.json, no 0-byte temp


@pytest.fixture
def read_only_fs(small_fs):
    (small_fs / "d").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    yield small_fs / "d"
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], capture_output=True)


@pytest.mark.parametrize("argv", [
    ["export", "{ck}", "{ro}/x"],
    ["video", "{ck}", "--target-return", "19", "-o", "{ro}/v.gif", "--max-steps", "3"],
    ["data", "info", "{data}", "--plot", "{ro}/h.png"],
    ["train", "--dataset", "{data}", "--output", "{ro}/r", "--steps", "2"],
    ["eval", "{ck}", "--episodes", "1", "--num-envs", "1", "--json", "{ro}/e.json"],
    ["sweep", "{ck}", "--targets", "1:5:2", "--episodes", "1", "--num-envs", "1", "--output", "{ro}/s"],
    ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "1", "--output", "{ro}/c"],
], ids=["export", "video", "data-info-plot", "train", "eval-json", "sweep", "collect"])
def test_a_read_only_output_is_one_line_before_the_work(argv, read_only_fs, tmp_path, capsys):
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    data = toyenv.make_dataset(tmp_path / "toy.npz", episodes=5)
    DecisionTransformer(DecisionTransformerConfig(state_dim=2, act_dim=1, n_layer=1, hidden_size=8, max_ep_len=32,
                                                  return_scale=10.0, env_id="LineReach-v0", target_returns=[19.0],
                                                  state_mean=[0.0, 0.0], state_std=[1.0, 1.0])).save_pretrained(
        tmp_path / "ck")
    assert main([a.format(ck=tmp_path / "ck", ro=read_only_fs, data=data) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "Read-only file system" in err[-1], err
    assert sum("error:" in x for x in err) == 1


def test_collect_onto_a_full_disk_is_one_line_and_leaves_no_temp(small_fs, capsys):
    """h5py reports ENOSPC as a ValueError deep inside Minari's writer; the user sees one line."""
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "300", "--output",
                 str(small_fs / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "No space left on device" in err[-1] and sum("error:" in x for x in err) == 1
    assert list(small_fs.iterdir()) == []                   # the temp dataset is gone, the disk is free again


EACCES_CASES = {
    "export": ["export", "{ck}", "{ro}/x"],
    "data-info-plot": ["data", "info", "{data}", "--plot", "{ro}/h.png"],
    "train": ["train", "--dataset", "{data}", "--output", "{ro}/r", "--steps", "2"],
    "eval-json": ["eval", "{ck}", "--episodes", "1", "--num-envs", "1", "--json", "{ro}/e.json"],
    "sweep": ["sweep", "{ck}", "--targets", "1:5:2", "--episodes", "1", "--num-envs", "1", "--output", "{ro}/s"],
}

# One process runs every case of a test through the CLI's main (one torch import, not one a case)
# and reports, per case, the exit code, what went to stderr and what the directory then holds (every
# name in it, hidden ones included). FILL (full-disk cases): before each case the directory's disk is
# filled to its last 60 KB, and after it the directory is emptied again. The process exits 0 after
# the last case: a crash at interpreter exit (h5py once segfaulted after a failed write) fails the test.
_CHILD = """
import contextlib, io, json, os, shutil, sys, traceback
import toyenv
from decision_transformer.cli import main
print("imported", flush=True)
cases, where, fill = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "fill"
out = {}
for name, argv in cases.items():
    if fill:
        st = os.statvfs(where)
        with open(os.path.join(where, "filler"), "wb") as f:
            f.write(b"\\0" * max(0, st.f_bavail * st.f_frsize - 60_000))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:
            traceback.print_exc()
            code = None
    left = sorted(str(os.path.relpath(os.path.join(d, n), where)) for d, ds, fs in os.walk(where) for n in ds + fs)
    out[name] = {"code": code, "stderr": err.getvalue(), "left": left}
    for n in os.listdir(where) if fill else ():
        p = os.path.join(where, n)
        shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
print(json.dumps(out))
"""


def _run_child(cases: dict, where: Path, fill: bool, drop=(), **kw) -> dict | None:
    """_CHILD's outcomes per case; None where the child could not even import the project."""
    import json
    import sys
    r = subprocess.run([*drop, sys.executable, "-c", _CHILD, json.dumps(cases), str(where), "fill" if fill else "-"],
                       capture_output=True, text=True, timeout=300, **kw)
    if not r.stdout.startswith("imported"):
        return None
    assert r.returncode == 0, r.stderr[-1500:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def eacces_outcomes():
    """EACCES: as an unprivileged user (root bypasses permission bits: the child drops to uid 65534
    with setpriv), each case writes under a directory it may not write."""
    import shutil
    import tempfile
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits would not apply")
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    base = Path(tempfile.mkdtemp(prefix="eacces-"))          # outside pytest's 0700 tmp dir: readable by all
    try:
        os.chmod(base, 0o755)
        data = toyenv.make_dataset(base / "toy.npz", episodes=5)
        DecisionTransformer(DecisionTransformerConfig(
            state_dim=2, act_dim=1, n_layer=1, hidden_size=8, max_ep_len=32, return_scale=10.0,
            env_id="LineReach-v0", target_returns=[19.0], state_mean=[0.0, 0.0], state_std=[1.0, 1.0])
        ).save_pretrained(base / "ck")
        for p in base.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        ro = base / "ro"
        ro.mkdir(mode=0o555)
        os.chmod(ro, 0o555)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "HOME": str(base), "MPLCONFIGDIR": str(base),
               "OMP_NUM_THREADS": "1"}
        cases = {k: [a.format(ck=base / "ck", ro=ro, data=data) for a in v] for k, v in EACCES_CASES.items()}
        out = _run_child(cases, ro, fill=False, drop=drop, env=env, cwd=base)
        if out is None:
            pytest.skip("the unprivileged user cannot read this checkout or its environment (e.g. a clone under a "
                        "0700 directory)")
        yield out
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("case", list(EACCES_CASES))
def test_a_directory_without_write_permission_is_one_line(case, eacces_outcomes):
    """Exit 2, one line that says Permission denied, no traceback, and nothing written."""
    o = eacces_outcomes[case]
    err = o["stderr"].strip().splitlines()
    assert o["code"] == 2, o["stderr"][-1500:]
    assert err[-1].startswith("error: ") and "Permission denied" in err[-1], err
    assert sum("error:" in x for x in err) == 1 and "Traceback" not in o["stderr"]
    assert o["left"] == []


FULL_DISK_CASES = {
    "collect": ["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "300", "--output", "{fs}/c",
                "--quiet"],
    "train": ["train", "--dataset", "{data}", "--env", "LineReach-v0", "--output", "{fs}/r", "--steps", "10",
              "--checkpoint-every", "5", "--context-length", "4", "--hidden-size", "32", "--n-layer", "1",
              "--max-ep-len", "32", "--return-scale", "10", "--num-threads", "1", "--quiet"],
    "export": ["export", "{ck}", "{fs}/x"],
    "export-onnx": ["export", "{ck}", "--format", "onnx", "{fs}/x"],
}


@pytest.fixture(scope="module")
def full_disk_outcomes(tmp_path_factory):
    """The cases in a process of their own, as a user runs them, on a disk with 60 KB left (_CHILD).
    The child holds Python's stderr in memory, as a notebook does: collect's forked writer once
    lost its "No space left" there and reported a crash instead."""
    from decision_transformer import DecisionTransformer, DecisionTransformerConfig
    tmp = tmp_path_factory.mktemp("full")
    mnt = tmp / "fs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        data = toyenv.make_dataset(tmp / "toy.npz", episodes=20)
        DecisionTransformer(DecisionTransformerConfig(
            state_dim=2, act_dim=1, n_layer=2, hidden_size=64, max_ep_len=32, return_scale=10.0, env_id="LineReach-v0",
            target_returns=[19.0], state_mean=[0.0, 0.0], state_std=[1.0, 1.0])).save_pretrained(tmp / "ck")
        cases = {k: [a.format(fs=mnt, data=data, ck=tmp / "ck") for a in v] for k, v in FULL_DISK_CASES.items()}
        out = _run_child(cases, mnt, fill=True, cwd=tmp,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"})
        assert out is not None, "the child could not import the project"
        yield out
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_a_full_disk_ends_the_process_with_one_line_and_no_debris(case, full_disk_outcomes):
    """Exit 2 (and the process exits cleanly after it), one line, and nothing left on the full disk
    but what was there: no temporary file or directory."""
    o = full_disk_outcomes[case]
    err = o["stderr"].strip().splitlines()
    assert o["code"] == 2, o["stderr"][-1500:]
    assert err[-1].startswith("error: ") and "No space left on device" in err[-1], err[-3:]
    assert sum("error:" in x for x in err) == 1 and "Traceback" not in o["stderr"]
    top = sorted({p.split(os.sep)[0] for p in o["left"]})
    assert top == (["filler", "r"] if case == "train" else ["filler"]), o["left"]   # the run: started over by the same command
    assert not [p for p in o["left"] if Path(p).name.startswith(".") and Path(p).name != ".lock"], o["left"]
