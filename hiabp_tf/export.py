"""`python -m hiabp_tf.export`: Exports a trained workdir as a TensorFlow SavedModel, usable without
this package. The code is in `hiabp_tf.serving.export`."""

from hiabp_tf.checks import cli
from hiabp_tf.serving.export import define_flags
from hiabp_tf.serving.export import main

if __name__ == "__main__":
    cli.run(main, define_flags)
