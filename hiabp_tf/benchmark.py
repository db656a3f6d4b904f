"""`python -m hiabp_tf.benchmark`: Times one full training iteration of Algorithm 1 (initialize, T
Langevin steps, both updates). The code is in `hiabp_tf.tools.benchmark`."""

from hiabp_tf.checks import cli
from hiabp_tf.tools.benchmark import define_flags
from hiabp_tf.tools.benchmark import main

if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)
