"""Langevin from N(0, I) for any method (`base.Method.reconstruct_from_noise`): Figure 1's same-model
comparison of the encoder's initialisation with noise, and the evaluation option that scores it."""

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.evaluation import metrics
from hiabp_tf.methods import base

SHAPE = (28, 28, 1)
SEED = tf.constant([3, 4], tf.int32)


def _model(method, num_layers=2):
    config = config_lib.RunConfig(method=method, num_layers=num_layers, latent_dims=(3,) * num_layers, width=4,
                                  batch_size=4, sigma=0.5)
    return methods.build_model(config, SHAPE, 8)


def _batch():
    return tf.random.stateless_uniform((4, *SHAPE), [0, 1])


def test_for_abp_it_is_its_own_l():
    x, abp = _batch(), _model("abp", 1)
    np.testing.assert_array_equal(abp.reconstruct_from_noise(x, SEED, 2)["L"].numpy(),
                                  abp.reconstruct(x, SEED, 2)["L"].numpy())


def test_for_hiabp_it_starts_from_noise_without_the_encoder():
    """Deterministic in the seed, independent of the encoder; T = 0 decodes the noise itself."""
    x, hiabp = _batch(), _model("hiabp")
    first = hiabp.reconstruct_from_noise(x, SEED, 2)
    assert set(first) == {"L"}
    np.testing.assert_array_equal(first["L"].numpy(), hiabp.reconstruct_from_noise(x, SEED, 2)["L"].numpy())
    assert not np.allclose(first["L"].numpy(), hiabp.reconstruct(x, SEED, 2)["E+L"].numpy())
    for variable in hiabp.encoder.trainable_variables:  # the encoder plays no part
        variable.assign(tf.zeros_like(variable))
    np.testing.assert_array_equal(first["L"].numpy(), hiabp.reconstruct_from_noise(x, SEED, 2)["L"].numpy())
    init_seed = tf.unstack(tf.random.experimental.stateless_split(SEED, 2))[0]
    noise = base.standard_normal_latents(hiabp.arch.latent_dims, 4, init_seed)
    np.testing.assert_allclose(hiabp.reconstruct_from_noise(x, SEED, 0)["L"].numpy(),
                               hiabp.generator(noise).numpy(), rtol=1e-6)


def test_the_metric_scores_it_as_l_and_leaves_the_default_alone():
    x, hiabp = _batch(), _model("hiabp")
    dataset = tf.data.Dataset.from_tensor_slices({"image": x, "index": tf.range(4, dtype=tf.int64)}).batch(2)
    noise = metrics.reconstruction_mse(hiabp, dataset, langevin_steps=1, from_noise=True)
    assert set(noise) == {"mse_L", "num_examples"} and noise["num_examples"] == 4
    expected = [hiabp.reconstruct_from_noise(batch["image"], tf.random.experimental.stateless_fold_in(
        tf.constant([0, 1], tf.int32), b), 1)["L"] for b, batch in enumerate(dataset)]
    errors = np.concatenate([np.mean((batch["image"].numpy() - e.numpy()) ** 2, axis=(1, 2, 3))
                             for batch, e in zip(dataset, expected)])
    assert noise["mse_L"] == pytest.approx(errors.mean(), rel=1e-6)
    assert set(metrics.reconstruction_mse(hiabp, dataset, langevin_steps=1)) == {"mse_E", "mse_EL", "num_examples"}
    with pytest.raises(ValueError, match="choose one"):
        metrics.reconstruction_mse(hiabp, dataset, deterministic=True, from_noise=True)
