"""`python -m hiabp_tf.disentangle`: Figure 7 of the paper from any trained workdir: hierarchical
latent disentanglement. The code is in `hiabp_tf.experiments.disentangle`."""

from absl import flags

from hiabp_tf.checks import cli
from hiabp_tf.checks import limits
from hiabp_tf.experiments import disentangle
from hiabp_tf.experiments.disentangle import define_flags


def main():
    # Every image of a panel is decoded in one batch: bound the panel before the model is restored.
    for name in ("rows", "cols"):
        limits.check_figure_side(flags.FLAGS[name].value, f"--{name}")
    disentangle.main()


if __name__ == "__main__":
    cli.run(main, define_flags)
