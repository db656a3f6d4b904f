"""What an image shows, measured: the factors of Figure 7 (digit width, stroke width; for faces mean
colour, brightness, left-right asymmetry), so that what resampling one latent layer changes can be
counted rather than looked at (`hiabp_tf.experiments.layer_factors`).

Every function takes a batch of images (N, H, W, C) (or (N, H, W)) with pixels in [0, 1] and returns
one float per image (NaN where an image has no ink). Ink is where the image (its channel mean) is
above INK_THRESHOLD.

    digit_width_bbox     the width in pixels of the ink's bounding box (columns that hold ink)
    digit_width_moment   sqrt(12) x the standard deviation of the ink's x, weighted by its intensity:
                         the width of a uniform band with the same second moment (a w-pixel-wide
                         filled block gives sqrt(w^2 - 1))
    stroke_width         twice the radius of the largest disc inscribed in the stroke, averaged along
                         its ridge: the image is upsampled UPSAMPLE times (bilinear, so a sub-pixel
                         edge moves the ink), the distance of every ink pixel to the nearest background
                         (scipy.ndimage.distance_transform_edt) is taken, and on the ridge (ink pixels
                         where that distance is a local maximum, 3 x 3) width = (2 x distance - 1/2) /
                         UPSAMPLE: a bar w pixels wide measures w to within half an upsampled pixel
                         (1 / (2 UPSAMPLE): the ridge of an even upsampled width is two pixels off
                         its centre, of an odd one on it). Only scipy.ndimage is used (no
                         skeletonisation library).
    brightness           mean luminance (Rec. 601: 0.299 R + 0.587 G + 0.114 B; gray: the pixel)
    mean_colour          the mean (R, G, B), (N, 3); `colour_change` is the distance between two
    asymmetry            mean |x - x mirrored left-right| over pixels and channels
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

INK_THRESHOLD = 0.5
UPSAMPLE = 4
LUMA = np.array([0.299, 0.587, 0.114], np.float64)


def _batch(images) -> np.ndarray:
    """(N, H, W, C) float64 from (N, H, W, C) or (N, H, W)."""
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C) or (N, H, W), got shape {array.shape}.")
    return array


def gray(images) -> np.ndarray:
    """(N, H, W): the channel mean of each image."""
    return _batch(images).mean(axis=-1)


def ink(images, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """(N, H, W) bool: the pixels whose channel mean is above `threshold`."""
    return gray(images) > threshold


def digit_width_bbox(images, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Width in pixels of each image's ink bounding box (NaN without ink)."""
    columns = ink(images, threshold).any(axis=1)  # (N, W)
    width = columns.shape[1]
    has = columns.any(axis=1)
    first = np.argmax(columns, axis=1)
    last = width - 1 - np.argmax(columns[:, ::-1], axis=1)
    return np.where(has, last - first + 1, np.nan).astype(np.float64)


def digit_width_moment(images, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """sqrt(12) x the intensity-weighted standard deviation of the ink's x (NaN without ink)."""
    g = gray(images)
    weights = np.where(g > threshold, g, 0.0)
    total = weights.sum(axis=(1, 2))
    x = np.arange(g.shape[2], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        column_mass = weights.sum(axis=1)  # (N, W)
        mean = (column_mass * x).sum(axis=1) / total
        variance = (column_mass * (x[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return np.where(total > 0, np.sqrt(12.0 * np.maximum(variance, 0.0)), np.nan)


def upsampled_ink(images, upsample: int = UPSAMPLE, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """(N, H * upsample, W * upsample) bool: each image's channel mean upsampled bilinearly (pixel
    areas aligned: a pixel's edge is where the interpolation between its centre and its neighbour's
    crosses the threshold), then thresholded."""
    g = gray(images)
    big = ndimage.zoom(g, (1, upsample, upsample), order=1, mode="grid-constant", cval=0.0, grid_mode=True)
    return big > threshold


def stroke_width(images, upsample: int = UPSAMPLE, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Mean stroke width in pixels along each image's ridge (NaN without ink); see the module docstring."""
    big = upsampled_ink(images, upsample, threshold)
    out = np.full(big.shape[0], np.nan)
    for i, mask in enumerate(big):
        if not mask.any():
            continue
        distance = ndimage.distance_transform_edt(mask)
        ridge = mask & (distance >= ndimage.maximum_filter(distance, size=3, mode="constant", cval=0.0))
        out[i] = (2.0 * distance[ridge].mean() - 0.5) / upsample
    return out


def brightness(images) -> np.ndarray:
    """Mean luminance of each image (Rec. 601 weights for RGB, the pixel for gray)."""
    array = _batch(images)
    if array.shape[-1] == 3:
        return (array @ LUMA).mean(axis=(1, 2))
    return array.mean(axis=(1, 2, 3))


def mean_colour(images) -> np.ndarray:
    """(N, C): each image's mean over pixels, per channel."""
    return _batch(images).mean(axis=(1, 2))


def colour_change(before, after) -> np.ndarray:
    """Euclidean distance between two (N, C) mean colours."""
    return np.linalg.norm(np.asarray(after, np.float64) - np.asarray(before, np.float64), axis=-1)


def asymmetry(images) -> np.ndarray:
    """Mean |x - x mirrored left-right| of each image, over pixels and channels."""
    array = _batch(images)
    return np.abs(array - array[:, :, ::-1]).mean(axis=(1, 2, 3))
