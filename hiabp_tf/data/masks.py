"""Occlusion masks and recovery error for learning from incomplete data (the paper's Table 2).

Protocol (DESIGN.md, "Measurement protocol"):
  - Masks, 1 = observed, 0 = occluded, the same over the channels of a pixel:
      pepper     pepper-and-salt: each pixel occluded independently with probability 0.2 (20%)
      region10   one 10x10 square at a uniformly random place fully inside a 64x64 image
      region20   one 20x20 square likewise
    The square's side scales with the image: round(side * image_side / 64), at least 1 (20 -> 9 on
    MNIST's 28x28, 10 on SVHN's 32x32).
  - Training sees occluded images only: the Langevin energy and the generator loss sum over observed
    pixels (`gaussian_generator_energy(..., mask)`, `train_step(batch, seed, mask)`), and the encoder
    sees the occluded image, so the caller must blank the occluded pixels first: `occlude(x, mask)`
    sets them to `fill` (0 by default), so no occluded intensity ever reaches the model.
  - Every example has one fixed mask (`example_masks`, seeded by its index): an occluded training
    image keeps the same occlusion every epoch, and every method is scored on the same test masks.
  - Recovery error = mean |x - x_hat| over occluded pixels only (all channels), pixels in [0, 1];
    the MSE over occluded pixels is reported beside it. Accumulate `recovery_sums` over a whole test
    split and finish with `recovery_errors_from_sums`; `recovery_errors` does one batch.

Everything is stateless (seeds are int tensors of shape [2]) and built from TensorFlow ops, so masks
are reproducible and can be made inside a `tf.function` training step.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

MASK_TYPES = ("pepper", "region10", "region20")  # Table 2's three mask types, names for --mask
PEPPER_FRACTION = 0.2  # the paper's "roughly 20% of pixels"
REFERENCE_SIDE = 64  # region sides are given on 64x64 images (CelebA)

_VALID_FORMS = ("none, pepper, pepper:F (0 < F < 1), region10, region20, "
                "region:N (square side N on a 64x64 image, N >= 1)")


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """One occlusion type.

    kind: "none" (everything observed), "pepper" or "region".
    fraction: probability that a pixel is occluded ("pepper").
    side64: side of the occluded square on a 64x64 image ("region"); see `region_side`.
    """
    kind: str = "none"
    fraction: float = PEPPER_FRACTION
    side64: int = 0

    def __post_init__(self):
        if self.kind not in ("none", "pepper", "region"):
            raise ValueError(f"MaskSpec.kind must be none, pepper or region, got {self.kind!r}")
        if self.kind == "pepper" and not 0.0 < self.fraction < 1.0:
            raise ValueError(f"pepper fraction must be in (0, 1), got {self.fraction}")
        if self.kind == "region" and (not isinstance(self.side64, int) or self.side64 < 1):
            raise ValueError(f"region side must be an integer >= 1, got {self.side64!r}")

    @property
    def name(self) -> str:
        """The --mask spelling of this spec (parse_mask(spec.name) == spec), for result labels."""
        if self.kind == "pepper":
            return "pepper" if self.fraction == PEPPER_FRACTION else f"pepper:{self.fraction:g}"
        if self.kind == "region":
            return f"region{self.side64}" if self.side64 in (10, 20) else f"region:{self.side64}"
        return "none"


def parse_mask(spec) -> MaskSpec:
    """Parses a --mask value: none | pepper | pepper:F | region10 | region20 | region:N."""
    if isinstance(spec, MaskSpec):
        return spec
    text = str(spec).strip().lower()

    def bad(reason=""):
        return ValueError(f"--mask must be one of {_VALID_FORMS}; got {spec!r}{reason}")

    if text in ("", "none"):
        return MaskSpec("none")
    if text == "pepper":
        return MaskSpec("pepper", fraction=PEPPER_FRACTION)
    if text in ("region10", "region20"):
        return MaskSpec("region", side64=int(text[len("region"):]))
    kind, sep, value = text.partition(":")
    if not sep:
        raise bad()
    if kind == "pepper":
        try:
            fraction = float(value)
        except ValueError:
            raise bad() from None
        if not (math.isfinite(fraction) and 0.0 < fraction < 1.0):
            raise bad(" (the pepper fraction must be in (0, 1))")
        return MaskSpec("pepper", fraction=fraction)
    if kind == "region":
        if not value.isdigit() or int(value) < 1:
            raise bad(" (the region side must be an integer >= 1)")
        return MaskSpec("region", side64=int(value))
    raise bad()


def region_side(side64: int, image_side: int) -> int:
    """The square's side on an image_side image: round(side64 * image_side / 64), at least 1."""
    return max(1, int(round(side64 * image_side / REFERENCE_SIDE)))


def check_fits(spec, image_shape, flag: str = "--mask", whose: str = "the") -> MaskSpec:
    """`spec` parsed and checked against the images it occludes, before any pipeline or graph is built (inside
    tf.data or a tf.function the same mistake is a traceback): a region wider than the images is a
    ValueError naming `flag`."""
    spec = parse_mask(spec)
    side, image_side = None, min(int(d) for d in image_shape[:2])
    if spec.kind == "region":
        side = region_side(spec.side64, int(image_shape[0]))
    if side is not None and side > image_side:
        raise ValueError(f"{flag}={spec.name}: a {side}x{side} region (side {spec.side64} on a 64x64 image, scaled to "
                         f"side {image_shape[0]}) does not fit {whose} {image_shape[0]}x{image_shape[1]} images; "
                         f"choose a smaller region (region:{REFERENCE_SIDE} covers a whole image).")
    return spec


def _static_or_tensor(value):
    """A Python int when the value is known while tracing, else the int32 tensor."""
    static = tf.get_static_value(value)
    if static is not None:
        return int(static)
    return tf.cast(value, tf.int32)


def _unpack_shape(shape):
    """(B, H, W, C) from a tuple, TensorShape or shape tensor; static dims become Python ints."""
    if isinstance(shape, tf.TensorShape):
        shape = shape.as_list()
    if isinstance(shape, (list, tuple)):
        if len(shape) != 4 or any(d is None for d in shape):
            raise ValueError(f"mask shape must be a fully known (B, H, W, C), got {shape}")
        return tuple(_static_or_tensor(d) for d in shape)
    shape = tf.convert_to_tensor(shape)
    static = tf.get_static_value(shape, partial=True)
    dims = tf.unstack(tf.cast(shape, tf.int32), num=4)
    if static is None:
        return tuple(dims)
    return tuple(int(s) if s is not None else d for s, d in zip(static, dims))


def _region_side_in_graph(side64, image_side):
    if isinstance(image_side, int):
        return region_side(side64, image_side)
    # tf.round rounds halves to even, like Python's round.
    side = tf.round(tf.cast(side64 * image_side, tf.float64) / REFERENCE_SIDE)
    return tf.maximum(1, tf.cast(side, tf.int32))


def make_masks(spec, shape, seed) -> tf.Tensor:
    """A float32 mask of `shape` (B, H, W, C): 1 = observed, 0 = occluded, one value per pixel.

    pepper: each pixel occluded independently with probability spec.fraction (uniform < fraction).
    region: per example, one square of side region_side(spec.side64, H) at a uniformly random
      position fully inside the image (H and W may differ; the side scales with H).
    none: all ones.
    seed: int tensor of shape [2] (stateless RNG): the same seed gives the same masks.
    """
    spec = parse_mask(spec)
    batch, height, width, channels = _unpack_shape(shape)
    if spec.kind == "none":
        return tf.ones([batch, height, width, channels], tf.float32)
    seed = tf.convert_to_tensor(seed)
    if spec.kind == "pepper":
        u = tf.random.stateless_uniform([batch, height, width, 1], seed, dtype=tf.float32)
        pixel_mask = tf.cast(u >= spec.fraction, tf.float32)
    else:
        side = _region_side_in_graph(spec.side64, height)
        if isinstance(side, int) and isinstance(height, int) and isinstance(width, int):
            if side > min(height, width):
                raise ValueError(f"a {side}x{side} region does not fit a {height}x{width} image "
                                 f"(--mask {spec.name})")
        top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        # stateless_uniform's integer maxval is exclusive: top in [0, H - side].
        top = tf.random.stateless_uniform([batch], top_seed, minval=0, maxval=height - side + 1,
                                          dtype=tf.int32)
        left = tf.random.stateless_uniform([batch], left_seed, minval=0, maxval=width - side + 1,
                                           dtype=tf.int32)
        rows = tf.range(height)[tf.newaxis, :]
        cols = tf.range(width)[tf.newaxis, :]
        in_rows = (rows >= top[:, tf.newaxis]) & (rows < top[:, tf.newaxis] + side)  # (B, H)
        in_cols = (cols >= left[:, tf.newaxis]) & (cols < left[:, tf.newaxis] + side)  # (B, W)
        occluded = in_rows[:, :, tf.newaxis] & in_cols[:, tf.newaxis, :]  # (B, H, W)
        pixel_mask = 1.0 - tf.cast(occluded, tf.float32)[..., tf.newaxis]
    return tf.broadcast_to(pixel_mask, [batch, height, width, channels])


def example_seed(seed, index) -> tf.Tensor:
    """The stateless seed of one example's mask: stateless_fold_in([seed, 7], index)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(7, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int32))


@tf.function  # one mask per example via map_fn: ~100x faster as a graph than eagerly
def example_masks(spec, shape, indices, seed) -> tf.Tensor:
    """The fixed mask of each example, (len(indices), H, W, C).

    Example i's mask is make_masks(spec, (1, H, W, C), example_seed(seed, i))[0], whatever batch
    it arrives in, so a training image keeps its occlusion every epoch and every method is scored on
    the same test masks. `shape` is the batch's (B, H, W, C) (B is taken from `indices`) or (H, W, C);
    `indices` are the examples' positions in their split (int tensor (B,)); `seed` an int.
    """
    spec = parse_mask(spec)
    if isinstance(shape, tf.TensorShape):
        shape = shape.as_list()
    if isinstance(shape, (list, tuple)):
        image_shape = tuple(shape[-3:])
    else:
        image_shape = tuple(tf.unstack(tf.convert_to_tensor(shape)[-3:], num=3))
    indices = tf.reshape(tf.convert_to_tensor(indices), [-1])
    if spec.kind == "none":
        return make_masks(spec, (tf.shape(indices)[0],) + image_shape, [0, 0])

    def one(index):
        return make_masks(spec, (1,) + image_shape, example_seed(seed, index))[0]

    return tf.map_fn(one, indices, fn_output_signature=tf.float32)


def occlude(x, mask, fill=0.0) -> tf.Tensor:
    """The image the model is given: observed pixels of x kept, occluded ones set to `fill`."""
    x = tf.convert_to_tensor(x)
    mask = tf.cast(mask, x.dtype)
    return x * mask + tf.cast(fill, x.dtype) * (1.0 - mask)


def occlude_batch(batch: dict, spec, seed) -> dict:
    """A batch {"image", "index"} with each example's fixed mask (`example_masks`) applied:
    {"image": occluded image, "original": the complete image, "mask", "index"}."""
    mask = example_masks(spec, batch["image"].shape, batch["index"], seed)
    return {**batch, "image": occlude(batch["image"], mask), "original": batch["image"], "mask": mask}


def recovery_sum_tensors(x, x_hat, mask):
    """(sum |x - x_hat|, sum (x - x_hat)^2, count, total) over occluded values, as float64 tensors.

    Sums run over occluded pixels and all their channels (mask == 0, broadcast to x's shape);
    `total` is the number of values, so count / total is the occluded fraction. Graph-friendly.
    """
    x = tf.cast(x, tf.float64)
    x_hat = tf.cast(x_hat, tf.float64)
    occluded = tf.broadcast_to(1.0 - tf.cast(mask, tf.float64), tf.shape(x))
    diff = x - x_hat
    return (tf.reduce_sum(tf.abs(diff) * occluded), tf.reduce_sum(tf.square(diff) * occluded),
            tf.reduce_sum(occluded), tf.cast(tf.size(x), tf.float64))


def recovery_sums(x, x_hat, mask) -> tuple[float, float, float]:
    """(abs_sum, sq_sum, count) over occluded values, as Python floats, to accumulate over a split."""
    abs_sum, sq_sum, count, _ = recovery_sum_tensors(x, x_hat, mask)
    return float(abs_sum), float(sq_sum), float(count)


def recovery_errors_from_sums(abs_sum, sq_sum, count, total=None) -> dict:
    """The recovery errors from accumulated sums; NaN when nothing was occluded."""
    abs_sum, sq_sum, count = float(abs_sum), float(sq_sum), float(count)
    errors = {
        "recovery_mae": abs_sum / count if count > 0 else float("nan"),
        "recovery_mse": sq_sum / count if count > 0 else float("nan"),
    }
    if total is not None:
        errors["occluded_fraction"] = count / float(total) if float(total) > 0 else float("nan")
    return errors


def recovery_errors(x, x_hat, mask) -> dict:
    """{"recovery_mae", "recovery_mse", "occluded_fraction"} of one batch, over occluded pixels.

    recovery_mae = sum |x - x_hat| (1 - m) / sum (1 - m), recovery_mse likewise with squares; pixels
    in [0, 1]. For a whole split, accumulate `recovery_sums` and call `recovery_errors_from_sums`.
    """
    abs_sum, sq_sum, count, total = recovery_sum_tensors(x, x_hat, mask)
    return recovery_errors_from_sums(abs_sum, sq_sum, count, total)
