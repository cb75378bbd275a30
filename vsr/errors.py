"""The project's errors. Each message is one line that names the file or config key and the
problem; the edges (`vsr.cli.main`, `python -m vsr.train`, the workflow scripts' runner) print it
as one console line, and nothing below them exits the process."""


class VsrError(Exception):
    """Bad input or a run that cannot go on, said in one line."""


class ConfigError(VsrError, ValueError):
    """A setting is unknown, misspelt or out of range."""


class MediaError(VsrError):
    """A video or image file is missing, unreadable, truncated or cannot be written."""


class CheckpointError(VsrError):
    """A checkpoint file is missing, of the wrong kind or shape, or unsafe to load."""


class RunError(VsrError):
    """A training run cannot start or continue (locked, corrupt state, no data)."""


class NonFiniteLoss(RunError):
    """The loss became NaN or inf: the run stops without a final output."""
