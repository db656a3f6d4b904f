"""The errors a user's bad input raises: each message names the flag, file or workdir and what to do.

Every command ends on one of USER_ERRORS with one line on stderr and exit status 2 (cli.py). This
module imports nothing of the package, so every layer can raise them.
"""

import errno
import os
import re


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


class ResourceError(RuntimeError):
    """Disk space or memory ran out; the message says what was kept and what to do."""


USER_ERRORS = (ConfigError, WorkdirError, DataError, FIDError, DivergenceError, ResourceError)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(error: BaseException) -> bool:
    """A write that failed for want of disk space (or quota): an OSError, or TensorFlow's
    ResourceExhaustedError from a file it writes (both say so in their text)."""
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return True
    text = f"{getattr(error, 'message', '')} {error}"
    return _is_tf_resource_exhausted(error) and any(os.strerror(code) in text for code in _NO_SPACE)


def is_out_of_memory(error: BaseException) -> bool:
    """Memory that ran out: a MemoryError, or TensorFlow's ResourceExhaustedError (OOM) that is not a full disk."""
    return isinstance(error, MemoryError) or (_is_tf_resource_exhausted(error) and not is_out_of_space(error))


def _is_tf_resource_exhausted(error: BaseException) -> bool:
    # By name: this module imports no TensorFlow.
    return any(cls.__name__ == "ResourceExhaustedError" for cls in type(error).__mro__)


def reason(error: BaseException) -> str:
    """The first line of an error's text without TensorFlow's node decoration, for a message."""
    text = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error) or type(error).__name__
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", str(text)).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def resource_error(error: BaseException, kept: str, advice_memory: str) -> ResourceError:
    """A ResourceError for a full disk or exhausted memory (`error`): what happened, what was kept
    (`kept`) and what to do (`advice_memory` for memory; free space for a disk)."""
    if is_out_of_space(error):
        filename = getattr(error, "filename", None)
        where = f" writing {filename}" if filename else ""
        return ResourceError(f"no space left on the device{where} ({reason(error)}). {kept} Free some space, then "
                             "rerun the same command.")
    return ResourceError(f"out of memory ({reason(error)}). {kept} {advice_memory}")
