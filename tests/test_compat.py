"""Files written before a refactor keep working after it: tests/fixtures/ holds a DT and a BC run
directory (toy data, tiny models) written by the code of 2026-11-24 (commit 73b0df2's layout),
with the actions their last checkpoints predicted on fixed inputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import toyenv  # noqa: F401  (registers LineReach-v0)

from decision_transformer.models.checkpoint import from_pretrained

FIX = Path(__file__).parent / "fixtures"
REF = json.loads((FIX / "reference_actions.json").read_text())


@pytest.mark.parametrize("run, arch", [("dt-run", "DecisionTransformer"), ("bc-run", "BCModel")])
def test_old_checkpoints_load_and_predict_the_same_actions(run, arch):
    for source in (FIX / run / "checkpoints" / "last", FIX / run):      # the run dir means its last checkpoint
        m = from_pretrained(source)
        assert type(m).__name__ == arch
        s, a, r, t = (torch.tensor(x) for x in REF[run + "-inputs"])
        with torch.no_grad():
            got = m.predict_last_action(s.float(), a.float(), r.float(), t.long())
        np.testing.assert_allclose(got.numpy(), np.array(REF[run]), atol=1e-6)


@pytest.mark.parametrize("run", ["dt-run", "bc-run"])
def test_old_run_directories_resume_where_they_are_now(run, tmp_path, monkeypatch):
    """A copied run resumes into the copy (its config names tests/fixtures/... as output)."""
    from decision_transformer.cli import main
    d = tmp_path / run
    shutil.copytree(FIX / run, d, symlinks=True)
    monkeypatch.chdir(FIX.parent.parent)             # the saved dataset path is relative to the repository
    before = sorted(p.name for p in (FIX / run / "checkpoints").iterdir())
    assert main(["train", "--resume", str(d), "--steps", "9", "--quiet"]) == 0
    assert (d / "checkpoints" / "last").resolve().name == "00000009"
    steps = [int(x.split(",")[0]) for x in (d / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [3, 6, 9]
    assert sorted(p.name for p in (FIX / run / "checkpoints").iterdir()) == before      # the original is untouched
    assert json.loads((d / "config.json").read_text())["output"] == str(d)
