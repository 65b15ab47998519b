"""Every file the toolkit writes, where it lives, and which command reads it back.

This table is what the generated fault-injection tests (tests/test_fault_injection.py) walk: each
file a command reads back is truncated, corrupted, given values of the wrong type and deleted, and
the command must answer with one line that names the file, changing nothing else on disk. A file
found in a run directory, checkpoint, export or dataset that matches no row here fails those tests,
so a new file format is covered as soon as it is added to this table.

`home` is the kind of directory the pattern is relative to (a dataset file is its own home);
`read_by` is the command that reads the file back (empty: written for people or other tools only).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

JSON, SAFETENSORS, CSV, NPZ, HDF5, PARQUET, LINK, OTHER = "json", "safetensors", "csv", "npz", "hdf5", "parquet", \
    "link", "other"


@dataclass(frozen=True)
class FileFormat:
    home: str           # run | finetune-run | checkpoint | onnx-export | sweep | dataset | minari
    pattern: str        # fnmatch pattern of the path relative to its home
    kind: str           # how it is stored (which faults apply)
    read_by: str        # the command that reads it back; "" when nothing does
    what: str
    tolerates: str = ""  # "delete" where a missing file is harmless, and why (after a colon)

    def matches(self, home: str, rel: str) -> bool:
        return home == self.home and fnmatch(rel, self.pattern)


def _run_dir(home: str, read_by: str, options: str, log: str, state: str, *more: tuple[str, str, str]):
    """The files of a run directory (rundir.py), the same for `dt train` and `dt finetune`."""
    rows = [("config.json", JSON, options), ("metrics.csv", CSV, log), ("checkpoints/last", LINK, "link to the newest checkpoint"),
            ("checkpoints/*/config.json", JSON, "the model's config"),
            ("checkpoints/*/model.safetensors", SAFETENSORS, "the model's weights"),
            ("checkpoints/*/trainer.json", JSON, state + "; the SHA-256 of the checkpoint's other files and the log"),
            ("checkpoints/*/trainer.safetensors", SAFETENSORS, "the optimiser's state and RNG states"), *more]
    return tuple(FileFormat(home, pat, kind, read_by, what, "delete: a resumed run starts a new log"
                            if pat == "metrics.csv" else "") for pat, kind, what in rows) + (
        FileFormat(home, ".lock", OTHER, "", "the advisory lock of the run's one writer"),
        FileFormat(home, "sessions.jsonl", OTHER, "", "each start and resume: when, from which step, on what machine "
                   "(the campaign's price reads it, skipping a damaged line; a resume does not)"),
        FileFormat(home, "tb/*", OTHER, "", "TensorBoard events"))


FILES: tuple[FileFormat, ...] = (
    *_run_dir("run", "dt train --resume", "the run's training options", "the loss (and evaluation) log",
              "step, schedule, sampler state",
              ("checkpoints/*/ema/config.json", JSON, "the weight average's config (--ema-decay)"),
              ("checkpoints/*/ema/model.safetensors", SAFETENSORS, "the weight average (--ema-decay)")),
    *_run_dir("finetune-run", "dt finetune --resume", "the run's fine-tuning options", "return against env steps",
              "env steps, round, schedule", ("checkpoints/*/buffer.safetensors", SAFETENSORS, "the trajectory buffer")),
    # a checkpoint directory (models/checkpoint.py): `dt export`, `save_pretrained`, models/
    FileFormat("checkpoint", "config.json", JSON, "dt eval/sweep/video/export/info", "the model's config (transformers' layout)"),
    FileFormat("checkpoint", "model.safetensors", SAFETENSORS, "dt eval/sweep/video/export/info", "the model's weights"),
    FileFormat("checkpoint", "README.md", OTHER, "", "the model card"),
    FileFormat("checkpoint", "results.json", JSON, "", "the card's evaluation, for people and the Hub (dt serve reads "
               "its target and dataset returns where they are numbers, and does without them otherwise)"),
    # `dt export --format onnx` (inference/onnx.py): for onnxruntime users, not read back by dt
    FileFormat("onnx-export", "model.onnx", OTHER, "", "the ONNX graph"),
    FileFormat("onnx-export", "config.json", JSON, "", "the model's config"),
    FileFormat("onnx-export", "onnx_policy.py", OTHER, "", "the stand-alone policy"),
    FileFormat("onnx-export", "README.md", OTHER, "", "how to run it"),
    # `dt sweep --output DIR` and `dt eval --json FILE` (evaluation/): read by `dt results report` in a campaign
    FileFormat("sweep", "sweep.json", JSON, "", "the sweep's results (beside a model, dt serve plots it where every "
               "point is a pair of numbers, and computes its own otherwise)"),
    FileFormat("sweep", "sweep.png", OTHER, "", "the sweep's plot"),
    # datasets (data/datasets.py): one file each, and Minari's directory (suite/collect.py)
    FileFormat("dataset", "*.npz", NPZ, "dt data info / dt train", "episodes as flat arrays"),
    FileFormat("dataset", "*.hdf5", HDF5, "dt data info / dt train", "D4RL's flat arrays"),
    FileFormat("dataset", "*.parquet", PARQUET, "dt data info / dt train", "Hugging Face's rows, one per episode"),
    FileFormat("minari", "data/main_data.hdf5", HDF5, "dt data info / dt train", "Minari's episodes"),
    FileFormat("minari", "data/metadata.json", JSON, "dt data info / dt train", "Minari's metadata"),
    # dt serve's cache (serve/catalog.py), ~/.cache/decision_transformer/serve/<weights' hash>-<points>x<episodes>/
    FileFormat("serve-cache", "*/sweep.json", JSON, "", "a model's sweep, computed once; a damaged or missing one "
               "is computed again"),
)


def file_format(home: str, rel: str) -> FileFormat | None:
    """The row of FILES that `rel` (a path relative to a directory of kind `home`) matches."""
    return next((f for f in FILES if f.matches(home, rel)), None)
