"""The no-model references of the tables (the mean training image), checked against numpy on
data whose answer is known."""

import numpy as np
import pytest

from hiabp_tf.data import masks
from hiabp_tf.evaluation import metrics


@pytest.fixture
def npz_dataset(tmp_path):
    """Training images 0 and 255 alternating (mean image 0.5 everywhere); test images with varied pixels."""
    rng = np.random.default_rng(0)
    x_train = np.stack([np.zeros((16, 16), np.uint8), np.full((16, 16), 255, np.uint8)] * 3)
    x_test = rng.integers(0, 256, size=(7, 16, 16), dtype=np.uint8)
    path = tmp_path / "known.npz"
    np.savez(path, x_train=x_train, x_test=x_test)
    return f"npz:{path}", x_test[..., None].astype(np.float64) / 255.0


def test_mean_training_image_and_its_test_mse(npz_dataset):
    dataset, x_test = npz_dataset
    np.testing.assert_allclose(metrics.mean_training_image(dataset).numpy(), 0.5, atol=1e-7)
    expected = np.mean(np.mean((x_test - 0.5) ** 2, axis=(1, 2, 3)))
    assert metrics.mean_image_mse(dataset) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("mask", ["pepper", "region20"])
def test_mean_image_recovery_is_the_error_on_the_occluded_test_pixels_only(npz_dataset, mask):
    """The same fixed test masks as the models' evaluation (`TEST_MASK_SEED`, by example index)."""
    dataset, x_test = npz_dataset
    mask_np = masks.example_masks(mask, x_test.shape, np.arange(len(x_test)), metrics.TEST_MASK_SEED).numpy()
    occluded = np.broadcast_to(mask_np == 0, x_test.shape)
    assert 0 < occluded.sum() < occluded.size
    errors = metrics.mean_image_recovery(dataset, mask)
    assert errors["recovery_mae"] == pytest.approx(np.abs(x_test - 0.5)[occluded].mean(), rel=1e-6)
    assert errors["recovery_mse"] == pytest.approx(((x_test - 0.5) ** 2)[occluded].mean(), rel=1e-6)
