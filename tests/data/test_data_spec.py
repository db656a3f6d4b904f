"""Issue 38, class 2: --dataset is parsed once into a typed value (hiabp_tf/data/spec.py: kind, path,
settings, content digest) that train, evaluate, the API, config.json and the result names use; the
texts config.json holds (old ones included) read as before."""

import copy
import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.data import image_folder
from hiabp_tf.data import input_pipeline
from hiabp_tf.data import spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


pytestmark = pytest.mark.usefixtures("isolated_image_cache")  # (conftest.py)


def _folder(path, n=4, value=0):
    os.makedirs(path)
    for i in range(n):
        image = np.full((30, 30, 1), 10 * i + value, np.uint8)
        tf.io.write_file(os.path.join(path, f"img{i}.png"), tf.io.encode_png(image))
    return path


def test_a_folder_whose_name_holds_a_setting_is_that_folder(tmp_path, monkeypatch):
    """The issue's folder `faces,test_images=5`: it is the folder (not faces plus a setting); were
    faces a folder too, the text is ambiguous and refused; were neither, the error names both."""
    monkeypatch.chdir(tmp_path)
    _folder("faces,test_images=5", n=4)
    dataset = spec.parse("images:faces,test_images=5")
    assert dataset.path == str(tmp_path / "faces,test_images=5") and dataset.settings["test_images"] == 1000
    x_train, x_test = image_folder.load(spec.parse("images:faces,test_images=5", {"test_images": 1}))
    assert (len(x_train), len(x_test)) == (3, 1)
    # The canonical text of that folder reads back as that folder (config.json).
    assert spec.parse(str(spec.parse("images:faces,test_images=5"))).path == dataset.path
    _folder("faces", n=2)
    with pytest.raises(errors.DataError, match="ambiguous: both faces,test_images=5 and faces are folders"):
        spec.parse("images:faces,test_images=5")
    with pytest.raises(errors.DataError, match=r"folder .*/nowhere not found, nor .*/nowhere,test_images=5"):
        input_pipeline.get_dataset("images:nowhere,test_images=5", "train")


def test_settings_after_an_existing_folder_are_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _folder("digits", n=4)
    dataset = spec.parse("images:digits,test_images=2,image_size=28")
    assert (dataset.kind, dataset.path) == ("images", str(tmp_path / "digits"))
    assert dict(dataset.settings) == {"image_size": 28, "image_crop": 1.0, "test_images": 2}
    assert str(dataset) == f"images:{tmp_path / 'digits'},image_size=28,image_crop=1.0,test_images=2"
    with pytest.raises(errors.DataError, match="--test_images=3 contradicts"):
        spec.parse("images:digits,test_images=2", {"test_images": 3})


@pytest.mark.parametrize("text,kind,settings", [
    ("mnist", "mnist", {}),
    ("mnist_5k", "mnist_5k", {}),
    ("images:/work/shared/data/celeba,image_size=32,image_crop=0.786517,test_images=1000", "images",
     {"image_size": 32, "image_crop": 0.786517, "test_images": 1000}),
    ("images:/no/such/place,image_size=64,image_crop=1.0,test_images=7", "images",
     {"image_size": 64, "image_crop": 1.0, "test_images": 7}),
    ("npz:held_out.npz", "npz", {}),
])
def test_the_texts_config_json_holds_read_as_before(text, kind, settings):
    """Old config.json strings (those under results/cpu/runs/ among them) give the same text back, on
    a machine without the folder, and a RunConfig written and read again keeps its typed dataset."""
    dataset = spec.parse(text)
    assert (str(dataset), dataset.kind, dict(dataset.settings)) == (text, kind, settings)
    config = config_lib.RunConfig(dataset=text, latent_dims=(4,), width=4)
    assert isinstance(config.dataset, spec.DataSpec) and config.dataset == text
    data = json.loads(json.dumps(config.to_json()))
    assert data["dataset"] == text and config_lib.RunConfig.from_json(data) == config
    for copied in (copy.deepcopy(config.dataset), pickle.loads(pickle.dumps(config.dataset)),
                   dataclasses.replace(config).dataset):
        assert isinstance(copied, spec.DataSpec) and (copied.kind, copied.path) == (dataset.kind, dataset.path)


def test_the_committed_records_read_as_typed_datasets():
    for name in ("celeba_hiabp_l4", "mnist_hiabp_l4"):
        path = os.path.join(REPO, "results", "cpu", "runs", name, "config.json")
        if not os.path.isfile(path):
            pytest.skip("no committed records")
        with open(path) as f:
            text = json.load(f)["config"]["dataset"]
        dataset = config_lib.RunConfig.from_json(json.load(open(path))["config"]).dataset
        assert dataset == text and dataset.kind in ("images", "mnist")


def test_a_parsed_dataset_is_not_parsed_again_on_its_way_to_the_folder(tmp_path, monkeypatch):
    """The issue followed one run's config.dataset back and forth between input_pipeline.py and
    image_folder.py four times; a DataSpec now reaches the folder reader without a parse."""
    dataset = spec.parse(f"images:{_folder(str(tmp_path / 'f'), n=3)}", {"test_images": 1, "image_size": 28})
    calls = []
    monkeypatch.setattr(image_folder, "parse_name", lambda *a: calls.append(a) or (_ for _ in ()).throw(
        AssertionError("parsed again")))
    ds, info = input_pipeline.get_dataset(dataset, "train")
    assert info.num_examples == 2 and info.name is dataset and not calls


@pytest.mark.parametrize("text,match", [
    ("npz:", "names no file"),
    ("images:", "names no folder"),
    ("Images:x", "Unknown --dataset"),
    ("images:x,image_size=big", "--image_size='big' must be an integer"),
    ("images:x,test_images=1,test_images=2", "gives test_images twice"),
])
def test_malformed_texts_name_the_flag(text, match):
    with pytest.raises(errors.DataError, match=match):
        spec.parse(text)
