"""Fault injection generated from the file table (decision_transformer/files.py).

The fixture makes one of everything the toolkit writes: a `dt train` run, a `dt finetune` run, a
checkpoint, an ONNX export, a sweep, and a dataset in each format. Every file found there must
have a row in FILES (a new file fails `test_every_file_written_is_in_the_table` until it is added).
Every file a command reads back is then, in a copy, truncated, corrupted, given values of the wrong
type, and deleted; the command that reads it must exit 2 with one line that names the file, and
leave every other file as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import toyenv

from decision_transformer.cli import main
from decision_transformer.files import CSV, FILES, HDF5, JSON, LINK, NPZ, PARQUET, SAFETENSORS, file_format

# what a line offers the user to do about it (one of these words, at least)
FIXES = ("restore", "resume from", "start it over", "start the run over", "collect", "re-save", "re-download", "repair",
         "move it away", "store", "rescale", "again", "remove", "delete", "check the path", "pass one")
SMALL = ["--context-length", "3", "--hidden-size", "16", "--n-layer", "1", "--max-ep-len", "32", "--return-scale", "10",
         "--num-threads", "1", "--quiet"]


def _d4rl_and_parquet(npz: Path, out: Path) -> list[Path]:
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    z = np.load(npz)
    with h5py.File(out / "toy.hdf5", "w") as f:
        f["observations"], f["actions"], f["rewards"] = z["observations"], z["actions"], z["rewards"]
        f["terminals"], f["timeouts"] = z["terminations"], z["truncations"]
    ends = np.flatnonzero(z["terminations"] | z["truncations"]) + 1
    cut = lambda k: [a.tolist() for a in np.split(z[k], ends)[:-1]]
    pq.write_table(pa.table({"observations": cut("observations"), "actions": cut("actions"), "rewards": cut("rewards"),
                             "dones": cut("terminations")}), out / "toy.parquet")
    return [out / "toy.hdf5", out / "toy.parquet"]


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """(kind of home, path, the command that reads it back) for one of everything."""
    d = tmp_path_factory.mktemp("homes")
    data = toyenv.make_dataset(d / "toy.npz", episodes=20)
    run, ft, ck = d / "run", d / "ft", d / "ck"
    assert main(["train", "--dataset", str(data), "--env", "LineReach-v0", "--output", str(run), "--steps", "10",
                 "--checkpoint-every", "5", "--ema-decay", "0.9", *SMALL]) == 0
    assert main(["export", str(run / "checkpoints" / "last"), str(ck)]) == 0
    assert main(["export", str(ck), "--format", "onnx", str(d / "onnx")]) == 0
    assert main(["sweep", str(ck), "--targets", "1:5:2", "--episodes", "1", "--num-envs", "1", "--output",
                 str(d / "sweep")]) == 0
    assert main(["train", "--dataset", str(data), "--env", "LineReach-v0", "--model", "odt", "--output", str(d / "odt"),
                 "--steps", "5", *SMALL]) == 0
    assert main(["finetune", str(d / "odt"), "--output", str(ft), "--online-steps", "128", "--num-envs", "4",
                 "--checkpoint-every", "64", "--eval-every", "64", "--eval-episodes", "2", "--updates-per-round", "2",
                 "--batch-size", "4", "--num-threads", "1", "--quiet"]) == 0
    assert main(["collect", "--env", "LineReach-v0", "--policy", "random", "--episodes", "3", "--output",
                 str(d / "minari"), "--quiet"]) == 0
    info = lambda p: ["data", "info", str(p), "--plot", "none"]
    return [("run", run, ["train", "--resume", str(run), "--steps", "15", "--quiet"]),
            ("finetune-run", ft, ["finetune", "--resume", str(ft), "--online-steps", "192", "--quiet"]),
            ("checkpoint", ck, ["eval", str(ck), "--episodes", "1", "--num-envs", "1"]),
            ("onnx-export", d / "onnx", None), ("sweep", d / "sweep", None),
            ("minari", d / "minari", info(d / "minari"))] + \
        [("dataset", p, info(p)) for p in [data, *_d4rl_and_parquet(data, d)]]


def _files(home: Path) -> list[str]:
    if home.is_file():
        return [home.name]
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_symlink() or p.is_file())


def test_every_file_written_is_in_the_table(homes):
    missing = [f"{kind}: {rel}" for kind, home, _ in homes for rel in _files(home) if file_format(kind, rel) is None]
    assert not missing, "add these to decision_transformer/files.py FILES: " + ", ".join(missing)
    assert all(f.read_by or f.kind not in (LINK,) for f in FILES)


# ---------------------------------------------------------------------------------------------- faults

def _numbers_to_text(x):
    if isinstance(x, dict):
        return {k: _numbers_to_text(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_numbers_to_text(v) for v in x]
    return str(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x


def _type_swap(p: Path, kind: str) -> None:
    """The same structure with values of the wrong type."""
    if kind == JSON:
        p.write_text(json.dumps(_numbers_to_text(json.loads(p.read_text()))))
    elif kind == SAFETENSORS:
        from safetensors.numpy import load_file, save_file
        t = load_file(str(p))
        save_file({k: v.astype(np.int32 if v.dtype.kind == "f" else np.float32) for k, v in t.items()}, str(p))
    elif kind == CSV:
        rows = p.read_text().splitlines()
        rows[-1] = ",".join("x" for _ in rows[-1].split(","))
        p.write_text("\n".join(rows) + "\n")
    elif kind == NPZ:
        z = dict(np.load(p))
        z["rewards"] = z["rewards"].astype(str)
        with open(p, "wb") as f:
            np.savez(f, **z)
    elif kind == HDF5:
        import h5py
        with h5py.File(p, "a") as f:
            key = "rewards" if "rewards" in f else next(k for k in f if k.startswith("episode_")) + "/rewards"
            n = len(f[key])
            del f[key]
            f[key] = np.array([b"x"] * n)
    elif kind == PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq
        t = pq.read_table(p)
        t = t.set_column(t.schema.get_field_index("rewards"), "rewards",
                         pa.array([[str(x) for x in row] for row in t.column("rewards").to_pylist()]))
        pq.write_table(t, p)


def _inject(p: Path, fault: str, kind: str) -> None:
    if fault == "delete":
        p.unlink()
    elif fault == "dangling":
        p.unlink()
        os.symlink("99999999", p)
    elif fault == "truncate":
        b = p.read_bytes()
        p.write_bytes(b[:len(b) // 2])
    elif fault == "corrupt":               # bytes that no format accepts, where the structure is described
        b = bytearray(p.read_bytes())
        at = len(b) // 3 if kind in (JSON, CSV) else 8 if kind in (SAFETENSORS, HDF5) else len(b) - 12 \
            if kind == PARQUET else len(b) - 20           # npz: the zip's central directory record
        b[at:at + 16] = b"\xff" * 16
        p.write_bytes(bytes(b))
    else:
        _type_swap(p, kind)


def _cases():
    """(kind of home, relative path pattern, fault) for every file a command reads back."""
    for f in FILES:
        if not f.read_by:
            continue
        faults = ["delete", "dangling"] if f.kind == LINK else ["truncate", "corrupt", "type", "delete"]
        for fault in faults:
            yield pytest.param(f.home, f.pattern, fault, id=f"{f.home}:{f.pattern}:{fault}")


def _state(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.name == ".lock" or (p.is_dir() and not p.is_symlink()):
            continue
        out[str(p.relative_to(root))] = os.readlink(p) if p.is_symlink() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("kind, pattern, fault", list(_cases()))
def test_a_damaged_file_is_one_line_naming_it_and_nothing_else_changes(kind, pattern, fault, homes, tmp_path, capsys):
    from fnmatch import fnmatch
    home, argv = next((h, a) for k, h, a in homes if k == kind and (h.is_dir() or fnmatch(h.name, pattern)))
    work = tmp_path / "w"
    work.mkdir()
    copy = work / home.name
    (shutil.copytree(home, copy, symlinks=True) if home.is_dir() else shutil.copy(home, copy))
    argv = [str(copy) if a == str(home) else a for a in argv]
    if home.is_dir():       # checkpoints/*: the one the command reads, the newest
        last = sorted(p.name for p in (copy / "checkpoints").iterdir() if p.name != "last") if \
            (copy / "checkpoints").is_dir() else []
        rel = pattern.replace("*", last[-1]) if "*" in pattern else pattern
        target = copy / rel
    else:
        rel, target = home.name, copy
    assert target.is_symlink() or target.is_file(), f"{rel} is not in the fixture's {kind}"
    fmt = file_format(kind, rel if home.is_dir() else home.name)
    _inject(target, fault, fmt.kind)
    before = _state(work)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    if fmt.tolerates.split(":")[0] == fault:         # declared harmless, with the reason, in FILES
        assert rc == 0, err[-800:]
        return
    assert rc == 2, f"exit {rc}: {err[-800:]}"
    lines = [x for x in err.splitlines() if "error:" in x]
    assert len(lines) == 1 and "Traceback" not in err, err[-1500:]
    named = Path(rel).name if Path(rel).name not in ("config.json", "model.safetensors", "last") else rel
    assert named in lines[0] or str(target) in lines[0], f"the line does not name {rel}: {lines[0]}"
    assert any(fix in lines[0] for fix in FIXES), f"the line says no fix: {lines[0]}"
    assert _state(work) == before, "other files changed"
