"""The interface every method shares (methods.base.Method): the initializer, the energy and the
layer resampling the API, export and inpainting use, checked against closed forms."""

import os
import re

import by_hand
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.core import algorithm
from hiabp_tf.core import langevin
from hiabp_tf.methods import base

tfd = tfp.distributions
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (28, 28, 1)
SEED = tf.constant([3, 4], tf.int32)


def _model(method, num_layers=2):
    config = config_lib.RunConfig(method=method, num_layers=num_layers, latent_dims=(3,) * num_layers, width=4,
                                  batch_size=4, sigma=0.5)
    return methods.build_model(config, SHAPE, 8)


def _batch():
    return tf.random.stateless_uniform((4, *SHAPE), [0, 1])


def _latents(seed):
    return [tf.random.stateless_normal((4, 3), [seed, l]) for l in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in methods.METHODS if not m.startswith("lvae")])
def test_the_energy_is_the_papers_gaussian_energy(method):
    model, x, z = _model(method, 1 if method == "vae" else 2), _batch(), None
    z = _latents(1)[:model.arch.num_layers]
    expected = langevin.gaussian_generator_energy(model.generator, x, 0.5)(z)
    np.testing.assert_allclose(model.energy_fn(x)(z).numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("method,random_heads", [("lvae", False), ("lvae", True), ("lvae_all_layers", False)])
def test_the_lvae_energy_is_minus_log_p_of_its_hierarchical_prior_and_likelihood(method, random_heads):
    """E(z) - E(z') = -(log p(x, z) - log p(x, z')), log p from tfp Normals (constants cancel), with
    p(z^1 | z^2) read off the networks by hand. The published LVAE's heads start at zero (a prior that
    ignores z^2, of constant scale), so they are also drawn at random: the prior's dependence on the layer
    above and its log sigma term then count (the variant's MLP prior is random from the start)."""
    model, x = _model(method), _batch()
    if random_heads:
        by_hand.randomise_prior_heads(model)

    def log_joint(z):
        mu_p, sigma_p = by_hand.lvae_conditional(model, 0, z[1])
        return (tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(z[1]))
                + tf.reduce_sum(tfd.Normal(mu_p, sigma_p).log_prob(z[0]))
                + tf.reduce_sum(tfd.Normal(model.generator(z), 0.5).log_prob(x)))

    energy = model.energy_fn(x)
    z, z_other = _latents(1), _latents(2)
    np.testing.assert_allclose((energy(z) - energy(z_other)).numpy(),
                               -(log_joint(z) - log_joint(z_other)).numpy(), rtol=1e-4)
    # Observed pixels only: with a mask of zeros the likelihood term drops out.
    masked = model.energy_fn(x, tf.zeros_like(x))
    np.testing.assert_allclose((masked(z) - masked(z_other)).numpy(),
                               -(log_joint(z) - log_joint(z_other)
                                 - tf.reduce_sum(tfd.Normal(model.generator(z), 0.5).log_prob(x))
                                 + tf.reduce_sum(tfd.Normal(model.generator(z_other), 0.5).log_prob(x))).numpy(),
                               rtol=1e-4)


@pytest.mark.slow
def test_initial_latents_with_and_without_an_encoder():
    x = _batch()
    hiabp = _model("hiabp")
    z0, means = hiabp.initial_latents(x, SEED)
    expected_z0, mus, _ = algorithm.initializing(hiabp.encoder, x, SEED)
    for got, want in zip(z0 + means, expected_z0 + mus):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    abp = _model("abp")
    noise, none = abp.initial_latents(x, SEED)
    assert none is None and not abp.has_encoder
    for got, want in zip(noise, base.standard_normal_latents((3, 3), 4, SEED)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    lvae = _model("lvae")
    z0, means = lvae.initial_latents(x, SEED)
    top_down_mean, _ = lvae.posterior(x, None)
    for got, want in zip(means, top_down_mean):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert not np.allclose(z0[0].numpy(), means[0].numpy())  # a sample, not the mean


def test_resample_layer_draws_from_the_prior_of_the_layer():
    z = _latents(5)
    hiabp = _model("hiabp")
    np.testing.assert_array_equal(hiabp.resample_layer(z, 0, SEED).numpy(),
                                  tf.random.stateless_normal((4, 3), SEED).numpy())
    lvae = _model("lvae")
    mu_p, sigma_p = lvae.conditional(0, z[1])
    np.testing.assert_allclose(lvae.resample_layer(z, 0, SEED).numpy(),
                               base.reparameterize(mu_p, sigma_p, SEED, 0).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(lvae.resample_layer(z, 1, SEED).numpy(),
                                  tf.random.stateless_normal((4, 3), SEED).numpy())  # the top: N(0, I)


def test_serving_does_not_branch_on_the_method():
    """The API, export and inpainting use the method interface, never a method's name."""
    for name in ("api.py", "export.py", "inpaint.py"):
        text = open(os.path.join(REPO, "hiabp_tf", "serving", name)).read()
        assert not re.search(r"\.method\s*(==|!=|in\b|not in\b)", text), name
        for method in methods.METHODS:
            assert f'"{method}"' not in text, (name, method)
