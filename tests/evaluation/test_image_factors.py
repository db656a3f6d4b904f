"""The factors of Figure 7 measured on synthetic images whose answer is known: bars of a known
width, glyphs shifted or widened, faces made brighter, recoloured or mirrored."""

import numpy as np
import pytest
from scipy import ndimage

from hiabp_tf.evaluation import image_factors as factors


def _canvas(n=1, side=28):
    return np.zeros((n, side, side, 1))


@pytest.mark.parametrize("width", [1, 2, 3, 4, 6])
def test_a_bar_of_known_width_has_that_stroke_width(width):
    """Horizontal and vertical bars: w to within half an upsampled pixel."""
    x = _canvas(2)
    x[0, 10:10 + width, 4:24] = 1.0
    x[1, 4:24, 10:10 + width] = 1.0
    np.testing.assert_allclose(factors.stroke_width(x), width, atol=0.5 / factors.UPSAMPLE + 1e-9)


def test_stroke_width_follows_the_stroke_not_the_glyph():
    """A ring and a rotated bar three pixels thick measure about 3; the same ring drawn thicker
    measures more; an image without ink has none."""
    yy, xx = np.mgrid[:28, :28]
    radius = np.hypot(yy - 13.5, xx - 13.5)
    thin, thick = ((radius > 7) & (radius < 10)), ((radius > 6) & (radius < 11))
    bar = np.zeros((28, 28))
    bar[12:15, 3:25] = 1.0
    rotated = ndimage.rotate(bar, 45, reshape=False, order=1)
    widths = factors.stroke_width(np.stack([thin, thick, rotated]).astype(float))
    assert abs(widths[0] - 3) < 0.5 and abs(widths[2] - 3) < 0.5 and widths[1] > widths[0] + 1.5
    assert np.isnan(factors.stroke_width(_canvas())[0])


def test_digit_width_ignores_a_shift_and_grows_with_the_glyph():
    x = _canvas(3)
    x[0, 5:20, 8:14] = 1.0   # a block 6 pixels wide
    x[1, 7:22, 12:18] = 1.0  # the same, shifted
    x[2, 5:20, 6:16] = 1.0   # 10 pixels wide
    np.testing.assert_array_equal(factors.digit_width_bbox(x), [6, 6, 10])
    moment = factors.digit_width_moment(x)
    assert moment[0] == pytest.approx(moment[1]) == pytest.approx(np.sqrt(6 ** 2 - 1))
    assert moment[2] == pytest.approx(np.sqrt(10 ** 2 - 1))
    assert np.isnan(factors.digit_width_bbox(_canvas())[0]) and np.isnan(factors.digit_width_moment(_canvas())[0])


def test_ink_is_above_the_threshold_of_the_channel_mean():
    x = np.full((1, 4, 4, 3), 0.4)
    x[0, 0, 0] = [0.9, 0.6, 0.3]  # channel mean 0.6
    x[0, 0, 1] = [0.9, 0.3, 0.3]  # channel mean 0.5: not above
    assert factors.ink(x).sum() == 1 and factors.ink(x[..., 2]).sum() == 0  # (N, H, W) gray also accepted
    with pytest.raises(ValueError, match="batch of images"):
        factors.ink(np.zeros((4, 4)))


def test_face_factors():
    rng = np.random.default_rng(0)
    faces = rng.uniform(0.2, 0.6, size=(2, 8, 8, 3))
    brighter = faces + 0.1
    assert factors.brightness(brighter) - factors.brightness(faces) == pytest.approx([0.1, 0.1])
    np.testing.assert_allclose(factors.mean_colour(faces), faces.mean(axis=(1, 2)))
    redder = faces.copy()
    redder[..., 0] += 0.3
    np.testing.assert_allclose(factors.colour_change(factors.mean_colour(faces), factors.mean_colour(redder)), 0.3)
    symmetric = faces + faces[:, :, ::-1]
    np.testing.assert_allclose(factors.asymmetry(symmetric), 0.0, atol=1e-12)
    assert np.all(factors.asymmetry(faces) > 0) and factors.asymmetry(faces[:, :, ::-1]) == pytest.approx(
        factors.asymmetry(faces))
