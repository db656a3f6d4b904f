"""Issue 38, class 6: checks that came too late or said too little. --fid's flags and files are checked
before the evaluation; a folder's unreadable entries are skipped and named; a folder too small, an
undecodable image, a text file named .npz, a folder named .npz and a --mask folder each say what they are."""

import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import evaluate
from hiabp_tf.checks import errors
from hiabp_tf.data import image_folder
from hiabp_tf.data import input_pipeline
from hiabp_tf.evaluation import metrics
from hiabp_tf.serving import inpaint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "workdir_v1")


pytestmark = pytest.mark.usefixtures("isolated_image_cache")  # (conftest.py)


@pytest.mark.parametrize("flags,error,match", [
    (dict(fid="classifier"), errors.ConfigError, "--fid=classifier needs --fid_classifier"),
    (dict(fid="inception"), errors.ConfigError, "--fid=inception needs --inception_weights"),
    (dict(fid="inception", inception_weights="/no/such/inception.h5"), errors.FIDError,
     "--inception_weights=/no/such/inception.h5: no such file"),
    (dict(fid="classifier", fid_classifier="clf.h5"), errors.FIDError, "must end in .keras"),
])
def test_fid_flags_are_checked_before_the_evaluation(tmp_path, monkeypatch, flags, error, match):
    """The issue: --fid=classifier without --fid_classifier failed only after the whole evaluation; of my
    own: --fid=inception without or with a missing weights file, a classifier path of the wrong kind."""
    workdir = str(tmp_path / "run")
    shutil.copytree(FIXTURE, workdir)
    monkeypatch.setattr(metrics, "reconstruction_mse", lambda *a, **k: pytest.fail("scored before the check"))
    with pytest.raises(error, match=match):
        evaluate.evaluate(workdir, **flags)


def _images(folder, n):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        tf.io.write_file(os.path.join(folder, f"img{i}.png"), tf.io.encode_png(np.full((30, 30, 1), 9 * i, np.uint8)))
    return folder


def test_an_entry_that_cannot_be_followed_is_skipped_and_named(tmp_path, caplog):
    """The issue's symbolic link loop failed the whole folder without naming it; of my own: a link to
    nothing, and a folder named like an image (not read, as subfolders are not)."""
    folder = _images(str(tmp_path / "faces"), 4)
    os.symlink("loop.png", os.path.join(folder, "loop.png"))
    os.symlink("/no/such/file.png", os.path.join(folder, "gone.png"))
    os.mkdir(os.path.join(folder, "sub.png"))
    with caplog.at_level(logging.WARNING):
        x_train, x_test = image_folder.load(f"images:{folder},image_size=28,test_images=1")
    assert (len(x_train), len(x_test)) == (3, 1)
    assert "loop.png (a symbolic link loop)" in caplog.text and "gone.png (a symbolic link to /no/such" in caplog.text
    assert "sub.png" not in caplog.text


@pytest.mark.parametrize("good,broken", [(1, 0), (1, 2), (0, 0)])
def test_a_folder_too_small_to_split_says_so(tmp_path, good, broken):
    """The issue's one-image folder ("Choose --test_images between 1 and 0"); of my own: one image beside
    undecodable files, and a folder of no image."""
    folder = _images(str(tmp_path / "faces"), good)
    for i in range(broken):
        with open(os.path.join(folder, f"broken{i}.png"), "w") as f:
            f.write("not an image")
    match = "has 1 decodable image; a dataset needs at least 2" if good else "holds no JPEG or PNG file|can be decoded"
    with pytest.raises(errors.DataError, match=match):
        image_folder.load(f"images:{folder},image_size=28,test_images=1")


def test_an_undecodable_image_says_why(tmp_path, caplog):
    """The issue: the reason read "Graph execution error:"."""
    folder = _images(str(tmp_path / "faces"), 3)
    with open(os.path.join(folder, "broken.png"), "w") as f:
        f.write("not an image")
    with open(os.path.join(folder, "cut.png"), "wb") as f:
        f.write(open(os.path.join(folder, "img0.png"), "rb").read()[:40])
    with caplog.at_level(logging.WARNING):
        image_folder.load(f"images:{folder},image_size=28,test_images=1")
    warning = [r.getMessage() for r in caplog.records if "skipped 2 of 5" in r.getMessage()][0]
    assert "Graph execution error" not in warning and "broken.png (" in warning and "cut.png (" in warning
    assert "broken.png ()" not in warning


@pytest.mark.parametrize("content,match", [
    (b"x_train,x_test\n1,2\n", r"is not an \.npz archive \(np\.savez writes a zip file"),
    (b"", "is empty"),
])
def test_a_file_that_is_no_npz_says_so(tmp_path, content, match):
    """The issue's text file named .npz got numpy's allow_pickle advice; of my own: an empty file, and
    the data dir's mnist.npz."""
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(errors.DataError, match=match) as error:
        input_pipeline.get_dataset(f"npz:{path}", "train")
    assert "allow_pickle" not in str(error.value)
    (tmp_path / "mnist.npz").write_bytes(content)
    input_pipeline.mnist_npz_arrays.cache_clear()
    with pytest.raises(errors.DataError, match=match):
        input_pipeline.get_dataset("mnist", "train", data_dir=str(tmp_path))


def test_a_folder_named_npz_and_a_mask_folder_say_they_are_folders(tmp_path):
    """The issue: a folder named x.npz was "not found"; --mask given a folder did not say it was one."""
    (tmp_path / "x.npz").mkdir()
    with pytest.raises(errors.DataError, match=r"x\.npz' is a folder, not an \.npz file .*--dataset=images:"):
        input_pipeline.get_dataset(f"npz:{tmp_path / 'x.npz'}", "train")
    with pytest.raises(errors.ConfigError, match=r"--mask=.* is a folder; give one mask image file"):
        inpaint.parse_mask_flag(str(tmp_path))
