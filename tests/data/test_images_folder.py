"""--dataset=images:DIR (hiabp_tf/data/image_folder.py): a folder of JPEG / PNG files decoded by
TensorFlow, centre-cropped, resized, split by sorted file name, cached as uint8; its settings are
part of the dataset's name, so config.json records them and evaluate / hiabp_tf.load rebuild the
same splits. Small images are generated into tmp_path; the real CelebA folder test skips without it."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import hiabp_tf
from hiabp_tf import config as config_lib
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.data import image_folder
from hiabp_tf.data import input_pipeline
from hiabp_tf.data import spec as data_spec
from hiabp_tf.serving import inpaint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_CELEBA = os.path.join(REPO, "..", "shared", "data", "celeba")
RED, BLUE = (200, 30, 40), (20, 40, 220)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test caches into its own folder (never the user's ~/.cache) and starts unmemoised."""
    folder = tmp_path / "xdg_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    image_folder._decoded.cache_clear()
    yield folder
    image_folder._decoded.cache_clear()


def _write(path, image):
    """Writes a uint8 (h, w, c) array as PNG or JPEG, by the file name's extension."""
    image = tf.constant(np.asarray(image, np.uint8))
    data = tf.io.encode_png(image) if str(path).endswith(".png") else tf.io.encode_jpeg(image, quality=95)
    tf.io.write_file(str(path), data)


def _folder(tmp_path, name="photos", n=6, channels=3, ext=".jpg", shape=(40, 30)):
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        _write(folder / f"img{i:02d}{ext}", rng.integers(0, 256, (*shape, channels)))
    return folder


def _name(folder, **settings):
    return data_spec.parse(f"images:{folder}", settings)


# ------------------------------------------------------------------------------------- names


def test_the_name_holds_every_setting_with_an_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = data_spec.parse("images:photos", {"image_size": 32, "test_images": 3})
    assert name == f"images:{tmp_path / 'photos'},image_size=32,image_crop=1.0,test_images=3"
    assert data_spec.parse(name) == name  # idempotent: config.json's name is kept as is
    assert image_folder.settings_of(name) == {"image_size": 32, "image_crop": 1.0, "test_images": 3}
    assert image_folder.parse_name("images:a,b,image_crop=0.5") == ("a,b", {"image_crop": 0.5})
    with pytest.raises(errors.DataError, match="--test_images=5 contradicts"):
        data_spec.parse(name, {"test_images": 5})
    # Defaults (evaluate's: the run's settings) fill only what the name leaves out.
    assert data_spec.parse("images:photos,test_images=7", defaults={"test_images": 1, "image_size": 28}) \
        == f"images:{tmp_path / 'photos'},image_size=28,image_crop=1.0,test_images=7"


@pytest.mark.parametrize("settings,match", [
    ({"image_size": 0}, "--image_size=0 must be an integer >= 1"),
    ({"test_images": 0}, "--test_images=0 must be an integer >= 1"),
    ({"image_crop": 0.0}, r"--image_crop=0.0 must be a fraction in \(0, 1\]"),
    ({"image_crop": 1.5}, r"--image_crop=1.5 must be a fraction in \(0, 1\]"),
])
def test_bad_settings_name_their_flag(settings, match):
    with pytest.raises(errors.DataError, match=match):
        data_spec.parse("images:x", settings)


def test_flags_are_folded_into_the_dataset_name_and_recorded(tmp_path, monkeypatch):
    """--dataset=images:DIR with --image_size, --image_crop, --test_images: one name in RunConfig (and
    config.json); other datasets are untouched and refuse the image flags; old configs load as before."""
    from absl import flags
    monkeypatch.chdir(tmp_path)

    def config(*args):
        flag_values = flags.FlagValues()
        config_lib.define_run_flags(flag_values)
        flag_values(["prog", *args])
        return config_lib.config_from_flags(flag_values)

    built = config("--dataset=images:photos", "--image_size=32", "--image_crop=0.786517", "--test_images=3")
    assert built.dataset == f"images:{tmp_path / 'photos'},image_size=32,image_crop=0.786517,test_images=3"
    assert config_lib.RunConfig.from_json(json.loads(json.dumps(built.to_json()))) == built
    assert "image_size" not in built.to_json()  # in the name, not a field of its own
    assert config("--dataset=mnist_5k").dataset == "mnist_5k"
    assert config("--dataset=npz:x.npz").dataset == "npz:x.npz"
    with pytest.raises(errors.ConfigError, match="--image_size, --test_images only apply to --dataset=images:DIR"):
        config("--dataset=mnist_5k", "--image_size=32", "--test_images=3")
    with pytest.raises(errors.ConfigError, match="--image_size=48 is not a side the HiABP networks build"):
        config("--dataset=images:photos", "--image_size=48")
    with pytest.raises(errors.ConfigError, match="--test_images=0 must be an integer >= 1"):
        config("--dataset=images:photos", "--test_images=0")
    # A config.json written before images:DIR existed loads to the same fields.
    with open(os.path.join(REPO, "tests", "fixtures", "workdir_v1", "config.json")) as f:
        old = json.load(f)["config"]
    # (fields added since take their defaults: the KL warm-up of the variational methods is off)
    assert config_lib.RunConfig.from_json(old).to_json() == {**old, "latent_dims": tuple(old["latent_dims"]),
                                                             "kl_warmup_steps": 0, "lvae_top_down": "pooled"}


def test_a_flag_file_line_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    """`--dataset=images:../data/faces` in a flag file, the command started from the repository root."""
    root = tmp_path / "repo"
    (root / "flags").mkdir(parents=True)
    (root / "flags" / "faces.flags").write_text(
        "--dataset=images:../data/faces\n--image_size=32\n--image_crop=0.786517\n--test_images=1000\n")
    monkeypatch.chdir(root)
    config, _ = config_lib.load_flagfile("flags/faces.flags")
    assert config.dataset == f"images:{tmp_path / 'data' / 'faces'},image_size=32,image_crop=0.786517,test_images=1000"


# ----------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("channels,ext", [(3, ".jpg"), (1, ".jpg"), (1, ".png"), (3, ".png")])
def test_gray_and_rgb_folders_keep_their_channels(tmp_path, channels, ext):
    folder = _folder(tmp_path, channels=channels, ext=ext)
    x_train, x_test = image_folder.load(_name(folder, image_size=32, test_images=2))
    assert x_train.shape == (4, 32, 32, channels) and x_test.shape == (2, 32, 32, channels)
    assert x_train.dtype == np.uint8 and not x_train.flags.writeable
    ds, info = input_pipeline.get_dataset(f"images:{folder},image_size=32,test_images=2", "train")
    assert info.image_shape == (32, 32, channels) and info.num_examples == 4
    assert info.name == _name(folder, image_size=32, test_images=2)
    example = next(iter(ds))
    assert example["image"].dtype == tf.float32 and int(example["index"]) == 0
    np.testing.assert_allclose(example["image"].numpy(), x_train[0] / 255.0, atol=1e-7)


def test_the_test_split_is_the_last_files_in_sorted_name_order(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = ["b.png", "a10.png", "A.png", "a2.PNG", "c.jpeg"]  # sorted: A, a10, a2, b, c
    for value, name in enumerate(names):
        _write(folder / name, np.full((10, 10, 1), 10 * (value + 1)))
    x_train, x_test = image_folder.load(_name(folder, image_size=28, test_images=2))
    by_name = {name: 10 * (value + 1) for value, name in enumerate(names)}
    order = [by_name[n] for n in ("A.png", "a10.png", "a2.PNG", "b.png", "c.jpeg")]
    assert [int(np.median(x)) for x in x_train] == order[:3]
    assert [int(np.median(x)) for x in x_test] == order[3:]


def _two_colours(shape, centre):
    """RED in the centred `centre` x `centre` square (top and left as the crop rounds them), BLUE around it."""
    image = np.empty((*shape, 3), np.uint8)
    image[:] = BLUE
    top, left = (shape[0] - centre) // 2, (shape[1] - centre) // 2
    image[top:top + centre, left:left + centre] = RED
    return image


@pytest.mark.parametrize("shape,centre", [((218, 178), 140), ((109, 89), 70)])
def test_the_celeb_a_crop_is_the_paper_region_at_any_resolution(tmp_path, shape, centre):
    """--image_crop=0.786517 takes exactly the centre 140 x 140 of a 218 x 178 face and the centre
    70 x 70 of the half-size one (a crop one pixel larger would bring in the blue frame); at 218 x 178
    the result is the tensorflow-datasets celeb_a path's."""
    folder = tmp_path / "faces"
    folder.mkdir()
    image = _two_colours(shape, centre)
    _write(folder / "000001.png", image)
    _write(folder / "000002.png", image)
    assert round(0.786517 * shape[1]) == round(image_folder.CELEB_A_IMAGE_CROP * shape[1]) == centre
    for size in (64, 32):
        x_train, _ = image_folder.load(_name(folder, image_size=size, image_crop=0.786517, test_images=1))
        assert x_train.shape == (1, size, size, 3) and (x_train[0] == RED).all()
    if shape == (218, 178):
        x_train, _ = image_folder.load(_name(folder, image_size=64, image_crop=0.786517, test_images=1))
        np.testing.assert_array_equal(x_train[0], input_pipeline._celeb_a_image(tf.constant(image)).numpy())


def test_the_default_crop_is_the_largest_centred_square(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    _write(folder / "a.png", _two_colours((50, 80), 50))  # landscape: the centre 50 x 50 is red
    _write(folder / "b.png", _two_colours((218, 178), 140))  # portrait: the square 178 x 178 holds blue sides
    x_train, x_test = image_folder.load(_name(folder, image_size=32, test_images=1))
    assert (x_train[0] == RED).all()
    assert (x_test[0][:, 0] == BLUE).all() and (x_test[0][16, 16] == RED).all()


def test_an_undecodable_file_is_named_and_skipped_with_a_count(tmp_path, caplog):
    folder = _folder(tmp_path, n=4, ext=".png")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("not an image name: ignored")
    with caplog.at_level(logging.WARNING):
        x_train, x_test = image_folder.load(_name(folder, image_size=28, test_images=1))
    assert len(x_train) + len(x_test) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped 1 of 5 image files" in w and "broken.jpg" in w for w in warnings), warnings
    # A second process reads the cache: the skipped file is still named, never silently.
    image_folder._decoded.cache_clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        image_folder.load(_name(folder, image_size=28, test_images=1))
    assert any("broken.jpg" in r.getMessage() for r in caplog.records)


def test_an_alpha_channel_is_dropped_with_a_warning(tmp_path, caplog):
    folder = _folder(tmp_path, n=2, channels=4, ext=".png")
    with caplog.at_level(logging.WARNING):
        x_train, _ = image_folder.load(_name(folder, image_size=28, test_images=1))
    assert x_train.shape[-1] == 3
    assert any("dropped the alpha channel of 2 images" in r.getMessage() for r in caplog.records)


def _bad_folders(tmp_path):
    (tmp_path / "a_file.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    (tmp_path / "empty" / "sub").mkdir()
    _write(tmp_path / "empty" / "sub" / "deeper.png", np.zeros((8, 8, 1)))  # subfolders are not read
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.jpg", "b.png"):
        (broken / name).write_text("not an image")
    mixed = _folder(tmp_path, name="mixed", n=3, channels=3, ext=".jpg")
    for i in range(2):
        _write(mixed / f"gray{i}.png", np.zeros((20, 20, 1)))
    small = _folder(tmp_path, name="small", n=3)
    return {
        "missing folder": (f"images:{tmp_path / 'nowhere'}", "folder .*nowhere not found"),
        "a file": (f"images:{tmp_path / 'a_file.png'}", "a_file.png is a file, not a folder"),
        "empty folder": (f"images:{tmp_path / 'empty'}", "holds no JPEG or PNG file .* subfolders are not read"),
        "no decodable image": (f"images:{broken}", "none of the 2 image files .* can be decoded .*a.jpg"),
        "mixed channels": (f"images:{mixed}", r"mixes 2 grayscale \(e.g. gray0.png\) and 3 RGB \(e.g. img00.jpg\)"),
        "test_images too large": (f"images:{small},test_images=3",
                                  "--test_images=3 leaves no training image: the folder has 3 decodable images. "
                                  "Choose --test_images between 1 and 2"),
    }


BAD_FOLDERS = ["missing folder", "a file", "empty folder", "no decodable image", "mixed channels",
               "test_images too large"]


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_a_bad_folder_is_one_clear_data_error(case, tmp_path):
    """The loader's DataError, and train's before anything is written (exit status 2 on the command line)."""
    name, match = _bad_folders(tmp_path)[case]
    with pytest.raises(errors.DataError, match=match):
        input_pipeline.get_dataset(name, "train")
    workdir = tmp_path / "run"
    settings = dict(dataset=name, latent_dims=(4,), width=4, batch_size=1)
    with pytest.raises(errors.DataError, match=match):
        train.train(config_lib.RunConfig(**settings), str(workdir), 1)
    assert not workdir.exists()


# ------------------------------------------------------------------------------------- cache


def test_the_cache_is_read_again_and_a_changed_folder_is_decoded_again(tmp_path, cache, monkeypatch):
    folder = _folder(tmp_path, n=4, ext=".png")
    name = _name(folder, image_size=28, test_images=1)
    before = sorted(os.listdir(folder))
    first = image_folder.load(name)
    assert sorted(os.listdir(folder)) == before  # nothing written into the (maybe read-only) folder
    cached = os.listdir(cache / "hiabp_tf" / "images")
    assert len(cached) == 1 and cached[0].startswith("photos-28px-") and cached[0].endswith(".npz")

    decoded = []
    real_decode = image_folder._decode_files
    monkeypatch.setattr(image_folder, "_decode_files", lambda *a: decoded.append(a) or real_decode(*a))
    # In-process memo: no decoding, not even a read of the cache file.
    os.rename(cache / "hiabp_tf" / "images" / cached[0], tmp_path / "moved.npz")
    np.testing.assert_array_equal(image_folder.load(name)[0], first[0])
    os.rename(tmp_path / "moved.npz", cache / "hiabp_tf" / "images" / cached[0])
    # A new process (memo cleared) reads the cache file.
    image_folder._decoded.cache_clear()
    again = image_folder.load(name)
    assert not decoded
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # Another test split is taken from the same cache.
    x_train, x_test = image_folder.load(_name(folder, image_size=28, test_images=2))
    assert not decoded and len(x_train) == 2 and len(x_test) == 2

    # A changed file (content, size and time) is decoded again, in this process and the next.
    _write(folder / "img03.png", np.full((40, 30, 3), 7))
    os.utime(folder / "img03.png", ns=(1, 1))
    changed = image_folder.load(name)
    assert len(decoded) == 1 and (changed[1][0] == 7).all()
    # So are an added file, another size and another crop.
    _write(folder / "img04.png", np.full((40, 30, 3), 9))
    image_folder._decoded.cache_clear()
    assert (image_folder.load(name)[1][0] == 9).all() and len(decoded) == 2
    image_folder.load(_name(folder, image_size=32, test_images=1))
    image_folder.load(_name(folder, image_size=32, image_crop=0.5, test_images=1))
    assert len(decoded) == 4
    assert len(os.listdir(cache / "hiabp_tf" / "images")) == 5


def test_an_unwritable_cache_is_a_warning_not_an_error(tmp_path, monkeypatch, caplog):
    (tmp_path / "not_a_folder").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not_a_folder"))
    folder = _folder(tmp_path, n=3)
    with caplog.at_level(logging.WARNING):
        x_train, x_test = image_folder.load(_name(folder, image_size=28, test_images=1))
    assert len(x_train) == 2 and any("Could not write the image cache" in r.getMessage() for r in caplog.records)


# -------------------------------------------------------------------------------- the real one


@pytest.mark.slow  # decodes 9,000 JPEGs at each size (about 6-20 s each on 2 cores)
@pytest.mark.skipif(not os.path.isdir(REAL_CELEBA), reason="../shared/data/celeba (the 9,000 real CelebA faces) "
                    "is not beside the repository; a user's clone does not have it")
@pytest.mark.parametrize("size", [64, 32])
def test_the_real_celeba_folder(size):
    assert len([n for n in os.listdir(REAL_CELEBA) if n.endswith(".jpg")]) == 9000
    config = config_lib.RunConfig(dataset=f"images:{REAL_CELEBA},image_size={size},image_crop=0.786517,"
                                          "test_images=1000")
    assert config.dataset == f"images:{os.path.abspath(REAL_CELEBA)},image_size={size},image_crop=0.786517," \
                             "test_images=1000"
    x_train, x_test = image_folder.load(config.dataset)
    assert x_train.shape == (8000, size, size, 3) and x_test.shape == (1000, size, size, 3)
    assert 60 < x_train.mean() < 200 and x_train.std() > 30  # faces, not a constant


# --------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_train_and_evaluate_a_folder_from_the_command_line(tmp_path, cache):
    """`python -m hiabp_tf.train --dataset=images:photos` from the folder's parent, then evaluate from
    the repository root; the workdir's config.json holds the absolute folder and every setting, so
    evaluate, hiabp_tf.load and inpaint rebuild the same splits. A missing folder exits 2 with `error:`."""
    folder = _folder(tmp_path, n=30, channels=1, ext=".png", shape=(36, 28))
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(cache)}
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "hiabp_tf.train", "--dataset=images:photos", "--image_size=28",
               "--test_images=10", f"--workdir={workdir}", "--width=8", "--latent_dims=8", "--batch_size=10",
               "--langevin_steps=2", "--num_steps=3", "--log_every=1", "--eval_every=3", "--eval_examples=10"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = f"images:{folder},image_size=28,image_crop=1.0,test_images=10"
    with open(workdir / "config.json") as f:
        recorded = json.load(f)
    assert recorded["config"]["dataset"] == expected and recorded["image_shape"] == [28, 28, 1]
    assert recorded["num_train_examples"] == 20

    for extra in ([], [f"--dataset=images:{folder}"]):  # a bare name takes the run's settings
        out = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}", *extra],
                             cwd=REPO, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["dataset"] == result["trained_on"] == expected and result["num_examples"] == 10
        assert result["step"] == 3 and np.isfinite(result["mse_EL"])

    model = hiabp_tf.load(str(workdir))
    ds, info = input_pipeline.get_dataset(model.config.dataset, "test")
    assert info.num_examples == 10 and info.image_shape == model.image_shape == (28, 28, 1)
    x_test = np.stack([e["image"].numpy() for e in ds])
    assert model.reconstruct(x_test, seed=0).shape == (10, 28, 28, 1)
    summary = inpaint.inpaint_files(str(workdir), f"{folder}/img0*.png", "region:20", str(tmp_path / "out"))
    assert summary["num_images"] == 10

    bad = subprocess.run(command[:3] + ["--dataset=images:nowhere"] + command[4:], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"error: --dataset=images:{tmp_path / 'nowhere'}: folder {tmp_path / 'nowhere'} not found" in bad.stderr
