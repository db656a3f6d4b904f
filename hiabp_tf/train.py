r"""`python -m hiabp_tf.train`: trains a method of Table 1 (Algorithm 1 for IABP / HiABP) into a workdir:
checkpoints, TensorBoard summaries and config.json.

    python -m hiabp_tf.train --flagfile=flags/mnist5k_hiabp_l3.flags --workdir=runs/hiabp_l3

Rerun the same command to resume from the latest checkpoint (e.g. with a larger --num_steps), then score
the model with `python -m hiabp_tf.evaluate --workdir=...`. The code is in `hiabp_tf.training.loop`;
`train` is its library call.
"""

from hiabp_tf.checks import cli
from hiabp_tf.training.loop import define_flags
from hiabp_tf.training.loop import main
from hiabp_tf.training.loop import train  # noqa: F401  (the library call, for scripts)

if __name__ == "__main__":
    cli.run(main, define_flags, workdir_is="the folder for checkpoints, summaries and config.json")
