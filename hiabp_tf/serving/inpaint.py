r"""Inpaints your own images with a trained model: fills their missing pixels.

    python -m hiabp_tf.inpaint --workdir=runs/quick/mnist5k_hiabp_l3 --images='digits/*.png' \
        --mask=region:20 --out=inpainted [--seed=0 --langevin_steps=15]

--images: PNG or JPEG files, comma-separated paths, globs or folders (a folder means its *.png,
  *.jpg, *.jpeg). Each is converted to the model's image shape: RGB <-> grayscale (an alpha channel
  is dropped) and resized (bilinear, antialiased; the aspect ratio is not kept), with a WARNING
  naming the file and its original shape whenever it is.
--mask: what is missing, either
  * an image file, one mask for every image: light pixels (> 0.5 after conversion to grayscale,
    e.g. white) are observed, dark ones (black) are missing; resized with nearest neighbour. Use
    it for images that are already damaged: their missing pixels are unknown;
  * a synthetic occlusion of hiabp_tf.data.masks, drawn per image from --seed (image i gets the fixed
    mask of example i): pepper, pepper:F (fraction F of the pixels missing), region10, region20,
    region:N (an N x N square on a 64x64 image, scaled to the image side). The inputs are then the
    complete originals, so the recovery error on the missing pixels is reported.
Missing pixels are set to 0, the encoder initialises the latents from the occluded image and
--langevin_steps Langevin steps (default: the run's T) run on the energy of the observed pixels
alone (`TrainedModel.inpaint`); the recovered image keeps the observed pixels of the input and takes
the missing ones from the model's reconstruction.

Writes, in --out: <name>_occluded.png (the converted input, missing pixels shown mid-grey),
<name>_recovered.png (at the model's resolution) per image, and before_after.png, a grid whose
rows are original, occluded and recovered (up to 16 images per row band, the first 64 images). The
last line of stdout is a JSON summary: the files, each with its outputs, original shape, conversion and (synthetic
masks) recovery_mae / recovery_mse on its missing pixels, and the overall recovery error.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.checks import limits
from hiabp_tf.data import images as images_lib
from hiabp_tf.data import masks
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import api

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
GRID_FILE = "before_after.png"
GRID_COLUMNS = 16
GRID_IMAGES_MAX = 64  # before_after.png shows the first 64 images (4 bands): a grid of all could exhaust memory
GRID_SCALE = 3  # each pixel of before_after.png is a GRID_SCALE x GRID_SCALE block
MISSING_GREY = 0.5  # how missing pixels are drawn in the *_occluded.png files and the grid
BATCH_SIZE = 100


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_string("workdir", None, "A workdir written by hiabp_tf.train (its latest checkpoint is used).")
    flags.DEFINE_string("images", None, "PNG/JPEG files: comma-separated paths, globs (quote them) or folders.")
    flags.DEFINE_string("mask", None, "A mask image (light = observed, dark = missing) or a synthetic "
                        "occlusion: pepper, pepper:F, region10, region20, region:N.")
    flags.DEFINE_string("out", None, "Folder for the recovered images and before_after.png (created).")
    config_lib.define_seed_flag("the synthetic masks and of the inference noise")
    flags.DEFINE_integer("langevin_steps", None, "Langevin steps (default: the run's T; 0 = the encoder's mean).")
    flags.DEFINE_bool("overwrite", False, "Replace the files of an earlier inpainting in --out (refused otherwise).")


FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------------- input

def expand_paths(spec: str) -> list[str]:
    """The files named by --images (comma-separated paths, globs or folders), in order, without repeats."""
    items = [item.strip() for item in str(spec or "").split(",") if item.strip()]
    if not items:
        raise errors.ConfigError("--images is required: PNG or JPEG files, as comma-separated paths, globs "
                                     "or folders.")
    paths, missing = [], []
    for item in items:
        item = os.path.expanduser(item)
        if os.path.isdir(item):
            found = sorted(os.path.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_EXTENSIONS))
        elif glob.has_magic(item):
            found = sorted(path for path in glob.glob(item, recursive=True) if os.path.isfile(path))
        else:
            found = [item] if os.path.isfile(item) else []
        if not found:
            missing.append(item)
        paths += found
    if missing:
        raise errors.ConfigError(f"--images: no image file matches {', '.join(repr(m) for m in missing)}; give "
                                     "existing PNG/JPEG files, globs that match some, or folders holding some.")
    unique = []
    for path in paths:
        if os.path.abspath(path) not in {os.path.abspath(p) for p in unique}:
            unique.append(path)
    return unique


def _decode(path: str, flag: str) -> np.ndarray:
    """(h, w, c) float32 in [0, 1], as stored in the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        image = tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False)
    except (OSError, tf.errors.OpError, ValueError) as e:
        reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
        reason = re.sub(r"\{\{[^}]*\}\}|\s*\[Op:\w+\]", "", reason).strip()  # TensorFlow's op decoration
        raise errors.ConfigError(f"{flag}: cannot read {path} as a PNG or JPEG image ({reason}).") from None
    return image.numpy()


def convert(image: np.ndarray, image_shape, method="bilinear") -> tuple[np.ndarray, list[str]]:
    """`image` (h, w, c) in [0, 1] converted to `image_shape` (H, W, C); returns it and what was done."""
    height, width, channels = image_shape
    done = []
    if image.shape[-1] in (2, 4):  # grey + alpha, RGBA
        image = image[..., :-1]
        done.append("alpha channel dropped")
    if image.shape[-1] == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image).numpy()
        done.append("RGB to grayscale")
    elif image.shape[-1] == 1 and channels == 3:
        image = np.repeat(image, 3, axis=-1)
        done.append("grayscale to RGB")
    if image.shape[:2] != (height, width):
        same_aspect = image.shape[0] * width == image.shape[1] * height
        image = tf.image.resize(image, (height, width), method=method, antialias=method == "bilinear").numpy()
        done.append(f"resized to {height}x{width}" + ("" if same_aspect else " (aspect ratio not kept)"))
    return np.clip(image.astype(np.float32), 0.0, 1.0), done


def _shape_text(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def read_image(path: str, image_shape) -> tuple[np.ndarray, tuple, list[str]]:
    """(image (H, W, C) in [0, 1], original shape, conversions) of one --images file."""
    raw = _decode(path, "--images")
    image, done = convert(raw, image_shape)
    if done:
        logging.warning("%s: image of shape %s converted to the model's %s (%s).", path, _shape_text(raw.shape),
                        _shape_text(image_shape), ", ".join(done))
    return image, tuple(int(s) for s in raw.shape), done


def read_mask_file(path: str, image_shape) -> np.ndarray:
    """The mask image at `path` as (H, W, 1): 1 = observed (light), 0 = missing (dark)."""
    raw = _decode(path, "--mask")
    if raw.shape[-1] in (2, 4):
        raw = raw[..., :-1]
    if raw.shape[-1] == 3:
        raw = tf.image.rgb_to_grayscale(raw).numpy()
    height, width, _ = image_shape
    if raw.shape[:2] != (height, width):
        logging.warning("--mask=%s: mask of shape %s resized to the model's %dx%d (nearest neighbour).",
                        path, _shape_text(raw.shape), height, width)
        raw = tf.image.resize(raw, (height, width), method="nearest").numpy()
    return (raw > 0.5).astype(np.float32)


def parse_mask_flag(mask: str):
    """("file", path) or ("spec", masks.MaskSpec) for --mask."""
    if not mask:
        raise errors.ConfigError("--mask is required: a mask image (light = observed, dark = missing) or "
                                     "pepper, pepper:F, region10, region20, region:N.")
    if os.path.isfile(os.path.expanduser(mask)):
        return "file", os.path.expanduser(mask)
    if os.path.isdir(os.path.expanduser(mask)):
        raise errors.ConfigError(f"--mask={mask} is a folder; give one mask image file (light = observed, dark = "
                                 "missing, used for every image) or a synthetic occlusion: pepper, pepper:F, "
                                 "region10, region20, region:N.")
    try:
        return "spec", masks.parse_mask(mask)
    except ValueError as e:
        raise errors.ConfigError(f"{e}; or the path of an existing mask image (light = observed, "
                                     "dark = missing).") from None


# ---------------------------------------------------------------------------------- output

def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path: str, image: np.ndarray) -> None:
    """Writes one (H, W, C) image in [0, 1] as an 8-bit PNG, pixel for pixel; whole or not at all
    (a temporary file renamed into place: a full disk never leaves an earlier output cut short)."""
    tmp = f"{path}.tmp"
    try:
        tf.io.write_file(tmp, tf.io.encode_png(_to_uint8(image)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _show_missing(image, mask):
    return image * mask + MISSING_GREY * (1.0 - mask)


def before_after_grid(originals, occluded, recovered, columns=GRID_COLUMNS) -> np.ndarray:
    """Rows original / occluded / recovered, in bands of `columns` images (blank cells padded)."""
    n = len(originals)
    columns = max(1, min(columns, n))
    cells = []
    blank = np.ones_like(originals[0])
    for start in range(0, n, columns):
        for row in (originals, occluded, recovered):
            band = list(row[start:start + columns])
            cells += band + [blank] * (columns - len(band))
    grid = images_lib.grid(np.stack(cells), columns)
    return np.repeat(np.repeat(grid, GRID_SCALE, axis=0), GRID_SCALE, axis=1)


def _output_names(paths) -> list[str]:
    """One name per input, all different: its file name's stem, or for a repeated stem <stem>_2, _3, ...
    skipping every stem an input has (dirA/a.png, dirB/a.png and dirA/a_2.png give a, a_3 and a_2), so
    that no output is written over another's."""
    stems = [os.path.splitext(os.path.basename(path))[0] or "image" for path in paths]
    reserved, names = set(stems), []
    for stem in stems:
        name, count = stem, 1
        while name in names or (name != stem and name in reserved):
            count += 1
            name = f"{stem}_{count}"
        names.append(name)
    return names


def _finite_or_none(value):
    return None if value is None or not math.isfinite(value) else float(value)


# ------------------------------------------------------------------------------------ main

def inpaint_files(workdir: str, images: str, mask: str, out: str, seed: int = 0, langevin_steps=None,
                  batch_size: int = BATCH_SIZE, overwrite: bool = False) -> dict:
    """Inpaints the --images files with the model of `workdir`; writes to `out`; returns the summary. Files
    of an earlier inpainting in `out` are refused (a ConfigError naming them) unless `overwrite`."""
    if not out:
        raise errors.ConfigError("--out is required: the folder for the recovered images.")
    if workdir_lib.path_problem(out):  # said before the images are inferred, not after
        raise errors.ConfigError(f"--out={out} {workdir_lib.path_problem(out)}; give a folder for the recovered "
                                 "images.")
    if langevin_steps is not None:
        limits.check_langevin_steps(langevin_steps)
    limits.check_count(batch_size, "batch_size")
    seed = config_lib.check_seed(seed)
    paths = expand_paths(images)
    mask_kind, mask_value = parse_mask_flag(mask)
    outputs = [os.path.join(out, f"{name}{kind}.png") for name in _output_names(paths)
               for kind in ("_occluded", "_recovered")] + [os.path.join(out, GRID_FILE)]
    there = [path for path in outputs if os.path.lexists(path)]
    if there and not overwrite:  # said before the images are inferred, and nothing is replaced
        raise errors.ConfigError(
            f"--out={out} already holds {len(there)} of the files this inpainting writes ({', '.join(there[:3])}"
            f"{' and more' if len(there) > 3 else ''}), from an earlier inpainting; give another --out, or pass "
            "--overwrite to replace them.")
    model = api.load(workdir)
    if not model.has_encoder and langevin_steps == 0:
        raise errors.ConfigError(f"--langevin_steps=0 is not possible for method {model.method!r}, which has no "
                                     "encoder (inference starts from N(0, I) noise).")
    shape = model.image_shape
    if len(paths) > limits.max_samples(shape):  # all of them are held in memory at the model's resolution
        raise errors.ConfigError(
            f"--images names {len(paths)} files, more than the {limits.max_samples(shape)} of one run (2 GiB of "
            f"{'x'.join(str(d) for d in shape)} images); inpaint them in several runs.")
    originals, entries = [], []
    for path in paths:
        image, original_shape, done = read_image(path, shape)
        originals.append(image)
        entries.append({"input": path, "original_shape": list(original_shape), "converted": done})
    originals = np.stack(originals)
    n = len(originals)
    if mask_kind == "file":
        mask_array = np.broadcast_to(read_mask_file(mask_value, shape), (n, *shape[:2], 1))
        mask_name = mask_value
    else:
        try:
            masks.check_fits(mask_value, shape, whose="the model's")
        except ValueError as e:
            raise errors.ConfigError(str(e)) from None
        mask_array = masks.example_masks(mask_value, shape, tf.range(n), seed).numpy()
        mask_name = mask_value.name
    mask_array = np.ascontiguousarray(np.broadcast_to(mask_array[..., :1], (n, *shape)), dtype=np.float32)

    recovered = np.empty_like(originals)
    for number, start in enumerate(range(0, n, batch_size)):
        batch = slice(start, start + batch_size)
        recovered[batch] = model.inpaint(originals[batch], mask_array[batch], langevin_steps=langevin_steps,
                                         seed=(seed, number + 1))
    occluded_view = _show_missing(originals, mask_array)

    try:
        os.makedirs(out, exist_ok=True)
        for entry, name, occluded, image in zip(entries, _output_names(paths), occluded_view, recovered):
            entry["occluded"] = os.path.join(out, f"{name}_occluded.png")
            entry["recovered"] = os.path.join(out, f"{name}_recovered.png")
            write_png(entry["occluded"], occluded)
            write_png(entry["recovered"], image)
        grid_path = os.path.join(out, GRID_FILE)
        shown = min(n, GRID_IMAGES_MAX)
        if shown < n:
            logging.warning("%s shows the first %d of the %d images (each has its own files).", GRID_FILE, shown, n)
        write_png(grid_path, before_after_grid(originals[:shown], occluded_view[:shown], recovered[:shown]))
    except (OSError, tf.errors.OpError) as e:
        reason = workdir_lib.path_problem(out) or getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise errors.ConfigError(f"--out={out}: cannot write the images there ({reason}); choose a folder "
                                     "you can write to.") from None

    known = mask_kind == "spec"  # synthetic masks: the inputs are the complete originals
    for i, entry in enumerate(entries):
        recovery = masks.recovery_errors(originals[i:i + 1], recovered[i:i + 1], mask_array[i:i + 1])
        entry["missing_fraction"] = _finite_or_none(recovery["occluded_fraction"])
        entry["recovery_mae"] = _finite_or_none(recovery["recovery_mae"]) if known else None
        entry["recovery_mse"] = _finite_or_none(recovery["recovery_mse"]) if known else None
    overall = masks.recovery_errors(originals, recovered, mask_array)
    return {
        "workdir": workdir,
        "method": model.method,
        "step": model.step,
        "mask": mask_name,
        "mask_kind": mask_kind,
        "seed": seed,
        "langevin_steps": model.langevin_steps if langevin_steps is None else langevin_steps,
        "out": out,
        "grid": grid_path,
        "grid_images": shown,
        "num_images": n,
        "originals_known": known,
        "recovery_mae": _finite_or_none(overall["recovery_mae"]) if known else None,
        "recovery_mse": _finite_or_none(overall["recovery_mse"]) if known else None,
        "files": entries,
    }


def main():
    for name in ("workdir", "images", "mask", "out"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required (see `python -m hiabp_tf.inpaint --help`).")
    summary = inpaint_files(FLAGS.workdir, FLAGS.images, FLAGS.mask, FLAGS.out, FLAGS.seed, FLAGS.langevin_steps,
                            overwrite=FLAGS.overwrite)
    logging.info("Wrote %d recovered images and %s", summary["num_images"], summary["grid"])
    print(json.dumps(summary, sort_keys=True), flush=True)
