"""`python -m hiabp_tf.inpaint`: Inpaints your own images with a trained model: fills their missing
pixels. The code is in `hiabp_tf.serving.inpaint`."""

from hiabp_tf.checks import cli
from hiabp_tf.serving.inpaint import define_flags
from hiabp_tf.serving.inpaint import main

if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)
