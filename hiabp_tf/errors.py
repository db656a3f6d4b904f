"""The errors a user's bad input raises: each message names the flag, file or workdir and what to do.

Every command ends on one of USER_ERRORS with one line on stderr and exit status 2 (cli.py). This
module imports nothing of the package, so every layer can raise them.
"""


class ConfigError(ValueError):
    """A flag value the model cannot use; the message names the flag."""


class WorkdirError(ValueError):
    """A workdir that cannot be used as asked; the message says what to do."""


class DataError(ValueError):
    """Bad or unavailable data; the message names the dataset/flag/file and what to do."""


class FIDError(ValueError):
    """Unusable FID input (weights file, classifier cache, images); the message says what to do."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite value; the message names the step, the quantity and the flags
    that usually cause it. The last good checkpoint is kept."""


USER_ERRORS = (ConfigError, WorkdirError, DataError, FIDError, DivergenceError)
