"""Issue 22, class 3: results that overwrote each other. A result's name identifies its data
(evaluate.result_path, workdir.dataset_slug), so a result is never replaced by one for other data;
the names of results on the registered datasets are today's."""

import json
import os
import shutil

import numpy as np
import pytest

from hiabp_tf import evaluate
from hiabp_tf.data import input_pipeline
from hiabp_tf.runtime import workdir as workdir_lib

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _npz(path, n_test, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    x_train, _, x_test, _ = input_pipeline.mnist_5k_arrays()
    np.savez(path, x_train=x_train[:10, ..., 0], x_test=np.maximum(x_test[:n_test, ..., 0], value).astype(np.uint8))
    return f"npz:{path}"


def test_registered_datasets_keep_todays_names():
    """What report.py and every reader of runs/ look for: unchanged."""
    assert evaluate.result_path("w", "mnist_5k", "test") == os.path.join("w", "eval_mnist_5k_test.json")
    assert evaluate.result_path("w", "mnist", "train", "region20", 30) == os.path.join(
        "w", "eval_mnist_train_mask-region20_T30.json")
    assert [workdir_lib.dataset_slug(d) for d in ("celeb_a", "svhn_cropped")] == ["celeb_a", "svhn_cropped"]


def test_a_file_of_the_users_is_named_by_its_content(tmp_path, monkeypatch):
    """The issue's npz:a/gray28.npz and npz:b/gray28.npz get two names; of my own: a file rewritten
    with other data gets a new one, a copy (or another spelling of its path) the same one, a folder
    and a missing file a name too."""
    a, b = _npz(str(tmp_path / "a" / "gray28.npz"), 5), _npz(str(tmp_path / "b" / "gray28.npz"), 5, value=9)
    name_a, name_b = (evaluate.result_path("w", d, "test") for d in (a, b))
    assert name_a != name_b and os.path.basename(name_a).startswith("eval_npz-gray28-")
    assert os.path.basename(name_a).endswith("_test.json") and len(os.path.basename(name_a)) == len(
        "eval_npz-gray28-0123456789ab_test.json")
    shutil.copy(tmp_path / "a" / "gray28.npz", tmp_path / "copy.npz")
    assert workdir_lib.dataset_slug(f"npz:{tmp_path / 'copy.npz'}").split("-")[-1] == \
        workdir_lib.dataset_slug(a).split("-")[-1]
    monkeypatch.chdir(tmp_path)
    assert evaluate.result_path("w", "npz:a/../a/gray28.npz", "test") == name_a
    os.utime(tmp_path / "a" / "gray28.npz", ns=(1, 1))  # the same bytes, touched: the same name
    assert evaluate.result_path("w", a, "test") == name_a
    _npz(str(tmp_path / "a" / "gray28.npz"), 6)  # rewritten with other data
    assert evaluate.result_path("w", a, "test") != name_a
    assert workdir_lib.dataset_slug(f"npz:{tmp_path / 'a'}").startswith("npz-a-")
    assert workdir_lib.dataset_slug("npz:/no/such/x.npz").startswith("npz-x-")


@pytest.mark.slow
def test_results_on_two_files_of_one_name_are_both_kept(tmp_path):
    """The issue's example: one workdir evaluated on npz:a/gray28.npz, then npz:b/gray28.npz; the
    first result is still there, byte for byte, and each file holds its own data's score."""
    workdir = str(tmp_path / "run")
    shutil.copytree(os.path.join(FIXTURES, "workdir_v1"), workdir)
    a, b = _npz(str(tmp_path / "a" / "gray28.npz"), 7), _npz(str(tmp_path / "b" / "gray28.npz"), 4)
    first = evaluate.evaluate(workdir, dataset=a)
    path_a = evaluate.result_path(workdir, a, "test")
    with open(path_a, "rb") as f:
        written = f.read()
    second = evaluate.evaluate(workdir, dataset=b)
    with open(path_a, "rb") as f:
        assert f.read() == written
    with open(evaluate.result_path(workdir, b, "test")) as f:
        assert json.load(f) == second
    assert (first["num_examples"], second["num_examples"]) == (7, 4)
    assert sorted(n for n in os.listdir(workdir) if n.startswith("eval_npz")) == sorted(
        os.path.basename(evaluate.result_path(workdir, d, "test")) for d in (a, b))


# ------------------------------------------------------------------ issue 38, class 1: names by their data


def _images(folder, n=6, value=0):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        tf.io.write_file(os.path.join(folder, f"img{i}.png"),
                         tf.io.encode_png(np.full((30, 30, 1), 20 * i + value, np.uint8)))
    return folder


def test_a_folder_is_named_by_its_content_and_every_setting(tmp_path, monkeypatch):
    """The issue's example: five images of a folder changed give another name (the hash was of the name
    string); the settings are whole (the crop was cut at its decimal point). Of my own: the same images
    touched or copied elsewhere keep the name; a file that is not an image does not change it; other
    crops and test splits give other names."""
    folder = _images(str(tmp_path / "faces"))
    name = "images:" + folder + ",image_size=28,image_crop=0.786517,test_images=2"
    first = evaluate.result_path("w", name, "test")
    assert os.path.basename(first).startswith("eval_images-faces-28px-crop0.786517-test2-")
    _images(folder, n=5, value=1)  # five images rewritten with other pixels
    assert evaluate.result_path("w", name, "test") != first
    _images(folder, n=5)  # back as they were, with new modification times
    assert evaluate.result_path("w", name, "test") == first
    shutil.copytree(folder, tmp_path / "copy")
    assert evaluate.result_path("w", name.replace(folder, str(tmp_path / "copy")), "test").split("-")[-1] == \
        first.split("-")[-1]
    (tmp_path / "faces" / "notes.txt").write_text("not an image")
    assert evaluate.result_path("w", name, "test") == first
    assert len({evaluate.result_path("w", name.replace(a, b), "test") for a, b in [
        ("x", "x"), ("0.786517", "0.786518"), ("0.786517", "1.0"), ("test_images=2", "test_images=3")]}) == 4


def test_results_of_earlier_versions_are_still_found(tmp_path):
    """The committed records' eval_images-celeba_image_size_32_image_crop_0-<hash>_test.json: read where no
    result of today's name is there, never written; today's name wins once it exists."""
    name = "images:/no/such/celeba,image_size=32,image_crop=0.786517,test_images=1000"
    legacy = tmp_path / f"eval_{workdir_lib.legacy_dataset_slug(name)}_test_mask-pepper.json"
    assert legacy.name.startswith("eval_images-celeba_image_size_32_image_crop_0-")
    legacy.write_text("{}")
    assert evaluate.result_path(str(tmp_path), name, "test", "pepper") == str(legacy)
    assert evaluate.result_path(str(tmp_path), name, "test") != str(legacy)  # another mask: not that file
    today = tmp_path / f"eval_{workdir_lib.dataset_slug(name)}_test_mask-pepper.json"
    today.write_text("{}")
    assert evaluate.result_path(str(tmp_path), name, "test", "pepper") == str(today)
    record = os.path.join(os.path.dirname(FIXTURES), "..", "results", "cpu", "runs", "celeba_hiabp_l4")
    if os.path.isdir(record):  # the committed records keep being found
        config, _ = workdir_lib.load_config(record)
        assert os.path.isfile(evaluate.result_path(record, config.dataset, "test", "region20"))


@pytest.mark.slow
def test_changing_a_folder_keeps_the_first_result(tmp_path, monkeypatch):
    """The issue's example end to end: evaluate a workdir on a folder, change five images, evaluate again:
    both results are there, the first byte for byte."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    workdir = str(tmp_path / "run")
    shutil.copytree(os.path.join(FIXTURES, "workdir_v1"), workdir)
    folder = _images(str(tmp_path / "faces"), n=8)
    name = f"images:{folder},test_images=3"
    evaluate.evaluate(workdir, dataset=name)
    (first,) = [n for n in os.listdir(workdir) if n.startswith("eval_images")]
    with open(os.path.join(workdir, first), "rb") as f:
        written = f.read()
    _images(folder, n=5, value=3)
    evaluate.evaluate(workdir, dataset=name)
    names = sorted(n for n in os.listdir(workdir) if n.startswith("eval_images"))
    assert len(names) == 2 and first in names
    with open(os.path.join(workdir, first), "rb") as f:
        assert f.read() == written


def test_inpaint_outputs_never_share_a_name():
    """The issue's dirA/a.png, dirB/a.png, dirA/a_2.png (two landed on a_2_recovered.png), and of my own:
    three of one stem beside a_3, and stems differing only in their extension."""
    from hiabp_tf.serving import inpaint  # pylint: disable=import-outside-toplevel
    for paths in (["dirA/a.png", "dirB/a.png", "dirA/a_2.png"], ["x/a.png", "y/a.png", "z/a.png", "a_3.jpg"],
                  ["a.png", "a.jpg", "a.jpeg", "a_2.png", "a_2.jpg"]):
        names = inpaint._output_names(paths)
        assert len(set(names)) == len(paths), names
        assert names[0] == "a"
    assert inpaint._output_names(["dirA/a.png", "dirB/a.png", "dirA/a_2.png"]) == ["a", "a_3", "a_2"]


@pytest.mark.slow
def test_inpaint_refuses_to_replace_an_earlier_inpainting(tiny_trained_workdir, tmp_path):
    """Rerunning inpaint into the same --out replaced its outputs without a word; now it stops, naming
    them, before inferring anything, unless --overwrite; an --out holding other files is fine."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from hiabp_tf.checks import errors  # pylint: disable=import-outside-toplevel
    from hiabp_tf.serving import inpaint  # pylint: disable=import-outside-toplevel
    for sub in ("dirA", "dirB"):
        os.makedirs(tmp_path / sub)
    for path in ("dirA/a.png", "dirB/a.png", "dirA/a_2.png"):
        tf.io.write_file(str(tmp_path / path), tf.io.encode_png(np.full((28, 28, 1), 99, np.uint8)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    images = ",".join(str(tmp_path / p) for p in ("dirA/a.png", "dirB/a.png", "dirA/a_2.png"))
    summary = inpaint.inpaint_files(tiny_trained_workdir, images, "pepper", str(out), langevin_steps=1)
    recovered = [entry["recovered"] for entry in summary["files"]]
    assert len(set(recovered)) == 3 and all(os.path.isfile(p) for p in recovered)
    before = {p: open(p, "rb").read() for p in recovered}
    with pytest.raises(errors.ConfigError, match=r"--out=.* already holds 7 of the files .* --overwrite"):
        inpaint.inpaint_files(tiny_trained_workdir, images, "pepper", str(out), seed=5, langevin_steps=1)
    assert before == {p: open(p, "rb").read() for p in recovered}
    inpaint.inpaint_files(tiny_trained_workdir, images, "pepper", str(out), seed=5, langevin_steps=1, overwrite=True)
