"""The one command-line prologue of every `python -m hiabp_tf.<command>`: define the flags, parse
them with absl, check the command line, run, and end on bad input with one line and exit status 2."""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

from hiabp_tf.checks import errors
from hiabp_tf.checks.errors import USER_ERRORS

TRAINED_WORKDIR = "a folder written by `python -m hiabp_tf.train`"


def check_command_line(argv, workdir, workdir_is=TRAINED_WORKDIR) -> None:
    """The start of every command's main(): no positional arguments, and --workdir given."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not workdir:
        raise app.UsageError(f"--workdir is required: {workdir_is}.")


def exit_with_user_error(error: Exception) -> None:
    """Ends a command on bad input: one paragraph on stderr, exit status 2, no stack trace unless
    --verbosity=1 (debug) or higher asks for one."""
    if logging.get_verbosity() >= logging.DEBUG:
        logging.exception("Traceback of the error below:")
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def run(main, define_flags=None, *, workdir_flag: str | None = "workdir", workdir_is: str = TRAINED_WORKDIR) -> None:
    """Runs a command: `define_flags()`, then absl's app.run, checking that no positional argument
    is given and (unless `workdir_flag` is None) that --workdir is; `main()` takes no argument.
    A USER_ERRORS exception ends the command with `exit_with_user_error`, and so does a disk or
    memory that ran out wherever the command did not say more (errors.resource_error)."""
    if define_flags is not None:
        define_flags()

    def absl_main(argv):
        check_command_line(argv, flags.FLAGS[workdir_flag].value if workdir_flag else True, workdir_is)
        try:
            return main()
        except USER_ERRORS as e:
            exit_with_user_error(e)
        except Exception as e:  # noqa: BLE001 - re-raised unless a resource ran out
            if type(e).__name__ == "InvalidArgumentError":  # TensorFlow's, by name: this module imports none
                # An input the command should have checked before building its graphs reached them: still one
                # line, not a traceback of TensorFlow's internals (--verbosity=1 shows where it came from).
                exit_with_user_error(errors.ConfigError(
                    f"TensorFlow refused an input ({errors.reason(e)}). Check the flags and files given; "
                    "rerun with --verbosity=1 for where it was refused."))
            if not (errors.is_out_of_space(e) or errors.is_out_of_memory(e)):
                raise
            exit_with_user_error(errors.resource_error(
                e, "Nothing finished was overwritten: the commands write each file whole (a temporary file "
                "renamed into place) or not at all.", "Ask for less at a time (a smaller --batch_size, fewer "
                "images or samples), or free memory, and rerun."))
    app.run(absl_main)
