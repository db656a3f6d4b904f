"""The range of every integer a user gives (steps, sizes, counts, seeds): one check per kind of value,
shared by the commands (named `--flag`), the Python API (named `argument`) and the SavedModel, whose
graph asserts the same bounds.

An integer is checked where it enters, before it reaches a tensor: TensorFlow takes Langevin steps,
sample counts, training steps and seed halves as int32 and would wrap a larger value without a word
(2**32 + 3 Langevin steps are 3). Out of range is a ConfigError (a ValueError) naming the flag or
argument and the range. No TensorFlow here, so every layer can use it.
"""

from __future__ import annotations

import numbers

from hiabp_tf.checks.errors import ConfigError

INT32_MAX = 2**31 - 1
# Every --seed: one int32 half of the stateless seeds [seed, k] (keras.utils.set_random_seed takes
# 0..2**32 - 1), so 0..2**31 - 1.
SEED_MAX = INT32_MAX
# T: the counter of the Langevin loop is int32.
LANGEVIN_STEPS_MAX = INT32_MAX
# Training updates: each step's noise folds the step number in as int32.
NUM_STEPS_MAX = INT32_MAX
# Network sizes: far above the paper's (width 64, latent sizes 12..192), low enough that building the
# networks cannot exhaust memory before the first step (a 3x3 conv of width w has 9 w^2 weights).
WIDTH_MAX = 1024
LATENT_DIM_MAX = 4096
# Generated images per request (API `sample`, the SavedModel's `sample`, --fid_samples): at most
# SAMPLE_BYTES_MAX bytes of float32 images (43,690 at 64x64x3, 684,784 at 28x28x1), generated
# SAMPLE_CHUNK at a time so that the networks' activations stay those of one chunk.
SAMPLE_BYTES_MAX = 2**31
SAMPLE_CHUNK = 500
# Rows and columns of a figure panel (disentangle): every image of a panel is decoded in one batch.
FIGURE_SIDE_MAX = 32
# More Langevin steps than this per update is worth a warning: 30 times the paper's largest T; each
# step is a pass through the generator and back, and a stop request waits for the update to end.
LANGEVIN_STEPS_WARN = 1000


def _range_text(low: int, high: int) -> str:
    return f"{low}..{high}" + (" (2**31 - 1)" if high == INT32_MAX else "")


def check_int(value, name: str, low: int, high: int = INT32_MAX, why: str = "") -> int:
    """`value` as an int if it is an integer (not a bool) in low..high; else a ConfigError naming
    `name` ("--flag" or "argument"), the range and, if given, `why` it is the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} must be an integer in {_range_text(low, high)}"
                          + (f" ({why})" if why else "") + ".")
    return int(value)


def check_seed(seed, name: str = "--seed") -> int:
    """Every --seed: 0..SEED_MAX."""
    return check_int(seed, name, 0, SEED_MAX)


def check_langevin_steps(steps, name: str = "--langevin_steps", low: int = 0) -> int:
    """A number of Langevin steps T: low..LANGEVIN_STEPS_MAX (0 = no step)."""
    return check_int(steps, name, low, LANGEVIN_STEPS_MAX)


def check_count(value, name: str, low: int = 1, high: int = INT32_MAX) -> int:
    """A count, size or cadence (steps, examples, batch size, checkpoints): low..high."""
    return check_int(value, name, low, high)


def max_samples(image_shape) -> int:
    """The most images one request may generate for images of `image_shape` (SAMPLE_BYTES_MAX)."""
    pixels = 1
    for side in image_shape:
        pixels *= int(side)
    return max(1, SAMPLE_BYTES_MAX // (4 * pixels))


def check_num_samples(n, name: str, image_shape, low: int = 1) -> int:
    """A number of generated images: low..max_samples(image_shape)."""
    most = max_samples(image_shape)
    shape = "x".join(str(int(s)) for s in image_shape)
    return check_int(n, name, low, most, f"at most {SAMPLE_BYTES_MAX // 2**30} GiB of float32 {shape} images "
                                        "per request; make several requests for more")


def check_figure_side(value, name: str) -> int:
    """Rows or columns of a figure panel: 1..FIGURE_SIDE_MAX."""
    return check_int(value, name, 1, FIGURE_SIDE_MAX, "every image of a panel is decoded at once")
