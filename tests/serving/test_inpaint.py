"""Inpainting of a user's own PNG/JPEG files (hiabp_tf/inpaint.py), end to end on the command line and
through `inpaint_files`. One tiny HiABP (L = 2) trained for 60 steps on mnist_5k is shared by the module."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.data import input_pipeline
from hiabp_tf.data import masks
from hiabp_tf.serving import inpaint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def workdir(tiny_trained_workdir):
    """The session's tiny trained HiABP (tests/conftest.py)."""
    return tiny_trained_workdir


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two 28x28 grayscale digits (PNG), one 40x40 RGB digit (JPEG), a mask PNG and a broken file."""
    folder = tmp_path_factory.mktemp("own_images")
    _, _, x_test, _ = input_pipeline.mnist_5k_arrays()
    digits = x_test[[5, 505, 905]]
    (folder / "digits").mkdir()
    for i in (0, 1):
        tf.io.write_file(str(folder / "digits" / f"digit{i}.png"), tf.io.encode_png(digits[i]))
    big = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(digits[2:3], tf.float32)), (40, 40))[0]
    tf.io.write_file(str(folder / "big_rgb.jpg"), tf.io.encode_jpeg(tf.cast(tf.round(big), tf.uint8), quality=95))
    mask = np.full((28, 28, 1), 255, np.uint8)
    mask[10:18, 6:22] = 0  # black = missing
    tf.io.write_file(str(folder / "mask.png"), tf.io.encode_png(mask))
    (folder / "broken.png").write_text("not an image")
    return folder, digits


def read_png(path):
    return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


@pytest.mark.slow
def test_command_line_end_to_end(workdir, files, tmp_path):
    """A glob and a path, one of them a 40x40 RGB JPEG (converted with a warning naming it); writes the
    occluded and recovered PNGs and the before/after grid; the JSON summary is the last stdout line;
    observed pixels of the recovered PNGs are those of the input."""
    folder, digits = files
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "hiabp_tf.inpaint", f"--workdir={workdir}",
         f"--images={folder}/digits/*.png,{folder}/big_rgb.jpg", "--mask=region:20", f"--out={out}", "--seed=1"],
        cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "big_rgb.jpg: image of shape 40x40x3 converted to the model's 28x28x1" in result.stderr
    assert "digit0.png: image" not in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["num_images"] == 3 and summary["mask"] == "region20" and summary["langevin_steps"] == 10
    assert [os.path.basename(f["input"]) for f in summary["files"]] == ["digit0.png", "digit1.png", "big_rgb.jpg"]
    big = summary["files"][2]
    assert big["original_shape"] == [40, 40, 3] and big["converted"] == ["RGB to grayscale", "resized to 28x28"]
    assert summary["files"][0]["converted"] == []
    assert 0 < summary["recovery_mae"] < 1 and summary["originals_known"]
    for entry in summary["files"]:
        assert read_png(entry["recovered"]).shape == (28, 28, 1)
        assert 0.0 < entry["missing_fraction"] < 0.2  # a 9x9 square of 28x28
    assert sorted(os.listdir(out)) == sorted(["before_after.png"] + [
        f"{name}_{kind}.png" for name in ("digit0", "digit1", "big_rgb") for kind in ("occluded", "recovered")])
    grid = read_png(summary["grid"])
    assert grid.shape[0] > grid.shape[1] / 2  # three rows of three images
    # Observed pixels come back exactly (8-bit input, 8-bit output); missing ones are grey in *_occluded.
    mask = masks.example_masks("region20", (28, 28, 1), tf.range(3), 1).numpy()  # image i: example i's mask
    for i, name in enumerate(("digit0", "digit1")):
        missing = mask[i] == 0
        occluded, recovered = read_png(out / f"{name}_occluded.png"), read_png(out / f"{name}_recovered.png")
        assert missing.sum() == 9 * 9 and (occluded[missing] == 128).all()
        np.testing.assert_array_equal(recovered[~missing], digits[i][~missing])
        np.testing.assert_array_equal(occluded[~missing], digits[i][~missing])


@pytest.mark.slow
def test_mask_file_marks_black_pixels_missing(workdir, files, tmp_path):
    """--mask=PATH: black pixels are missing, the same for every image; no recovery error is
    reported (the inputs' missing pixels are unknown)."""
    folder, digits = files
    summary = inpaint.inpaint_files(workdir, str(folder / "digits"), str(folder / "mask.png"), str(tmp_path),
                                    langevin_steps=3)
    assert summary["mask_kind"] == "file" and summary["recovery_mae"] is None and summary["num_images"] == 2
    for entry, digit in zip(summary["files"], digits):
        assert entry["missing_fraction"] == pytest.approx(8 * 16 / 28**2)
        recovered = read_png(entry["recovered"])
        observed = np.ones((28, 28, 1), bool)
        observed[10:18, 6:22] = False
        np.testing.assert_array_equal(recovered[observed], digit[observed])
        assert (read_png(entry["occluded"])[~observed] == 128).all()


@pytest.mark.slow
def test_input_errors_name_the_flag(workdir, files, tmp_path):
    folder, _ = files
    with pytest.raises(errors.ConfigError, match="--images: no image file matches"):
        inpaint.inpaint_files(workdir, str(folder / "nothing*.png"), "pepper", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="--images: cannot read .*broken.png as a PNG or JPEG"):
        inpaint.inpaint_files(workdir, str(folder / "broken.png"), "pepper", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="--mask must be one of .*got 'blob'"):
        inpaint.inpaint_files(workdir, str(folder / "digits"), "blob", str(tmp_path))
    with pytest.raises(errors.ConfigError,
                       match="--mask=region:70: a 31x31 region .* does not fit the model.s 28x28 images"):
        inpaint.inpaint_files(workdir, str(folder / "digits"), "region:70", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="--mask: cannot read"):
        inpaint.inpaint_files(workdir, str(folder / "digits"), str(folder / "broken.png"), str(tmp_path))
    with pytest.raises(errors.WorkdirError, match="--workdir"):
        inpaint.inpaint_files(str(tmp_path / "none"), str(folder / "digits"), "pepper", str(tmp_path))


@pytest.mark.slow
def test_every_seed_of_the_documented_range_and_no_other(workdir, files, tmp_path):
    """--seed takes 0..2**31 - 1 (the top one draws other masks than 0); outside, a ConfigError."""
    folder, _ = files
    images = str(folder / "digits")
    low = inpaint.inpaint_files(workdir, images, "pepper", str(tmp_path / "low"), seed=0)
    top = inpaint.inpaint_files(workdir, images, "pepper", str(tmp_path / "top"), seed=config_lib.SEED_MAX)
    assert top["seed"] == 2**31 - 1 and top["num_images"] == low["num_images"] == 2
    assert not np.array_equal(read_png(low["files"][0]["occluded"]), read_png(top["files"][0]["occluded"]))
    for bad in (-1, 2**31):
        with pytest.raises(errors.ConfigError, match=rf"--seed={bad} must be an integer in 0\.\.2147483647"):
            inpaint.inpaint_files(workdir, images, "pepper", str(tmp_path / "bad"), seed=bad)
    assert not os.path.exists(tmp_path / "bad")


@pytest.mark.slow
def test_command_line_bad_mask_exits_2_with_one_line(workdir, files, tmp_path):
    folder, _ = files
    result = subprocess.run(
        [sys.executable, "-m", "hiabp_tf.inpaint", f"--workdir={workdir}", f"--images={folder}/digits",
         "--mask=pepper:2", f"--out={tmp_path}"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2
    assert "error: --mask must be one of" in result.stderr and "Traceback" not in result.stderr


def test_conversions():
    """RGB -> grayscale, grayscale -> RGB, alpha dropped, resize; each one reported."""
    rgba = np.random.default_rng(0).uniform(size=(30, 40, 4)).astype(np.float32)
    image, done = inpaint.convert(rgba, (28, 28, 1))
    assert image.shape == (28, 28, 1) and 0.0 <= image.min() and image.max() <= 1.0
    assert done == ["alpha channel dropped", "RGB to grayscale", "resized to 28x28 (aspect ratio not kept)"]
    grey = rgba[:28, :28, :1]
    image, done = inpaint.convert(grey, (32, 32, 3))
    assert image.shape == (32, 32, 3) and done == ["grayscale to RGB", "resized to 32x32"]
    image, done = inpaint.convert(grey, (28, 28, 1))
    assert done == [] and np.array_equal(image, grey)
