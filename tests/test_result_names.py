"""Issue 22, class 3: results that overwrote each other. A result's name identifies its data
(evaluate.result_path, workdir.dataset_slug), so a result is never replaced by one for other data;
the names of results on the registered datasets are today's."""

import json
import os
import shutil

import numpy as np
import pytest

from hiabp_tf import evaluate
from hiabp_tf import workdir as workdir_lib
from hiabp_tf.data import input_pipeline

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
