"""A folder of JPEG / PNG files as a dataset: ``--dataset=images:DIR``.

The files directly in DIR whose names end in .jpg, .jpeg or .png (any case; subfolders are not read)
are decoded by TensorFlow (`tf.io.decode_image`) as stored: grayscale stays C = 1, RGB C = 3 (an
alpha channel is dropped, with a warning); every image of the folder must be of one kind. Each image
is centre-cropped to a square whose side is ``image_crop`` times its shorter side (rounded), resized
to ``image_size`` x ``image_size`` (bilinear, antialiased, as the tensorflow-datasets ``celeb_a``
path) and rounded to uint8. Sorted by file name, the last ``test_images`` decodable files are the
test split, the others the train split. A file that does not decode is skipped, and named in a
warning with the count of such files.

The settings are part of the dataset's name, so that the name alone rebuilds the same splits
wherever it is used (training, evaluation, figures, ``hiabp_tf.load(W).config.dataset``) and a run's
config.json records them. The canonical name has an absolute folder and every setting:

    images:/data/faces,image_size=64,image_crop=1.0,test_images=1000

``images:DIR`` alone, or with some settings, takes the others from the flags / ``DEFAULTS``.

The decoded images of a folder are cached as uint8 (every image, in sorted order; the split is
taken at each load) in ``$XDG_CACHE_HOME/hiabp_tf/images/`` (default ``~/.cache/hiabp_tf/images/``),
never in the folder, which may be read-only. The cache key is a hash of the folder's path, the name,
size and modification time of each of its image files, ``image_size`` and ``image_crop``: a changed
folder, size or crop is decoded again. Within a process the arrays are also memoised.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import tempfile

from absl import logging
import numpy as np
import tensorflow as tf

from hiabp_tf.checks.errors import DataError
from hiabp_tf.data import spec as spec_lib

# The images: name's grammar lives with the other dataset names in spec.py; its names are kept here too.
from hiabp_tf.data.spec import CELEB_A_IMAGE_CROP  # noqa: F401
from hiabp_tf.data.spec import DEFAULTS  # noqa: F401
from hiabp_tf.data.spec import EXTENSIONS
from hiabp_tf.data.spec import PREFIX  # noqa: F401
from hiabp_tf.data.spec import check_setting  # noqa: F401
from hiabp_tf.data.spec import is_images_name  # noqa: F401
from hiabp_tf.data.spec import parse_name  # noqa: F401
from hiabp_tf.data.spec import parse_setting  # noqa: F401

CACHE_FORMAT = 1  # bump when the cached arrays change meaning
_MAX_NAMED = 10  # files named in one warning or error


def settings_of(name: str) -> dict:
    """{image_size, image_crop, test_images} of an images: name (defaults for those not written)."""
    return dict(spec_lib.parse(name).settings)


def describe(name: str) -> str:
    """Where the images of `name` come from and how they are prepared, for a result's provenance."""
    dataset = spec_lib.parse(name)
    s = dataset.settings
    return (f"JPEG/PNG files of {dataset.path} sorted by name (the last {s['test_images']} the test split), centre "
            f"square of {s['image_crop']:g} of the shorter side resized to {s['image_size']}x{s['image_size']}")


# ---------------------------------------------------------------------------------- decoding


def crop_and_resize(image, side, size):
    """uint8 (h, w, c) -> its centre side x side square resized to size x size (antialiased), uint8."""
    shape = tf.shape(image)
    image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
    # Antialiasing can overshoot [0, 255]; clip, then round to uint8 to keep the cache small.
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


@tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8), tf.TensorSpec([], tf.int32),
                              tf.TensorSpec([], tf.float64)])
def _crop_resize(image, size, crop):
    """uint8 (h, w, c) -> uint8 (size, size, c), the centre square of `crop` of the shorter side."""
    shorter = tf.cast(tf.minimum(tf.shape(image)[0], tf.shape(image)[1]), tf.float64)
    side = tf.maximum(tf.cast(tf.round(crop * shorter), tf.int32), 1)
    return crop_and_resize(image, side, size)


def _prepare(data, size, crop):
    """One file's bytes -> uint8 (size, size, c) with the channels as stored (c in 1..4). Decoded eagerly:
    inside a graph, TensorFlow's reason for an undecodable file reads "Graph execution error"."""
    image = tf.io.decode_image(data, channels=0, expand_animations=False)
    return _crop_resize(image, size, crop)


def _reason(error: Exception) -> str:
    text = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}|\s*\[Op:\w+\]", "", str(text)).strip()  # TensorFlow's op decoration
    lines = [line.strip() for line in text.splitlines() if line.strip() and "Graph execution error" not in line
             and not line.strip().startswith(("Detected at node", "File ", "Traceback"))]
    return lines[0] if lines else type(error).__name__


def _decode_files(folder, names, size, crop):
    """(images by channel count {c: (names, arrays)}, skipped [(name, reason)], names of alpha images)."""
    by_channels, skipped, alpha = {}, [], []
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            image = _prepare(data, size, crop).numpy()
        except (OSError, tf.errors.OpError) as e:
            skipped.append((name, _reason(e)))
            continue
        if image.shape[-1] in (2, 4):  # grey + alpha, RGBA: the model sees no transparency
            image = image[..., :-1]
            alpha.append(name)
        kept_names, arrays = by_channels.setdefault(image.shape[-1], ([], []))
        kept_names.append(name)
        arrays.append(image)
    return by_channels, skipped, alpha


# ------------------------------------------------------------------------------------- cache


def cache_dir() -> str:
    """Where decoded folders are cached: $XDG_CACHE_HOME/hiabp_tf/images, else ~/.cache/hiabp_tf/images."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "hiabp_tf", "images")


def _cache_path(folder, files, size, crop) -> str:
    key = json.dumps({"format": CACHE_FORMAT, "folder": folder, "image_size": size, "image_crop": repr(crop),
                      "files": files})
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(folder)) or "folder"
    return os.path.join(cache_dir(), f"{stem}-{size}px-{digest}.npz")


def _read_cache(path, size: int):
    """(images, names, skipped, alpha) of a cache file, or None when there is none or it cannot be used: a
    truncated or garbled file (zipfile.BadZipFile, ...), or arrays that are not a decoded folder of this size.
    A cache is only ever a copy: whatever is wrong with it, the folder is decoded again (and the cache
    rewritten), never an error."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, names = npz["images"], [str(n) for n in npz["names"]]
            skipped = [(str(n), str(r)) for n, r in zip(npz["skipped"], npz["reasons"])]
            alpha = [str(n) for n in npz["alpha"]]
        if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:3] != (size, size)
                or images.shape[3] not in (1, 3) or len(images) != len(names) or not len(names)):
            raise ValueError(f"arrays {images.dtype} {images.shape} for {len(names)} names")
        return images, names, skipped, alpha
    except FileNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 - any damage: the cache is rebuilt (see above)
        logging.warning("Ignoring the unreadable image cache %s (%s: %s); decoding the folder again.", path,
                        type(e).__name__, e)
        return None


def _write_cache(path, images, names, skipped, alpha) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=images, names=np.array(names, dtype=str),
                         skipped=np.array([n for n, _ in skipped], dtype=str),
                         reasons=np.array([r for _, r in skipped], dtype=str), alpha=np.array(alpha, dtype=str))
            os.replace(tmp, path)  # readers never see a half-written cache
        except BaseException:
            os.remove(tmp)
            raise
    except OSError as e:
        logging.warning("Could not write the image cache %s (%s): the folder will be decoded again next time. "
                        "Set XDG_CACHE_HOME to a writable folder to cache it.", path, e.strerror or e)


# ------------------------------------------------------------------------------------ loading


def _listing(folder: str, where: str, written_as: str | None = None) -> tuple:
    """((name, size, mtime_ns), ...) of the folder's image files, sorted by name."""
    if not os.path.exists(folder):
        also = (f", nor {written_as} (the whole text, were ',{written_as[len(folder) + 1:]}' part of the folder's "
                "name)") if written_as else ""
        raise DataError(f"{where}: folder {folder} not found{also} (a relative folder is relative to the current "
                        f"directory, {os.getcwd()}). Give an existing folder of JPEG or PNG files.")
    if not os.path.isdir(folder):
        raise DataError(f"{where}: {folder} is a file, not a folder; give the folder holding the images "
                        "(or --dataset=npz:PATH for an .npz file).")
    try:
        entries = list(os.scandir(folder))
    except OSError as e:
        raise DataError(f"{where}: cannot read folder {folder} ({e.strerror or e}).") from None
    files, unreadable = [], []
    for entry in entries:
        if not entry.name.lower().endswith(EXTENSIONS):
            continue
        try:  # one entry that cannot be followed (a link loop, a link to nothing) is skipped, not the folder
            if entry.is_file():
                stat = entry.stat()
                files.append((entry.name, stat.st_size, stat.st_mtime_ns))
            elif entry.is_symlink():
                unreadable.append(f"{entry.name} (a symbolic link to {os.readlink(entry.path)}, which does not exist)")
        except OSError as e:
            reason = "a symbolic link loop" if e.errno == errno.ELOOP else (e.strerror or str(e))
            unreadable.append(f"{entry.name} ({reason})")
    if unreadable:
        logging.warning("%s: skipped %d entries of %s that cannot be read as files: %s.", where, len(unreadable),
                        folder, _named(unreadable))
    if not files:
        raise DataError(f"{where}: folder {folder} holds no JPEG or PNG file (names ending in "
                        f"{', '.join(EXTENSIONS)}, any case; subfolders are not read) among its {len(entries)} "
                        "entries. Put the images directly in the folder.")
    return tuple(sorted(files))


def _named(items) -> str:
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f" and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else "")


@functools.lru_cache(maxsize=4)
def _decoded(folder: str, files: tuple, size: int, crop: float, where: str) -> tuple[np.ndarray, tuple]:
    """(uint8 images (N, size, size, C) in file-name order, their names), read-only; memoised per
    listing, so a changed folder is read again."""
    path = _cache_path(folder, files, size, crop)
    cached = _read_cache(path, size)
    if cached is not None:
        images, names, skipped, alpha = cached
        logging.info("%s: %d images read from the cache %s.", where, len(images), path)
    else:
        by_channels, skipped, alpha = _decode_files(folder, [name for name, _, _ in files], size, crop)
        if not by_channels:
            raise DataError(f"{where}: none of the {len(files)} image files of {folder} can be decoded as JPEG or "
                            f"PNG ({_named([f'{n} ({r})' for n, r in skipped])}). Give a folder of valid images.")
        if len(by_channels) > 1:
            kinds = {1: "grayscale", 3: "RGB"}
            parts = [f"{len(n)} {kinds[c]} (e.g. {n[0]})" for c, (n, _) in sorted(by_channels.items())]
            raise DataError(f"{where}: folder {folder} mixes {' and '.join(parts)} images (after dropping any alpha "
                            "channel); a dataset's images must all be grayscale (C = 1) or all RGB (C = 3). Convert "
                            "the images of one kind to the other, or move them out of the folder.")
        (names, arrays), = by_channels.values()
        images = np.stack(arrays)
        _write_cache(path, images, names, skipped, alpha)
    if skipped:
        logging.warning("%s: skipped %d of %d image files that cannot be decoded as JPEG or PNG: %s.", where,
                        len(skipped), len(files), _named([f"{n} ({r})" for n, r in skipped]))
    if alpha:
        logging.warning("%s: dropped the alpha channel of %d images (%s).", where, len(alpha), _named(alpha))
    images.setflags(write=False)
    return images, tuple(names)


def load(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(x_train, x_test): read-only uint8 arrays (N, S, S, C) of an images: dataset (a `spec.DataSpec`, or
    its text; see the module docstring); DataError naming the folder or flag for a folder that cannot be used."""
    dataset = spec_lib.parse(dataset)
    folder, s, where = dataset.path, dataset.settings, dataset.flag
    images, _ = _decoded(folder, _listing(folder, where, dataset.written_as), s["image_size"], s["image_crop"], where)
    n, test = len(images), s["test_images"]
    if n < 2:  # "between 1 and 0" says nothing: one image cannot be split into a training and a test image
        raise DataError(f"{where}: the folder has {n} decodable image; a dataset needs at least 2 (the last "
                        "--test_images files are the test split, the others the training split). Add images.")
    if test >= n:
        raise DataError(f"{where}: --test_images={test} leaves no training image: the folder has {n} decodable "
                        f"images. Choose --test_images between 1 and {n - 1} (the last N files in sorted order are "
                        "the test split; in evaluate's --dataset: images:DIR,test_images=N).")
    return images[:n - test], images[n - test:]
