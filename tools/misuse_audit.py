"""Count how `dt` answers the misuse corpus (tests/test_bad_inputs.py), for any version of the code.

Each case of the corpus runs in its own process (a segfault counts too) against the source tree
given by --src (default: this checkout's src/), in a fresh working directory, on inputs made by
that same version. Each answer is classified:

  clean       exit status != 0, exactly one `error:` line, no traceback
  expected    clean, and the line says what the corpus expects (a subset of clean)
  traceback   a Python traceback, or killed by a signal
  exit 0      the command "succeeded" on bad input, or accepted it and ran on past a minute
  other       a non-zero exit without one clean line (several lines, no `error:`, ...)
  debris      it left files in the working directory or changed the inputs (counted apart)

    python tools/misuse_audit.py [--src OTHER_CHECKOUT/src] [--json out.json]
    python tools/misuse_audit.py --table before.json after.json > docs/misuse-audit.md

Before/after: run it on an older commit and on HEAD (`git worktree add /tmp/before COMMIT`, then
`--src /tmp/before/src`); docs/reliability.md lists the runs behind docs/audit/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAKE_INPUTS = r"""
import sys
sys.path.insert(0, sys.argv[2])
import toyenv
toyenv.make_misuse_inputs(sys.argv[1])
"""

RUN_CASE = r"""
import sys
sys.path.insert(0, sys.argv[1])
import toyenv
from decision_transformer.cli import main
try:
    rc = main(sys.argv[2:])
except SystemExit as e:
    rc = e.code if isinstance(e.code, int) else 1
sys.exit(rc or 0)
"""


def corpus() -> list[tuple[str, list[str], str]]:
    """The CASES list of tests/test_bad_inputs.py, read without importing the test module."""
    import ast
    tree = ast.parse((ROOT / "tests" / "test_bad_inputs.py").read_text())
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "T":
                consts["T"] = ast.literal_eval(node.value)
            if name == "CASES":
                src = ast.unparse(node.value)
                return eval(src, {}, consts)  # noqa: S307 - our own test file: literals and the name T
    raise SystemExit("no CASES in tests/test_bad_inputs.py")


def snapshot(d: Path) -> list[tuple[str, int]]:
    """Every path under d with its size (-1 for directories, and for a run's .lock, which every
    writer that takes it rewrites with its own pid)."""
    return sorted((str(p.relative_to(d)), p.stat().st_size if p.is_file() and p.name != ".lock" else -1)
                  for p in d.rglob("*"))


def audit(src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    inputs = Path(tempfile.mkdtemp(prefix="audit-inputs-"))
    subprocess.run([sys.executable, "-c", MAKE_INPUTS, str(inputs), str(ROOT / "tests")], env=env, check=True,
                   capture_output=True)
    before = snapshot(inputs)
    rows = []
    for name, argv, msg in corpus():
        work = Path(tempfile.mkdtemp(prefix="audit-work-"))
        args = [a.format(i=inputs, w=work) for a in argv]
        try:
            r = subprocess.run([sys.executable, "-c", RUN_CASE, str(ROOT / "tests"), *args], env=env, cwd=work,
                               capture_output=True, text=True, timeout=60)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            rc, err = None, "(still running after 60 s: the bad input was accepted)"
        lines = [x for x in err.splitlines() if "error:" in x]
        if rc is None or rc == 0:
            kind = "exit 0"
        elif rc < 0 or "Traceback" in err:
            kind = "traceback"
        elif len(lines) == 1:
            kind = "clean"
        else:
            kind = "other"
        debris = bool(list(work.iterdir())) or snapshot(inputs) != before
        rows.append({"case": name, "kind": kind, "expected": kind == "clean" and msg in err, "debris": debris,
                     "rc": rc, "last_line": (err.strip().splitlines() or [""])[-1][:200]})
        shutil.rmtree(work, ignore_errors=True)
        if snapshot(inputs) != before:                     # a case that damaged the inputs: remake them
            subprocess.run([sys.executable, "-c", MAKE_INPUTS, str(inputs), str(ROOT / "tests")], env=env,
                           check=False, capture_output=True)
            before = snapshot(inputs)
    shutil.rmtree(inputs, ignore_errors=True)
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("clean", "traceback", "exit 0", "other")}
    counts.update(cases=len(rows), expected=sum(r["expected"] for r in rows), debris=sum(r["debris"] for r in rows))
    return {"src": str(src), "counts": counts, "cases": rows}


def table(runs: list[dict], title: str) -> str:
    out = [f"# {title}", "",
           "Written by `python tools/misuse_audit.py --table ...` from the JSON files beside this page; "
           "each is one `tools/misuse_audit.py --src SRC --json FILE` run (every case of "
           "tests/test_bad_inputs.py in its own process). Do not edit by hand.", "",
           "| code | cases | clean one-line errors | ... with the expected message | tracebacks | exit 0 / ran on | "
           "other | left debris |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        c = r["counts"]
        out.append(f"| {r.get('label') or r['src']} (`{Path(r['file']).name}`) | {c['cases']} | {c['clean']} | "
                   f"{c['expected']} | {c['traceback']} | {c['exit 0']} | {c['other']} | {c['debris']} |")
    bad = [(r.get("label") or r["src"], x) for r in runs for x in r["cases"] if not x["expected"] or x["debris"]]
    if bad:
        out += ["", "Cases not answered with the expected one line (or leaving debris):", ""]
        out += [f"- {who}: `{x['case']}`: {x['kind']}{' + debris' if x['debris'] else ''}; last line: "
                f"`{x['last_line'].replace('`', chr(39))}`" for who, x in bad]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=str(ROOT / "src"), help="the source tree to audit (default: this checkout's)")
    p.add_argument("--json", help="write every case's answer here")
    p.add_argument("--label", help="what --src is, for the table (e.g. 'before: 6bb270b')")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print a markdown table of earlier --json files")
    p.add_argument("--title", default="The misuse corpus, before and after", help="the table's heading")
    a = p.parse_args()
    if a.table:
        print(table([json.loads(Path(f).read_text()) | {"file": f} for f in a.table], a.title))
        return
    res = audit(Path(a.src).resolve())
    res["label"] = a.label
    c = res["counts"]
    print(f"{a.src}: {c['cases']} cases: {c['clean']} clean ({c['expected']} with the expected message), "
          f"{c['traceback']} traceback, {c['exit 0']} exit 0, {c['other']} other; {c['debris']} left debris")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
