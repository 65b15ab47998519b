"""The run directory of `dt train`: its layout, its lock, its checkpoints and the resume rule.

    RUN/config.json            the resolved TrainConfig
    RUN/metrics.csv            step, loss, lr, steps/s (+ evaluation rows); never a step twice
    RUN/tb/                    TensorBoard events
    RUN/checkpoints/<step>/    config.json + model.safetensors (a checkpoint any command loads)
                               + trainer.safetensors + trainer.json (optimizer, schedule, RNG states,
                               and the SHA-256 of every other file of the checkpoint, written last)
    RUN/checkpoints/last       symlink to the newest complete checkpoint
    RUN/.lock                  held by the one process writing the run
    RUN/sessions.jsonl         one line per start or resume: when, from which step, on what machine
                               (a row of metrics.csv was logged by the last session that began before it)

Checkpoints are written atomically (temp dir + rename, then `last` is replaced), so a run killed
with SIGKILL loses at most one checkpoint interval. Wherever a checkpoint is accepted, the run
directory stands for its last checkpoint (`checkpoint_of`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from decision_transformer.errors import DTError, RunBusy
from decision_transformer.fileio import (
    Locked,
    atomic_dir,
    atomic_path,
    json_mismatch,
    sha256_file,
    try_lock,
    write_json_atomic,
    write_text_atomic,
)

# The resume rule: a resumed run keeps its options; only the number of steps may change, and the
# run continues where its directory is now (a moved or copied run writes to itself).
MAY_CHANGE_ON_RESUME = ("steps", "output", "device", "num_threads", "compile")   # where, not what
STATE = "trainer.json"


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.csv"
        self.tb = self.path / "tb"
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last"
        self.sessions = self.path / "sessions.jsonl"
        self._lock = None

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"{step:08d}"

    def is_run(self) -> bool:
        return self.checkpoints.is_dir()

    def has_checkpoint(self) -> bool:
        """A run with a finished checkpoint: it can be resumed, not started over. A run that died
        before its first checkpoint (e.g. a full disk) is started over by the same command. A
        `last` that points at nothing still marks a run: its earlier checkpoints are kept."""
        return self.last.exists() or self.last.is_symlink()

    def intact_checkpoints(self) -> list[Path]:
        """The checkpoints whose files are all there and unchanged (checked against the hashes in
        their trainer.json; checkpoints written before the hashes: present and not empty), newest first."""
        out = []
        for d in self.checkpoints.glob("[0-9]" * 8) if self.checkpoints.is_dir() else ():
            meta, problem = self._state(d)
            if problem is None and ("files" in meta or all(
                    (d / f).is_file() and (d / f).stat().st_size > 0 for f in ("model.safetensors", "trainer.safetensors"))):
                out.append(d)
        return sorted(out, reverse=True)

    def write_state(self, tmp: Path, meta: dict) -> None:
        """Write a checkpoint's trainer.json, last, with the SHA-256 of every other file in it and
        of metrics.csv as it stands (its rows are flushed as they are written): a resume then finds
        any file that was cut, corrupted, edited or removed since, and cuts the log back exactly."""
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        log = self.metrics.read_bytes() if self.metrics.is_file() else b""
        (tmp / STATE).write_text(json.dumps({**meta, "files": files, "metrics": {
            "bytes": len(log), "sha256": hashlib.sha256(log).hexdigest()}}))

    @staticmethod
    def _state(ck: Path, template: dict | None = None) -> tuple[dict, tuple[Path, str] | None]:
        """(trainer.json, None) when checkpoint `ck` is intact, else ({}, (the damaged file, why))."""
        p = ck / STATE
        try:
            meta = json.loads(p.read_text())
        except FileNotFoundError:
            return {}, (p, "missing")
        except (OSError, ValueError) as e:
            return {}, (p, f"cut short or not JSON: {e}")
        template = {"step": 0, **(template or {})}
        bad = json_mismatch({**template, "files": {}}, meta)
        if not bad and (missing := [k for k in template if k not in meta]):
            bad = f"no {', '.join(missing)}"
        if bad:
            return {}, (p, f"not the trainer state this version writes ({bad})")
        for rel, digest in meta.get("files", {}).items():
            f = ck / rel
            if not f.is_file():
                return {}, (f, "missing")
            if sha256_file(f) != digest:
                return {}, (f, "changed since the checkpoint was written (cut short, corrupted or edited)")
        return meta, None

    def read_state(self, ck: Path, template: dict) -> dict:
        """trainer.json of checkpoint `ck`, once it and every file it lists are checked: `template`
        is the structure this version writes (json_mismatch); the first damaged file is named, with
        the newest intact checkpoint to resume from instead."""
        meta, problem = self._state(ck, template)
        if problem:
            f, why = problem
            raise self.damaged(f"{f} is {why}: checkpoint {ck.name} cannot be resumed from", before=int(ck.name))
        return meta

    def damaged(self, what: str, before: int | None = None) -> DTError:
        """The error for a checkpoint that cannot be resumed from: `what` is wrong; the fix is the
        newest intact checkpoint (older than step `before`), if there is one."""
        ok = [d for d in self.intact_checkpoints() if before is None or int(d.name) < before]
        if ok:
            return DTError(f"{what}; the newest intact checkpoint is step {int(ok[0].name)}: resume from it with "
                           f"`ln -sfn {ok[0].name} {self.last}` and the same --resume command")
        return DTError(f"{what}, and no earlier checkpoint is intact: start the run over (another --output, or "
                       f"remove {self.path})")

    def busy_by(self) -> str | None:
        """Who holds the run's lock (None when nobody does)."""
        if not (self.path / ".lock").exists():
            return None
        try:
            try_lock(self.path / ".lock").close()
            return None
        except Locked as e:
            return e.holder

    # -- writing ------------------------------------------------------------------------------
    def open(self, resume: bool | str, what: str) -> bool:
        """Make the directory writable and take its lock; refuse a second writer, and a new run
        over an old one. resume="auto" decides under the lock: resume if a checkpoint exists,
        else start (two workers racing for one run cannot both start it). Returns whether to resume."""
        import tempfile
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):      # anonymous: concurrent probes cannot collide
                pass
        except OSError as e:
            raise DTError(f"cannot write to {self.path}: {e.strerror or e}")
        try:
            self._lock = try_lock(self.path / ".lock", what)
        except Locked as e:
            raise RunBusy(f"{self.path} is in use by {e.holder}: wait for it to end, or train into another --output")
        if resume == "auto":
            resume = self.has_checkpoint()
        if not resume and self.has_checkpoint():
            self.close()
            raise DTError(f"{self.path} already holds a run: pass --resume {self.path} to continue it, or another --output")
        if not resume:                           # starting over a run that never finished a checkpoint
            self.truncate_metrics(0)
            self.sessions.unlink(missing_ok=True)
            if self.checkpoints.is_dir():
                self.last_checkpoint_debris()
        return bool(resume)

    def last_checkpoint_debris(self) -> None:
        """Remove what a killed or failed checkpoint write left behind (hidden temp entries)."""
        for junk in self.checkpoints.glob(".*"):
            if junk.is_dir() and not junk.is_symlink():
                shutil.rmtree(junk, ignore_errors=True)
            else:
                junk.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the lock (the kernel also releases it when the process dies)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    def log_session(self, step: int, machine: dict) -> None:
        """Append this start or resume to sessions.jsonl: the speeds in metrics.csv depend on it."""
        import datetime
        line = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "step": step,
                "machine": machine}
        with open(self.sessions, "a+b") as f:     # one short line: a kill leaves at most a cut last line,
            cut = False                           # which the next one must not run into
            if f.seek(0, os.SEEK_END):
                f.seek(-1, os.SEEK_END)
                cut = f.read(1) != b"\n"
            f.write((b"\n" if cut else b"") + json.dumps(line).encode() + b"\n")

    def write_config(self, cfg: dict) -> None:
        write_json_atomic(self.config, cfg)

    def read_config(self) -> dict:
        if (self.path / "model.safetensors").is_file() and self.path.parent.name == "checkpoints":
            raise DTError(f"{self.path} is one checkpoint of a run, not a run directory: pass the run directory "
                          f"{self.path.parent.parent}")
        if not self.config.is_file():
            if self.checkpoints.is_dir():
                raise DTError(f"{self.config} is missing: the run's options are lost; restore the file, or train "
                              "again into another --output")
            raise DTError(f"{self.path}: not a run directory (no config.json): pass the directory a run was "
                          "written to (--output), or start it over without --resume")
        try:
            d = json.loads(self.config.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise DTError(f"{self.config} is cut short or not JSON ({e}): the run's options are lost; restore the "
                          "file, or train again into another --output")
        if not isinstance(d, dict):
            raise DTError(f"{self.config}: not a JSON object of training options (a {type(d).__name__}); restore the "
                          "file, or train again into another --output")
        return d

    def save_checkpoint(self, step: int, write) -> Path:
        """write(tmp_dir) fills a checkpoint; it becomes checkpoints/<step>, then `last` points at it."""
        ck = atomic_dir(self.checkpoint(step), write)
        with atomic_path(self.last) as tmp:                  # `last` moves only once ck is complete
            os.symlink(ck.name, tmp)
        return ck

    # -- resuming -----------------------------------------------------------------------------
    @staticmethod
    def resume_conflicts(saved: dict, new: dict) -> list[str]:
        """The options a resumed run would change against the rule (the same dataset file spelt
        another way, relative or absolute, is no change)."""
        def same(k, a, b):
            return a == b or (k == "dataset" and isinstance(a, str) and isinstance(b, str) and os.path.exists(a)
                              and os.path.exists(b) and os.path.samefile(a, b))
        return sorted(k for k in set(saved) | set(new)
                      if k not in MAY_CHANGE_ON_RESUME and not same(k, saved.get(k), new.get(k)))

    def check_resume(self, new: dict, defaults: dict | None = None) -> dict:
        """`defaults`: the values of options a run saved before they existed (it ran with them)."""
        saved = {**(defaults or {}), **self.read_config()}
        bad = self.resume_conflicts(saved, new)
        if bad:
            raise DTError(f"--resume with different options ({', '.join(bad)}): a resumed run keeps its options; "
                          "only --steps may change (and where it runs: --device, --num-threads, --compile)")
        return saved

    def last_checkpoint(self) -> Path:
        """The newest complete checkpoint, after clearing what a killed write left behind."""
        if self.last.is_symlink() and not self.last.exists():
            raise self.damaged(f"{self.path}: checkpoints/last points at {os.readlink(self.last)}, which is missing")
        if not self.last.exists():
            raise DTError(f"{self.path}: no checkpoint to resume from (checkpoints/last is missing); "
                          "start it over with the same command without --resume")
        self.last_checkpoint_debris()
        return self.last.resolve()

    def truncate_metrics(self, step: int, recorded: dict | None = None) -> None:
        """Drop metrics rows past `step` (logged after the checkpoint a run resumes from): the
        resumed run logs those steps again, so metrics.csv never holds a step twice. `recorded`
        (the checkpoint's trainer.json "metrics"): the log's length and hash when the checkpoint was
        written; the file is cut back to it, and refused if that part was cut or changed. Without
        it (checkpoints of earlier versions) rows are filtered by step: a last line cut by a kill
        is dropped, a row that is not numbers is refused. Refused before anything is written; a
        deleted file is started anew."""
        if not self.metrics.is_file():
            return
        if step == 0:                              # starting over: a new file, header included
            self.metrics.unlink()
            return
        fix = f"repair it, or move it away to resume with a new log from step {step}"
        if recorded:
            log, n = self.metrics.read_bytes(), int(recorded["bytes"])
            if len(log) < n or hashlib.sha256(log[:n]).hexdigest() != recorded["sha256"]:
                what = "cut short" if len(log) < n else "changed"
                raise DTError(f"{self.metrics}: {what} since the checkpoint at step {step} was written: {fix}")
            if len(log) > n:
                write_text_atomic(self.metrics, log[:n].decode())
            if n == 0:
                self.metrics.unlink()              # no header yet: the resumed run writes it
            return
        try:
            lines = self.metrics.read_text().splitlines(keepends=True)
        except (OSError, UnicodeDecodeError) as e:
            raise DTError(f"{self.metrics}: cannot be read ({e}): {fix}")
        cut = bool(lines) and not lines[-1].endswith("\n")
        if cut:
            lines = lines[:-1]                      # a row cut by a kill mid-write
        width = len(lines[0].split(",")) if lines else 0
        if lines and not re.fullmatch(r"[a-z_]+", lines[0].split(",", 1)[0]):   # empty: killed before the header
            raise DTError(f"{self.metrics}: no header row (step, ...): {fix}")
        for n, ln in enumerate(lines[1:], start=2):
            cells = ln.rstrip("\r\n").split(",")
            if len(cells) != width or not cells[0].isdigit() or not all(_number_or_empty(c) for c in cells[1:]):
                raise DTError(f"{self.metrics}: line {n} is not a row of numbers ({ln.strip()[:60]!r}): {fix}")
        keep = [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
        if not lines:
            self.metrics.unlink()                  # the resumed run writes a new one, header first
        elif cut or len(keep) != len(lines) - 1:
            write_text_atomic(self.metrics, "".join(lines[:1] + keep))


def _number_or_empty(cell: str) -> bool:
    try:
        cell == "" or float(cell)
        return True
    except ValueError:
        return False


METRICS_COLUMNS = ("step", "loss", "lr", "steps_per_s", "eval_target", "eval_return_mean", "eval_return_std")


def read_metrics(path) -> list[dict]:
    """The rows of a run's metrics.csv (the trainer writes METRICS_COLUMNS): `step` an int, every
    other column a float, or None where the row leaves it empty (training rows have no evaluation,
    evaluation rows no loss). A missing file has no rows."""
    import csv
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            if not (r.get("step") or "").isdigit():
                continue
            rows.append({k: int(r[k]) if k == "step" else (float(r[k]) if r.get(k) else None) for k in METRICS_COLUMNS})
        return rows


def read_sessions(path) -> list[dict]:
    """The sessions.jsonl records of a run (or of its copy under results/), oldest first; a line
    cut by a kill is skipped, a missing file has none."""
    path = Path(path)
    out = []
    for ln in (path.read_text().splitlines() if path.is_file() else ()):
        try:
            d = json.loads(ln)
        except ValueError:
            continue
        if isinstance(d, dict) and isinstance(d.get("step"), int) and isinstance(d.get("machine"), dict):
            out.append(d)
    return out


def session_of(sessions: list[dict], step: int) -> int | None:
    """The index of the session that logged the metrics row at `step`: the last one that began
    before it (a resumed session rewrites the rows after its checkpoint); None before any."""
    idx = [i for i, s in enumerate(sessions) if s["step"] < step]
    return idx[-1] if idx else None


def checkpoint_of(path: Path) -> Path:
    """A run directory stands for its last checkpoint; any other path stands for itself."""
    run = RunDir(path)
    if run.is_run() and not (Path(path) / "model.safetensors").is_file() and not (Path(path) / "pytorch_model.bin").is_file():
        if not run.last.exists():
            raise DTError(f"{path}: a run directory without a finished checkpoint yet (no checkpoints/last)")
        return run.last.resolve()
    return Path(path)
