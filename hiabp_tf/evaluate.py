r"""`python -m hiabp_tf.evaluate`: scores a trained workdir, the test reconstruction MSE over a whole split
([E], [E+L] and its deterministic variant, or [L] for ABP; FID with --fid), written as JSON in the
workdir and printed on the last line of stdout.

    python -m hiabp_tf.evaluate --workdir=runs/hiabp_l3 [--dataset=npz:held_out.npz]

The code is in `hiabp_tf.evaluation.scoring`; `evaluate` is its library call.
"""

from hiabp_tf.checks import cli
from hiabp_tf.evaluation.scoring import define_flags
from hiabp_tf.evaluation.scoring import evaluate  # noqa: F401  (the library call, for scripts)
from hiabp_tf.evaluation.scoring import main
from hiabp_tf.evaluation.scoring import read_result  # noqa: F401
from hiabp_tf.evaluation.scoring import result_path  # noqa: F401

if __name__ == "__main__":
    cli.run(main, define_flags)
