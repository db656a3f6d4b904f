"""Tests for hiabp_tf.data.masks: Table 2's occlusion masks and the recovery error on occluded pixels."""

import math

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf.core import langevin
from hiabp_tf.data import masks

SEED = tf.constant([3, 4], tf.int32)
PEPPER = masks.parse_mask("pepper")
REGION20 = masks.parse_mask("region20")


# ------------------------------------------------------------------------------------- parse_mask

def test_parse_mask_valid_forms():
    assert masks.MASK_TYPES == ("pepper", "region10", "region20")
    assert masks.parse_mask("none") == masks.MaskSpec("none")
    assert masks.parse_mask("pepper") == masks.MaskSpec("pepper", fraction=0.2)
    assert masks.parse_mask("pepper:0.35") == masks.MaskSpec("pepper", fraction=0.35)
    assert masks.parse_mask("region10") == masks.MaskSpec("region", side64=10)
    assert masks.parse_mask("region20") == masks.MaskSpec("region", side64=20)
    assert masks.parse_mask(" Region:16 ") == masks.MaskSpec("region", side64=16)
    for name in masks.MASK_TYPES + ("none", "pepper:0.35", "region:16"):
        assert masks.parse_mask(name).name == name  # names round-trip, for result labels


@pytest.mark.parametrize("bad", ["salt", "pepper:0", "pepper:1.5", "pepper:x", "pepper:nan",
                                 "region", "region:0", "region:-3", "region:2.5", "region30"])
def test_parse_mask_rejects_bad_input_naming_the_flag(bad):
    with pytest.raises(ValueError, match="--mask") as info:
        masks.parse_mask(bad)
    assert "pepper:F" in str(info.value) and "region:N" in str(info.value)


# ------------------------------------------------------------------------------------------ pepper

def test_pepper_occludes_twenty_percent_same_over_channels():
    shape = (64, 32, 32, 3)
    m = masks.make_masks(PEPPER, shape, SEED).numpy()
    assert m.dtype == np.float32 and m.shape == shape
    assert set(np.unique(m)) <= {0.0, 1.0}
    np.testing.assert_array_equal(m, np.repeat(m[..., :1], 3, axis=-1))  # one value per pixel
    n = 64 * 32 * 32  # independent Bernoulli(0.2) pixels
    occluded = 1.0 - m[..., 0].mean()
    binomial_std = math.sqrt(0.2 * 0.8 / n)  # ~0.0016
    assert abs(occluded - 0.2) < 5 * binomial_std, occluded


def test_pepper_reproducible_per_seed():
    shape = (8, 16, 16, 1)
    a = masks.make_masks(PEPPER, shape, SEED).numpy()
    np.testing.assert_array_equal(a, masks.make_masks(PEPPER, shape, SEED).numpy())
    b = masks.make_masks(PEPPER, shape, tf.constant([3, 5])).numpy()
    assert (a != b).mean() > 0.1  # two independent masks disagree on ~32% of pixels


def test_none_mask_is_all_ones():
    m = masks.make_masks(masks.parse_mask("none"), (2, 5, 5, 3), SEED)
    np.testing.assert_array_equal(m.numpy(), np.ones((2, 5, 5, 3), np.float32))


# ------------------------------------------------------------------------------------------ region

@pytest.mark.parametrize("side64,image_side,expected", [
    (20, 64, 20), (10, 64, 10), (20, 32, 10), (10, 32, 5), (20, 28, 9), (10, 28, 4), (1, 8, 1)])
def test_region_side_scales_with_image(side64, image_side, expected):
    assert masks.region_side(side64, image_side) == expected


def _square_of(pixel_mask):
    """(top, left, side) of the occluded square of a (H, W) mask, checking it is one full square."""
    rows, cols = np.nonzero(pixel_mask == 0)
    top, left = rows.min(), cols.min()
    side = rows.max() - top + 1
    assert cols.max() - left + 1 == side
    expected = np.ones_like(pixel_mask)
    expected[top:top + side, left:left + side] = 0
    np.testing.assert_array_equal(pixel_mask, expected)  # contiguous, nothing else occluded
    return top, left, side


@pytest.mark.parametrize("image_side,side64", [(28, 20), (32, 10), (64, 20)])
def test_region_is_one_square_inside_the_image(image_side, side64):
    spec = masks.MaskSpec("region", side64=side64)
    side = masks.region_side(side64, image_side)
    m = masks.make_masks(spec, (32, image_side, image_side, 3), SEED).numpy()
    np.testing.assert_array_equal(m, np.repeat(m[..., :1], 3, axis=-1))
    np.testing.assert_array_equal((m == 0).sum(axis=(1, 2)), side * side)  # per example, channel
    positions = set()
    for example in m[..., 0]:
        top, left, found_side = _square_of(example)
        assert found_side == side
        assert 0 <= top <= image_side - side and 0 <= left <= image_side - side
        positions.add((top, left))
    assert len(positions) > 20  # 32 examples almost surely get distinct places


def test_region_reaches_every_row_and_column_offset():
    """Uniform position fully inside: tops cover 0 .. H - side and lefts 0 .. W - side, ends included. The
    image is wider than high, so columns drawn over the rows' range would show."""
    m = masks.make_masks(masks.MaskSpec("region", side64=40), (400, 8, 12, 1), SEED).numpy()
    side = masks.region_side(40, 8)  # 5 (the side scales with H), so tops are 0..3 and lefts 0..7
    tops, lefts, _ = zip(*(_square_of(example) for example in m[..., 0]))
    assert set(tops) == set(range(8 - side + 1))
    assert set(lefts) == set(range(12 - side + 1))


def test_region_too_big_is_rejected():
    with pytest.raises(ValueError, match="does not fit"):
        masks.make_masks(masks.MaskSpec("region", side64=80), (1, 16, 16, 1), SEED)


@pytest.mark.slow
def test_make_masks_in_tf_function_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    def masked(x):
        return masks.occlude(x, masks.make_masks(REGION20, tf.shape(x), SEED))

    out = masked(tf.ones([3, 28, 28, 1])).numpy()
    np.testing.assert_array_equal((out == 0).sum(axis=(1, 2, 3)), [81, 81, 81])  # 9x9 on 28x28


# ---------------------------------------------------------------------------------- example_masks

@pytest.mark.slow
def test_example_masks_fixed_per_index():
    shape = (4, 16, 16, 3)
    for spec in (PEPPER, REGION20):
        a = masks.example_masks(spec, shape, [0, 1, 2, 3], seed=11).numpy()
        b = masks.example_masks(spec, shape, tf.constant([5, 2, 0], tf.int64), seed=11).numpy()
        assert a.shape == shape and b.shape == (3, 16, 16, 3)
        np.testing.assert_array_equal(a[2], b[1])  # index 2 in different batches
        np.testing.assert_array_equal(a[0], b[2])
        np.testing.assert_array_equal(  # it is the documented per-example seed
            a[1], masks.make_masks(spec, (1, 16, 16, 3), masks.example_seed(11, 1))[0].numpy())
        for i in range(4):
            for j in range(i + 1, 4):
                assert not np.array_equal(a[i], a[j])
        other = masks.example_masks(spec, shape, [0, 1, 2, 3], seed=12).numpy()
        assert not np.array_equal(a, other)


def test_example_masks_accepts_image_shape_and_none():
    m = masks.example_masks(PEPPER, (8, 8, 1), [7], seed=0)
    assert m.shape == (1, 8, 8, 1)
    ones = masks.example_masks(masks.parse_mask("none"), (2, 8, 8, 1), [0, 1], seed=0)
    np.testing.assert_array_equal(ones.numpy(), np.ones((2, 8, 8, 1)))


def test_occlude_fills_occluded_pixels():
    x = tf.fill([1, 2, 2, 2], 0.7)
    m = tf.constant([[1.0, 0.0], [0.0, 1.0]])[tf.newaxis, :, :, tf.newaxis]
    out = masks.occlude(x, m).numpy()
    np.testing.assert_allclose(out[0, :, :, 0], [[0.7, 0.0], [0.0, 0.7]])
    np.testing.assert_allclose(masks.occlude(x, m, fill=0.5).numpy()[0, 0, 1], [0.5, 0.5])


# -------------------------------------------------------------------------------- recovery errors

def test_recovery_errors_known_answer():
    # One 2x2 RGB image; pixels (0,1) and (1,0) occluded.
    x = np.zeros((1, 2, 2, 3), np.float32)
    x_hat = np.zeros_like(x)
    x_hat[0, 0, 1] = [0.1, 0.2, 0.3]
    x_hat[0, 1, 0] = [0.0, -0.4, 0.6]
    m = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)[None, :, :, None]  # broadcasts over channels
    errors = masks.recovery_errors(x, x_hat, m)
    assert errors["recovery_mae"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.0 + 0.4 + 0.6) / 6)
    assert errors["recovery_mse"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.0 + 0.16 + 0.36) / 6)
    assert errors["occluded_fraction"] == pytest.approx(0.5)
    abs_sum, sq_sum, count = masks.recovery_sums(x, x_hat, m)
    assert (abs_sum, sq_sum, count) == (pytest.approx(1.6), pytest.approx(0.66), 6.0)
    assert all(isinstance(v, float) for v in (abs_sum, sq_sum, count))

    # Observed pixels do not count, however wrong the reconstruction is there.
    x_hat[0, 0, 0] = 0.9
    x_hat[0, 1, 1] = [5.0, -5.0, 1.0]
    assert masks.recovery_errors(x, x_hat, m) == pytest.approx(errors)


def test_recovery_sums_accumulate_over_batches():
    rng = np.random.default_rng(0)
    x, x_hat = rng.uniform(size=(2, 6, 4, 4, 1)).astype(np.float32)
    m = masks.make_masks(PEPPER, (6, 4, 4, 1), SEED)
    whole = masks.recovery_errors(x, x_hat, m)
    sums = np.sum([masks.recovery_sums(x[s], x_hat[s], m[s.start:s.stop])
                   for s in (slice(0, 2), slice(2, 6))], axis=0)
    combined = masks.recovery_errors_from_sums(*sums, total=x.size)
    assert combined == pytest.approx(whole)
    assert math.isnan(masks.recovery_errors(x, x_hat, tf.ones_like(x))["recovery_mae"])


# ------------------------------------------------------------------ masked energy ignores occlusion

def test_masked_energy_gradient_ignores_occluded_pixels():
    rng = np.random.default_rng(1)
    w = tf.constant(rng.normal(size=(3, 16)), tf.float32)

    def generator(z):  # tiny linear generator, latents (B, 3) -> images (B, 4, 4, 1)
        return tf.reshape(tf.matmul(z[0], w), [-1, 4, 4, 1])

    x = tf.constant(rng.uniform(size=(2, 4, 4, 1)), tf.float32)
    z = [tf.constant(rng.normal(size=(2, 3)), tf.float32)]
    m = masks.make_masks(REGION20, (2, 4, 4, 1), SEED)  # a 1x1 square (20 * 4 / 64 rounds to 1)
    m = m * masks.make_masks(masks.MaskSpec("pepper", fraction=0.4), (2, 4, 4, 1), SEED + 1)
    m_np = m.numpy()
    assert 0 < m_np.sum() < m_np.size

    def grad(image):
        with tf.GradientTape() as tape:
            tape.watch(z)
            energy = langevin.gaussian_generator_energy(generator, image, 0.3, m)(z)
        return tape.gradient(energy, z)[0].numpy()

    base = grad(x)
    noise = tf.constant(rng.uniform(-5, 5, size=x.shape), tf.float32)
    np.testing.assert_allclose(grad(x + noise * (1.0 - m)), base, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad(masks.occlude(x, m)), base, rtol=1e-5, atol=1e-5)
    observed = np.zeros(x.shape, np.float32)
    observed[tuple(np.argwhere(m_np == 1)[0])] = 0.5  # change one observed pixel
    assert np.abs(grad(x + observed) - base).max() > 1e-2
