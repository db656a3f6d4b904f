"""The memory report's parts: the persistent-chain size, the cache arithmetic and one measurement."""

import os

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf.tools import memory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_persistent_chain_bytes_of_paper_mnist_is_the_formula():
    """PersistentABP with the paper MNIST architecture and 60,000 chains holds 60000 x 48 x 4 bytes."""
    built, formula = memory.persistent_chain_bytes(os.path.join(REPO, "flags", "mnist_abp_persistent.flags"), 60_000)
    assert built == formula == 60_000 * 48 * 4 == 11_520_000


def test_cache_sizes_follow_what_the_input_pipeline_caches():
    """uint8 pixels plus an int64 index per example; float32 images would be 4 bytes per pixel."""
    mnist = memory.cache_bytes("mnist")
    assert mnist["train"] == 60_000 * (28 * 28 + 8) and mnist["test"] == 10_000 * (28 * 28 + 8)
    assert mnist["train_float32_images"] == 60_000 * 28 * 28 * 4
    assert memory.cache_bytes("celeb_a")["train"] == 162_770 * (64 * 64 * 3 + 8)
    assert memory.cache_bytes("svhn_cropped")["train"] == 73_257 * (32 * 32 * 3 + 8)


@pytest.mark.slow
def test_measurement_of_a_tiny_config_in_a_fresh_process():
    config = config_lib.RunConfig(latent_dims=(4,), width=4, batch_size=10, langevin_steps=2)
    result = memory.measure(config, (28, 28, 1), 100, train_steps=2)
    assert result["peak_rss"] >= result["peak_rss_after_build"] >= result["peak_rss_after_imports"] > 0
    assert result["peak_rss_after_imports"] >= result["peak_rss_after_import_tf"] > result["peak_rss_python"]
    assert result["parameters"] > 0 and len(result["step_seconds"]) == 2
