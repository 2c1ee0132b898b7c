"""Exceptions that the command line turns into one ``error: ...`` line and exit status 2."""


class UserError(Exception):
    """Bad input from the user: a file, key or value that cannot be used (named in the message)."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, unsafe, or belongs to another configuration."""


class DataError(UserError):
    """A dataset is missing, truncated, corrupt, or does not match its manifest."""


class WeightsError(UserError, FileNotFoundError):
    """Pretrained weights that a metric needs are not available."""
