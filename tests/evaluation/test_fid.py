"""Tests for hiabp_tf.evaluation.fid. Offline: Inception runs with random weights, the classifier trains
for seconds on mnist_5k."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from hiabp_tf.data import input_pipeline as ip
from hiabp_tf.evaluation import fid

# Keras' own saving code trips numpy 2's "__array__ ... copy" deprecation (save_weights below).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# --------------------------------------------------------------------------- frechet_distance

_A = np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-0.3, 0.2, 0.7]])
_S = _A @ _A.T  # a non-diagonal SPD covariance


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    a, b = np.array([1.0, 4.0, 0.25, 2.0]), np.array([9.0, 1.0, 0.25, 0.5])
    # Commuting covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_distance_scaled_non_diagonal_and_symmetry_and_zero():
    mu1, mu2 = np.zeros(3), np.array([1.0, -0.5, 0.25])
    c = 2.5
    # S2 = c S1: (S1 S2)^{1/2} = sqrt(c) S1, so the trace term is Tr(S1) (1 + c - 2 sqrt(c)).
    expected = mu2 @ mu2 + np.trace(_S) * (1.0 + c - 2.0 * np.sqrt(c))
    d12 = fid.frechet_distance(mu1, _S, mu2, c * _S)
    d21 = fid.frechet_distance(mu2, c * _S, mu1, _S)
    assert d12 == pytest.approx(expected, rel=1e-9)
    assert d21 == pytest.approx(d12, rel=1e-9)
    assert abs(fid.frechet_distance(mu2, _S, mu2, _S)) < 1e-6
    assert isinstance(d12, float)


def test_frechet_distance_rank_deficient_covariances():
    # Dead features (zero variance in both sets), as ReLU features have: finite, and the
    # live block alone determines the distance (up to the eps guard).
    s1, s2 = np.zeros((4, 4)), np.zeros((4, 4))
    s1[:2, :2], s2[:2, :2] = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    got = fid.frechet_distance(np.zeros(4), s1, np.zeros(4), s2)
    assert got == pytest.approx(2.0, abs=1e-4)  # (1-2)^2 + (2-1)^2


def test_frechet_distance_retries_a_singular_product_with_eps_on_the_diagonals(monkeypatch):
    """S1 = a a^T, S2 = b b^T: S1 S2 = (a.b) a b^T has rank 1 and a double zero eigenvalue, where
    scipy's sqrtm gives NaN; with eps on both diagonals it succeeds. The trace of (S1 S2)^{1/2} is
    |a.b|, so the distance is ||mu1 - mu2||^2 + |a|^2 + |b|^2 - 2 |a.b| (up to ~sqrt(eps) terms)."""
    a, b = np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 2.0])
    s1, s2 = np.outer(a, a), np.outer(b, b)
    mu1, mu2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.5, 0.0])
    assert not np.isfinite(fid._sqrtm(s1 @ s2)).all()  # the case needs the retry
    calls = []
    sqrtm = fid._sqrtm
    monkeypatch.setattr(fid, "_sqrtm", lambda m: calls.append(m) or sqrtm(m))
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    expected = 1.25 + a @ a + b @ b - 2 * abs(a @ b)  # 6.25
    assert got == pytest.approx(expected, abs=1e-4)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(3)) @ (s2 + 1e-6 * np.eye(3)))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(fid.FIDError):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_sample_statistics_approach_the_analytic_distance():
    mu1, mu2 = np.zeros(3), np.array([1.0, -0.5, 0.25])
    s1, s2 = _S, 2.0 * _S
    exact = fid.frechet_distance(mu1, s1, mu2, s2)
    assert exact == pytest.approx(mu2 @ mu2 + np.trace(_S) * (3.0 - 2.0 * np.sqrt(2.0)))
    rng = np.random.default_rng(0)
    n = 20_000
    a, b = rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu2, s2, n)
    estimate = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
    # At N = 20,000 the estimate's standard deviation is ~0.02 (the mean term contributes
    # 2 sqrt(dmu^T (S1 + S2) dmu / N) ~ 0.02; measured 0.019 over 30 seeds) and its bias ~0.007:
    # a tolerance of 0.1 is 5 standard deviations.
    assert estimate == pytest.approx(exact, abs=0.1)
    # With far fewer samples the estimate is visibly off, so the tolerance above means something.
    small = fid.frechet_distance(*fid.feature_statistics(a[:20]), *fid.feature_statistics(b[:20]))
    assert abs(small - exact) > 0.1


def test_streaming_statistics_equal_feature_statistics():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(23, 2, 2, 1)).astype(np.float32)
    def flat(x):
        return x.reshape(len(x), -1) * 10.0 + 100.0  # a large offset tests the shift
    mu, sigma = fid.feature_statistics(flat(images))
    for source in (images, [images[:5], {"image": images[5:]}]):
        mu_s, sigma_s, n = fid.statistics(flat, source, batch_size=4)
        assert n == 23
        np.testing.assert_allclose(mu_s, mu, rtol=1e-6)
        np.testing.assert_allclose(sigma_s, sigma, rtol=1e-6, atol=1e-6)
    assert fid.fid(flat, images, images) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(fid.FIDError, match=r"\[0, 1\]"):
        fid.statistics(flat, images * 255.0)


# --------------------------------------------------------------------------- Inception


@pytest.fixture(scope="module")
def inception():
    return fid.InceptionFeatures(weights_path=None)


@pytest.mark.slow
def test_inception_features_of_grey_and_rgb_images(inception):
    rng = np.random.default_rng(0)
    grey = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    rgb = rng.uniform(size=(2, 64, 64, 3)).astype(np.float32)
    for images in (grey, rgb):
        f = inception(images)
        assert f.shape == (2, fid.INCEPTION_FEATURE_DIM) and np.isfinite(f).all()
    assert "RANDOM" in inception.description


def test_inception_weights_file_errors(inception, tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(fid.FIDError, match=r"--inception_weights=.*nope\.h5"):
        fid.InceptionFeatures(missing)
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not an HDF5 file")
    with pytest.raises(fid.FIDError, match=r"--inception_weights=.*garbage\.h5"):
        fid.load_inception_weights(inception.model, str(garbage))


@pytest.mark.slow
def test_inception_weights_load_from_a_local_file(inception, tmp_path):
    path = str(tmp_path / "inception.weights.h5")
    inception.model.save_weights(path)
    loaded = fid.InceptionFeatures(path)  # a fresh random init, then the file's weights
    image = np.random.default_rng(2).uniform(size=(1, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(image), inception(image), rtol=1e-5, atol=1e-5)
    assert "inception.weights.h5" in loaded.description


# --------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def tiny_classifier():
    return fid.ClassifierFeatures.train("mnist_5k", epochs=1, seed=0, num_train=256)


@pytest.mark.slow
def test_classifier_features_shape_and_save_load_round_trip(tiny_classifier, tmp_path, monkeypatch):
    x_test = ip.mnist_5k_arrays()[2][:10]
    f = tiny_classifier(x_test)
    assert f.shape == (10, fid.CLASSIFIER_FEATURE_DIM) and f.dtype == np.float32

    path = str(tmp_path / "classifier.keras")
    tiny_classifier.save(path)
    loaded = fid.ClassifierFeatures.load(path)
    np.testing.assert_array_equal(loaded(x_test), f)
    assert loaded.test_accuracy == tiny_classifier.test_accuracy
    assert loaded.description == tiny_classifier.description

    # A classifier trained on a subset is never taken from the cache, nor one with other settings.
    with pytest.raises(fid.FIDError, match="classifier.keras"):
        fid.ClassifierFeatures.load_or_train(path, "mnist_5k", epochs=1, seed=0)
    # A missing cache trains (here: stubbed) and writes the file.
    monkeypatch.setattr(fid.ClassifierFeatures, "train", classmethod(lambda cls, *a, **k: tiny_classifier))
    new_path = str(tmp_path / "sub" / "new.keras")
    assert fid.ClassifierFeatures.load_or_train(new_path, epochs=1) is tiny_classifier
    assert fid.ClassifierFeatures.load(new_path).info["num_train"] == 256

    with pytest.raises(fid.FIDError, match=r"shape"):
        tiny_classifier(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(fid.FIDError, match=r"\.keras"):
        tiny_classifier.save(str(tmp_path / "classifier.h5"))


@pytest.mark.slow
def test_classifier_accuracy_and_fid_separate_real_from_noise(tmp_path, monkeypatch):
    features = fid.ClassifierFeatures.train("mnist_5k", epochs=1, seed=0)  # ~4 s on 2 cores
    assert features.info["num_train"] == 4000 and features.info["num_test"] == 1000
    assert features.test_accuracy > 0.8, features.test_accuracy
    assert f"{features.test_accuracy:.4f}" in features.description

    x_train, _, x_test, _ = ip.mnist_5k_arrays()
    noise = np.random.default_rng(0).uniform(size=(1000, 28, 28, 1)).astype(np.float32)
    mu, sigma, _ = fid.statistics(features, x_train)
    fid_test = fid.frechet_distance(*fid.statistics(features, x_test)[:2], mu, sigma)
    fid_noise = fid.frechet_distance(*fid.statistics(features, noise)[:2], mu, sigma)
    assert 0.0 <= fid_test < 0.05 * fid_noise, (fid_test, fid_noise)

    # The cache: load_or_train returns the saved classifier without training again.
    path = str(tmp_path / "mnist_5k_classifier.keras")
    features.save(path)
    monkeypatch.setattr(fid.ClassifierFeatures, "train", classmethod(lambda cls, *a, **k: pytest.fail("retrained")))
    cached = fid.ClassifierFeatures.load_or_train(path, "mnist_5k", epochs=1, seed=0)
    np.testing.assert_array_equal(cached(x_test[:8]), features(x_test[:8]))
    with pytest.raises(fid.FIDError, match="epochs"):
        fid.ClassifierFeatures.load_or_train(path, "mnist_5k", epochs=2, seed=0)


def test_labelled_arrays_for_tfds_mnist_and_unknown_datasets(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        x_train, y_train, x_test, y_test = fid.labelled_arrays("mnist", data_dir=str(tmp_path))
    assert x_train.shape == (6, 28, 28, 1) and x_train.dtype == np.uint8
    assert y_test.shape == (6,) and y_test.dtype == np.int64
    with pytest.raises(fid.FIDError, match="no mnist.npz there, and .*not prepared.*docs/data.md"):
        fid.labelled_arrays("mnist", data_dir=str(tmp_path))  # download=False: fails at once
    with pytest.raises(fid.FIDError, match="svhn_cropped"):
        fid.labelled_arrays("svhn_cropped")


# --------------------------------------------------------------------------- generated_images


class _StubModel:
    """model.sample(num_samples, seed): records its calls; zeros, or seed-dependent noise."""

    def __init__(self, shape=(28, 28, 1), noise=False):
        self.shape, self.noise, self.calls = shape, noise, []

    def sample(self, num_samples, seed):
        assert isinstance(num_samples, tf.Tensor) and seed.dtype == tf.int32 and seed.shape == (2,)
        self.calls.append((int(num_samples), tuple(seed.numpy())))
        shape = [int(num_samples), *self.shape]
        if self.noise:
            return tf.random.stateless_uniform(shape, seed)
        return tf.zeros(shape)


def test_generated_images_exact_count_over_batches():
    model = _StubModel()
    images = fid.generated_images(model, num=7, batch_size=3, seed=0)
    assert images.shape == (7, 28, 28, 1) and images.dtype == np.float32
    assert [n for n, _ in model.calls] == [3, 3, 1]
    assert len({s for _, s in model.calls}) == 3  # a different seed for every batch

    def noisy(seed):
        return fid.generated_images(_StubModel(noise=True), 5, 2, seed)
    np.testing.assert_array_equal(noisy(1), noisy(tf.constant([1, 0], tf.int32)))
    assert not np.array_equal(noisy(1), noisy(2))
    with pytest.raises(fid.FIDError):
        fid.generated_images(model, num=0, batch_size=3, seed=0)
