"""The no-model references of the tables (the mean training image), checked against numpy on
data whose answer is known."""

import numpy as np
import pytest
import tensorflow as tf

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


# ------------------------------------------------------------------- reconstruction_mse, a stub model

# A stub's reconstruction error per colour channel: the test MSE averages the channels (0.14 / 3); a sum
# over them would give 0.14.
OFFSETS = np.array([0.1, 0.2, 0.3], np.float32)


def _offsets(x, deterministic):
    """[E] = the input + OFFSETS per channel, [E+L] = the input + 0.1 (+ 0.2 when deterministic)."""
    return {"E": x + OFFSETS, "E+L": x + (0.2 if deterministic else 0.1)}


class _StubModel:
    """A model whose reconstructions are known functions of the image it is given: `decode(x, deterministic)`
    gives {name: x_hat}. It records every call."""

    method = "stub"

    def __init__(self, decode=_offsets, reconstructions=("E", "E+L")):
        self.decode, self.reconstructions, self.calls = decode, reconstructions, []

    def reconstruct(self, x, seed, langevin_steps=None, mask=None, deterministic=False):
        self.calls.append(dict(x=x.numpy(), seed=tuple(seed.numpy()), langevin_steps=langevin_steps,
                               mask=None if mask is None else mask.numpy()))
        return self.decode(x, deterministic)


def _rgb_batches(sizes, side=6, value=None):
    """Eval batches {"image", "index"} of RGB images: random in [0, 1], or all pixels of example i at
    value(i); indices count on over the batches."""
    rng, batches, start = np.random.default_rng(1), [], 0
    for size in sizes:
        if value is None:
            images = rng.uniform(size=(size, side, side, 3))
        else:
            images = np.stack([np.full((side, side, 3), value(start + i)) for i in range(size)])
        batches.append({"image": tf.constant(images, tf.float32), "index": tf.range(start, start + size)})
        start += size
    return batches


def test_reconstruction_mse_averages_pixels_and_channels_of_every_reconstruction():
    model = _StubModel()
    scores = metrics.reconstruction_mse(model, _rgb_batches((3, 2)), seed=4, langevin_steps=7)
    assert set(scores) == {"mse_E", "mse_EL", "num_examples"} and scores["num_examples"] == 5
    assert scores["mse_E"] == pytest.approx(np.mean(OFFSETS**2), rel=1e-5)
    assert scores["mse_EL"] == pytest.approx(0.01, rel=1e-5)
    # Every batch gets its own seed, fold_in((seed, 1), b), and the test-time T.
    base = tf.constant([4, 1], tf.int32)
    assert [c["seed"] for c in model.calls] == [
        tuple(tf.random.experimental.stateless_fold_in(base, b).numpy()) for b in range(2)]
    assert [c["langevin_steps"] for c in model.calls] == [7, 7]
    assert all(c["mask"] is None for c in model.calls)

    deterministic = metrics.reconstruction_mse(model, _rgb_batches((3, 2)), deterministic=True)
    assert set(deterministic) == {"mse_EL_det", "num_examples"}
    assert deterministic["mse_EL_det"] == pytest.approx(0.04, rel=1e-5)
    langevin_only = _StubModel(lambda x, _: {"L": x + 0.3}, ("L",))
    assert metrics.reconstruction_mse(langevin_only, _rgb_batches((2,)))["mse_L"] == pytest.approx(0.09, rel=1e-5)
    with pytest.raises(ValueError, match="no \\[E\\+L\\]"):
        metrics.reconstruction_mse(langevin_only, _rgb_batches((2,)), deterministic=True)


def test_reconstruction_mse_is_the_mean_over_the_first_max_examples():
    """Example i is a flat image of value (i + 1) / 10 decoded to black, so its MSE is ((i + 1) / 10)^2:
    each example weighs the same, the examples past max_examples not at all."""
    model = _StubModel(lambda x, _: {"L": tf.zeros_like(x)}, ("L",))
    batches = _rgb_batches((3, 3, 3), value=lambda i: (i + 1) / 10)
    scores = metrics.reconstruction_mse(model, batches, max_examples=4)
    assert scores["num_examples"] == 4 and [len(c["x"]) for c in model.calls] == [3, 1]
    np.testing.assert_allclose(np.concatenate([c["x"] for c in model.calls])[:, 0, 0, 0], [0.1, 0.2, 0.3, 0.4],
                               rtol=1e-6)
    assert scores["mse_L"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.16) / 4, rel=1e-5)


@pytest.mark.parametrize("mask", ["region:32", "pepper"])
def test_masked_scores_compare_with_the_complete_image_and_recover_the_occluded_pixels(mask):
    """Flat images of 0.6, occluded by their fixed masks (mask_seed): the model is given the occluded
    image (0 where hidden) and the mask. At observed pixels [E] is off by OFFSETS, at occluded ones by
    OFFSETS - 0.6, so the recovery error is mean |OFFSETS - 0.6| = 0.4 whatever the mask, and the MSE over
    the complete image weighs the two by the occluded fraction (1/4 for the 8x8 square of region:32 on 16x16)."""
    model = _StubModel()
    batches = _rgb_batches((3, 2), side=16, value=lambda i: 0.6)
    scores = metrics.reconstruction_mse(model, batches, mask_spec=mask, mask_seed=5)
    expected_masks = [masks.example_masks(mask, b["image"].shape, b["index"], 5).numpy() for b in batches]
    for call, expected, batch in zip(model.calls, expected_masks, batches):
        np.testing.assert_array_equal(call["mask"], expected)
        np.testing.assert_allclose(call["x"], batch["image"].numpy() * expected)  # nothing hidden reaches it
    occluded = np.concatenate([1.0 - m for m in expected_masks]).mean(axis=(1, 2, 3))  # per example
    if mask == "region:32":
        np.testing.assert_array_equal(occluded, 0.25)
    assert set(scores) == {"mse_E", "mse_EL", "num_examples", "recovery_mae_E", "recovery_mse_E",
                           "recovery_mae_EL", "recovery_mse_EL"}
    observed_error, occluded_error = np.mean(OFFSETS**2), np.mean((OFFSETS - 0.6) ** 2)
    assert scores["mse_E"] == pytest.approx(np.mean((1 - occluded) * observed_error + occluded * occluded_error),
                                            rel=1e-5)
    assert scores["recovery_mae_E"] == pytest.approx(0.4, rel=1e-5)
    assert scores["recovery_mse_E"] == pytest.approx(occluded_error, rel=1e-5)
    assert scores["mse_EL"] == pytest.approx(np.mean((1 - occluded) * 0.01 + occluded * 0.25), rel=1e-5)
    assert scores["recovery_mae_EL"] == pytest.approx(0.5, rel=1e-5)
    assert scores["recovery_mse_EL"] == pytest.approx(0.25, rel=1e-5)
