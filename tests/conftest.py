"""Makes the package importable from the repository root, however pytest is started."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One intra-op thread per test process (and the trainings it starts, which inherit the environment):
# `./run.sh test` runs two pytest workers on two cores, the networks of the tests are too small for a
# second thread to speed an op up, and two workers with two threads each oversubscribe the cores.
# Set before TensorFlow is imported (hiabp_tf below imports it); an explicit setting wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402  (after the path setup above)

from hiabp_tf import config as config_lib


@pytest.fixture
def isolated_image_cache(tmp_path, monkeypatch):
    """Image folders decoded into a cache of this test's own (XDG_CACHE_HOME), the in-process
    memo cleared before and after, so no test reads another's decoded folder."""
    from hiabp_tf.data import image_folder  # pylint: disable=import-outside-toplevel
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    image_folder._decoded.cache_clear()  # pylint: disable=protected-access
    yield
    image_folder._decoded.cache_clear()  # pylint: disable=protected-access


# One tiny HiABP (L = 2) trained for 60 steps on mnist_5k (~15 s), shared by the tests of the trained
# model's API, export and inpainting; lr 2e-3 so that 60 steps learn clearly ([E] MSE ~0.07 vs ~0.09
# for decoding random latents). The tests only read it.
TINY_TRAINED = dict(dataset="mnist_5k", num_layers=2, latent_dims=(8, 8), width=8, batch_size=100,
                    seed=0, learning_rate=2e-3, langevin_steps=10)


@pytest.fixture(scope="session")
def tiny_trained_workdir(tmp_path_factory):
    from hiabp_tf import train
    path = tmp_path_factory.mktemp("tiny_hiabp")
    train.train(config_lib.RunConfig(**TINY_TRAINED), str(path), 60, log_every=1000, eval_every=10**6,
                eval_examples=100, checkpoint_every=10**6)
    return str(path)


# Fixtures that train a model or start processes (module- or session-scoped: the first test using one
# pays for it, so every test that uses one is slow).
EXPENSIVE_FIXTURES = {
    "tiny_trained_workdir",  # here
    "trained",  # test_algorithm, test_train_evaluate
    "runs",  # test_experiments, test_workdir_safety
    "hiabp_l3",  # test_figures
    "workdirs",  # test_methods_end_to_end
    "two_devices",  # test_distribute
    "tiny_classifier", "inception",  # test_fid
}


def pytest_collection_modifyitems(items):
    """`slow`: a test that uses an expensive fixture (besides those marked by hand)."""
    for item in items:
        if EXPENSIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
