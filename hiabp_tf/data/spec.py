"""The dataset of a run, parsed once: ``--dataset`` (and, for ``images:DIR``, ``--image_size``,
``--image_crop`` and ``--test_images``) as a typed value.

`DataSpec` has the dataset's ``kind`` (``mnist_5k``, ``mnist``, ``svhn_cropped``, ``celeb_a``,
``npz`` or ``images``), its ``path`` (npz and images: the file or folder), its ``settings`` (images:
the size, crop and test split) and, on demand, a ``digest`` of its content (the file's bytes, or the
bytes of the folder's image files). Train, evaluate, inpaint, the API, config.json and the result
names all use it; nothing else parses the text.

It is a ``str`` too, whose value is the canonical text config.json records (``mnist_5k``,
``npz:PATH`` as given, ``images:/abs/DIR,image_size=64,image_crop=1.0,test_images=1000``), so that
the records of earlier versions read as before and code that shows or compares ``config.dataset``
keeps working.

A folder's name may itself hold ``,key=value`` (``images:faces,test_images=5``): a setting is taken
from the text only where the folder before it exists and the whole text is not a folder; where both
are folders the text is ambiguous and refused. The canonical text (every setting, in order) is read
strictly, without looking at the disk: a model's config.json names a folder that may not exist here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import types

import numpy as np

from hiabp_tf.checks.errors import DataError

# ------------------------------------------------------------- images:DIR names (py reads them)

PREFIX = "images:"
EXTENSIONS = (".jpg", ".jpeg", ".png")
# The settings, in the order of the canonical name (each is also a flag of hiabp_tf.train).
DEFAULTS = {"image_size": 64, "image_crop": 1.0, "test_images": 1000}
# --image_crop for aligned CelebA faces: the tensorflow-datasets celeb_a path's centre 140 x 140 of the
# 218 x 178 image, as a fraction of the shorter side, so it is the same region at any resolution (the
# centre 70 x 70 of the 109 x 89 faces in ../shared/data/celeba). The flag value 0.786517 gives the
# same sides (140 of 178, 70 of 89).
CELEB_A_IMAGE_CROP = 140 / 178


def is_images_name(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def parse_setting(key: str, text: str):
    try:
        value = float(text) if key == "image_crop" else int(text)
    except ValueError:
        kind = "a number in (0, 1]" if key == "image_crop" else "an integer"
        raise DataError(f"--{key}={text!r} must be {kind}.") from None
    return check_setting(key, value)


def check_setting(key: str, value):
    if key == "image_crop":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise DataError(f"--image_crop={value!r} must be a fraction in (0, 1] of an image's shorter side: "
                            f"1 (the default) keeps the largest centred square, {CELEB_A_IMAGE_CROP:.6f} is "
                            "CelebA's centre 140 x 140 of 178.")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        what = ("the side in pixels of the square images" if key == "image_size" else
                "how many files, the last in sorted order, form the test split")
        raise DataError(f"--{key}={value!r} must be an integer >= 1: {what}.")
    return int(value)


def parse_name(name: str) -> tuple[str, dict]:
    """(folder as written, {setting: value} of the settings written in `name`) of an images: name."""
    rest = name[len(PREFIX):]
    given = {}
    # Settings trail the folder as ",key=value"; anything else belongs to the folder's own name.
    while True:
        head, sep, tail = rest.rpartition(",")
        key, eq, value = tail.partition("=")
        if not sep or not eq or key not in DEFAULTS:
            break
        if key in given:
            raise DataError(f"--dataset={name} gives {key} twice; give each setting once.")
        given[key] = parse_setting(key, value)
        rest = head
    if not rest:
        raise DataError(f"--dataset={name} names no folder: use --dataset=images:DIR, DIR a folder of JPEG or "
                        "PNG files.")
    return rest, given


# ------------------------------------------------------------------------------------- DataSpec

REGISTERED = ("mnist_5k", "mnist", "svhn_cropped", "celeb_a")
NPZ_PREFIX = "npz:"
IMAGES_PREFIX = PREFIX
_CANONICAL_TAIL = re.compile(
    r",image_size=(?P<image_size>[^,=]+),image_crop=(?P<image_crop>[^,=]+),test_images=(?P<test_images>[^,=]+)$")


def unknown(text) -> DataError:
    return DataError(
        f"Unknown --dataset={text!r}. Valid names are {', '.join(REGISTERED)}, npz:PATH for your own .npz file "
        "with uint8 arrays x_train and x_test of shape (N,H,W) or (N,H,W,C), or images:DIR for your own folder "
        "of JPEG or PNG files.")


class DataSpec(str):
    """A dataset, parsed (see the module docstring). Build one with `parse`."""

    kind: str
    path: str | None
    settings: types.MappingProxyType
    written_as: str | None = None  # images: the whole text as a folder, when neither it nor `path` exists

    def __new__(cls, kind: str, path: str | None = None, settings: dict | None = None, text: str | None = None):
        if kind == "images":
            settings = {key: check_setting(key, settings[key]) for key in DEFAULTS}
            text = IMAGES_PREFIX + path + "".join(f",{key}={settings[key]!r}" for key in DEFAULTS)
        elif kind == "npz":
            text = text or NPZ_PREFIX + path
        else:
            text = kind
        self = super().__new__(cls, text)
        self.kind, self.path, self.settings = kind, path, types.MappingProxyType(dict(settings or {}))
        return self

    def __reduce__(self):  # copies and pickles (dataclasses.asdict deep-copies a RunConfig) keep the type
        return (DataSpec, (self.kind, self.path, dict(self.settings), str(self)))

    @property
    def flag(self) -> str:
        """How a message names it: --dataset=images:/abs/DIR (the settings are their own flags)."""
        return f"--dataset={IMAGES_PREFIX}{self.path}" if self.kind == "images" else f"--dataset={self}"

    @property
    def is_users(self) -> bool:
        """Data of the user's own (a file or folder), rather than a registered dataset."""
        return self.kind in ("npz", "images")

    def digest(self) -> str:
        """SHA-256 (hex) of the data's content: an npz file's bytes; a folder's image files, each by its name
        and bytes. A path with nothing there: the path itself (reading it fails, and says so)."""
        if not self.is_users:
            return hashlib.sha256(str(self).encode()).hexdigest()
        return content_digest(self.path, self.kind == "images")

    def slug(self) -> str:
        """The part of a result file's name that says which data it scored: a registered dataset's name; for
        npz:PATH npz-<file name>-<12 hex digits of `digest`>; for images:DIR
        images-<folder name>-<size>px-crop<crop>-test<N>-<12 hex digits of `digest`>. Results on other data
        (another file of one name, a file or folder changed, other settings) never share a name."""
        if not self.is_users:
            return _safe(str(self), "-")
        stem = os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0] or "data"
        parts = [self.kind, stem]
        if self.kind == "images":
            s = self.settings
            parts += [f"{s['image_size']}px", f"crop{s['image_crop']!r}", f"test{s['test_images']}"]
        return "-".join(_safe(part) for part in parts) + "-" + self.digest()[:12]


def _safe(text: str, keep: str = "") -> str:
    return re.sub(rf"[^A-Za-z0-9_.{re.escape(keep)}]+", "_", text)


def parse(text, settings: dict | None = None, defaults: dict | None = None) -> DataSpec:
    """The DataSpec of --dataset `text` (a DataSpec is returned as it is, unless `settings` are given).
    images: `settings` are the image flags given (a value contradicting the text is a DataError),
    `defaults` fill what neither gives (else DEFAULTS). Unknown names and malformed
    settings are a DataError naming the flag."""
    if isinstance(text, DataSpec) and not settings and not defaults:
        return text
    if not isinstance(text, str) or not text:
        raise DataError(f"--dataset={text!r} must be a dataset name: {', '.join(REGISTERED)}, npz:PATH or images:DIR.")
    text = str(text)
    if text in REGISTERED:
        return DataSpec(text)
    if text.startswith(NPZ_PREFIX):
        if not text[len(NPZ_PREFIX):]:
            raise DataError("--dataset=npz: names no file: use --dataset=npz:PATH, PATH an .npz file.")
        return DataSpec("npz", os.path.expanduser(text[len(NPZ_PREFIX):]), text=text)
    if not text.startswith(IMAGES_PREFIX):
        raise unknown(text)
    folder, written = _images_folder(text)
    for key, value in (settings or {}).items():
        value = check_setting(key, value)
        if key in written and written[key] != value:
            raise DataError(f"--{key}={value} contradicts --dataset={text}, which says {key}={written[key]}; "
                            "give the setting once.")
        written[key] = value
    merged = {**DEFAULTS, **{k: check_setting(k, v) for k, v in (defaults or {}).items()},
              **written}
    dataset = DataSpec("images", os.path.abspath(os.path.expanduser(folder)), merged)
    if len(folder) < len(text) - len(IMAGES_PREFIX) and not os.path.exists(dataset.path):
        # Neither the whole text nor the folder before its settings exists: a "not found" names both.
        dataset.written_as = os.path.abspath(os.path.expanduser(text[len(IMAGES_PREFIX):]))
    return dataset


def _images_folder(text: str) -> tuple[str, dict]:
    """(folder as written, {setting: value} written in the text) of an images: text."""
    rest = text[len(IMAGES_PREFIX):]
    canonical = _CANONICAL_TAIL.search(rest)
    if canonical and rest[:canonical.start()]:  # config.json's form: read as written, not against the disk
        return rest[:canonical.start()], {k: parse_setting(k, v) for k, v in canonical.groupdict().items()}
    folder, written = parse_name(text)
    if written:
        whole = os.path.expanduser(rest)
        if os.path.isdir(whole) and os.path.isdir(os.path.expanduser(folder)):
            raise DataError(f"--dataset={text} is ambiguous: both {rest} and {folder} are folders, and the text may "
                            f"name the first or the second with {', '.join(f'{k}={v}' for k, v in written.items())}. "
                            "Rename the folder whose name holds ',key=value', and give settings as flags "
                            "(--image_size, --image_crop, --test_images).")
        if os.path.isdir(whole):
            return rest, {}
    return folder, written


def content_digest(path: str, images_only: bool = False) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (the image files directly in it if `images_only`,
    else every file under it), each by its relative name and bytes; memoised while the listing (names,
    sizes, modification times) is unchanged. Of the path itself when nothing is there."""
    real = os.path.realpath(os.path.expanduser(path))
    if os.path.isfile(real):
        st = os.stat(real)
        return _file_digest(real, st.st_size, st.st_mtime_ns)
    if not os.path.isdir(real):
        return hashlib.sha256(real.encode()).hexdigest()
    return _folder_digest(real, _listing(real, images_only))


def _listing(folder: str, images_only: bool) -> tuple:
    files = []
    if images_only:
        walk = [(folder, sorted(os.listdir(folder)))]
    else:
        walk = []
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            walk.append((root, sorted(names)))
    for root, names in walk:
        for name in names:
            path = os.path.join(root, name)
            if images_only and not name.lower().endswith(EXTENSIONS):
                continue
            try:
                st = os.stat(path)
            except OSError:  # a link loop or to nothing: not data (the folder's reader names it)
                continue
            if os.path.isfile(path):
                files.append((os.path.relpath(path, folder), st.st_size, st.st_mtime_ns))
    return tuple(files)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # only the memo's key
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@functools.lru_cache(maxsize=16)
def _folder_digest(folder: str, listing: tuple) -> str:
    sha = hashlib.sha256()
    for name, size, mtime_ns in listing:
        try:
            digest = _file_digest(os.path.join(folder, name), size, mtime_ns)
        except OSError:  # vanished or unreadable since the listing: its name and size stand in
            digest = f"unreadable {size}"
        sha.update(f"{name}\0{digest}\n".encode())
    return sha.hexdigest()
