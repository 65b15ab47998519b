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


class OptionError(DTError):
    """A bad value of a parameter. The message names parameters as `{name}` placeholders: a
    library caller reads the Python names (`episodes and num_envs must be >= 1`), the `dt`
    command reads its flags (`--episodes and --num-envs ...`, cli.py renders them)."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.render(lambda name: name))

    def render(self, name) -> str:
        """The message with each `{param}` replaced by name(param)."""
        import re
        return re.sub(r"\{([a-z_]+)\}", lambda m: name(m.group(1)), self.template)


class Interrupted(DTError):
    """A training loop stopped by SIGTERM or SIGINT after saving a checkpoint (training/interrupt.py):
    `dt` exits with 128 + the signal's number, as a shell does for a process the signal killed."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
