"""`python -m hiabp_tf.disentangle`: Figure 7 of the paper from any trained workdir: hierarchical
latent disentanglement. The code is in `hiabp_tf.experiments.disentangle`."""

from hiabp_tf import cli
from hiabp_tf.experiments.disentangle import define_flags
from hiabp_tf.experiments.disentangle import main

if __name__ == "__main__":
    cli.run(main, define_flags)
