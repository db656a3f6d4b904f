r"""Figure 7 of the paper from any trained workdir: hierarchical latent disentanglement.

Knows a workdir (runtime) and the figures; knows nothing of the plan or the records.

    python -m hiabp_tf.disentangle --workdir=runs/hiabp_l3 --out=results/fig7_l3 [--rows=8 --cols=8 --seed=0]

Restores the latest checkpoint and writes one panel per latent layer l = 1..L,
`<out>_layer<l>.png`: in each row every layer but l keeps one N(0, I) draw, and z^l is redrawn
from N(0, I) in every column. `<out>.png` puts the panels side by side, bottom layer left. The
paths are printed one per line (the combined figure last). See hiabp_tf/figures.py.
"""

from __future__ import annotations

import os

from absl import flags
from absl import logging

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.experiments import figures
from hiabp_tf.runtime import workdir as workdir_lib


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_string("workdir", None, "A workdir written by hiabp_tf.train.")
    flags.DEFINE_string("out", None, "Path prefix of the PNGs: <out>_layer<l>.png and <out>.png "
                        "(default: <workdir>/disentangle).")
    flags.DEFINE_integer("rows", 8, "Rows per panel: each row has its own fixed draw of the other layers.")
    flags.DEFINE_integer("cols", 8, "Columns per panel: draws of the resampled layer.")
    config_lib.define_seed_flag("the latent draws")


FLAGS = flags.FLAGS


def disentangle(workdir: str, out=None, rows: int = 8, cols: int = 8, seed: int = 0) -> list[str]:
    """Writes the Figure 7 panels of the latest checkpoint in `workdir`; returns their paths
    (per layer, bottom first, then the combined figure)."""
    for name, value, low in (("rows", rows, 1), ("cols", cols, 1)):
        if value < low:
            raise errors.ConfigError(f"--{name} must be >= {low}, got {value}.")
    seed = config_lib.check_seed(seed)
    if not out:
        out = os.path.join(workdir, "disentangle")
    elif out.endswith(os.sep) or os.path.isdir(out):
        out = os.path.join(out, "disentangle")
    model, _, _, step = workdir_lib.restore(workdir)
    try:
        return figures.save_disentanglement(model, out, rows, cols, seed, step=step)
    except OSError as e:
        raise errors.ConfigError(
            f"--out={out}: cannot write the figures there ({e.strerror or e}); choose a path prefix in a "
            "folder you can write to.") from None


def main():
    paths = disentangle(FLAGS.workdir, FLAGS.out, FLAGS.rows, FLAGS.cols, FLAGS.seed)
    logging.info("Wrote %d figures", len(paths))
    for path in paths:
        print(path, flush=True)
