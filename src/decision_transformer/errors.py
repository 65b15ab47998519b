"""User-facing errors: one line that says what is wrong and how to fix it.

The `dt` command prints `error: <message>` for these and exits with status 2, without a
traceback. Anything else escaping is a bug.
"""


class DTError(Exception):
    """Bad input from the user (files, shapes, options)."""


class CheckpointError(DTError):
    """A checkpoint that cannot be read, or does not match the model/environment."""


class RunBusy(DTError):
    """A run directory that another process is writing (its lock is held)."""
