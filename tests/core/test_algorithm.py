"""Tests for hiabp_tf.core.algorithm: the pieces of Algorithm 1 and the HiABP training step."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf import methods
from hiabp_tf.core import algorithm
from hiabp_tf.core import langevin
from hiabp_tf.core import models

tfd = tfp.distributions

TINY = models.Architecture((28, 28, 1), (2, 3), width=4)


def _batch(batch_size=8, seed=0):
    """A fixed random batch of 28x28x1 images in [0, 1], mostly dark like MNIST."""
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(size=(batch_size, 28, 28, 1)) ** 3, tf.float32)


def _none_or_zero(grads):
    return all(g is None or not np.any(tf.convert_to_tensor(g).numpy()) for g in grads)


# ---------------------------------------------------------------------------- eq. 5 (encoder)

def _random_posterior(batch_size=5, dims=(2, 3)):
    rng = np.random.default_rng(1)
    mus = [rng.normal(size=(batch_size, d)) for d in dims]
    log_sigmas = [rng.normal(scale=0.5, size=(batch_size, d)) for d in dims]
    z = [rng.normal(size=(batch_size, d)) for d in dims]
    return mus, log_sigmas, z


@pytest.mark.slow
def test_encoder_loss_is_eq5_by_hand_and_tfp_nll():
    """encoder_loss = mean_b sum_{l,d} (z-mu)^2/(2 sigma^2) + log sigma + log(2 pi)/2 = -log N(z; mu, sigma) / B."""
    mus, log_sigmas, z = _random_posterior()
    batch_size = mus[0].shape[0]
    loss = algorithm.encoder_loss(*[[tf.constant(a, tf.float32) for a in arr] for arr in (mus, log_sigmas, z)])
    by_hand = sum(np.sum((z_l - mu) ** 2 / (2 * np.exp(2 * ls)) + ls + 0.5 * np.log(2 * np.pi))
                  for mu, ls, z_l in zip(mus, log_sigmas, z)) / batch_size
    nll_tfp = -sum(np.sum(tfd.Normal(mu, np.exp(ls)).log_prob(z_l).numpy())
                   for mu, ls, z_l in zip(mus, log_sigmas, z)) / batch_size
    # float32 loss vs float64 references, values ~ 10: rtol 1e-5.
    np.testing.assert_allclose(loss.numpy(), by_hand, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), nll_tfp, rtol=1e-5)


def test_encoder_loss_sends_no_gradient_into_z():
    """Eq. 5 treats z_T as data: no gradient reaches z, while mu and log sigma get one."""
    mus, log_sigmas, z = [[tf.constant(a, tf.float32) for a in arr] for arr in _random_posterior()]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(mus + log_sigmas + z)
        loss = algorithm.encoder_loss(mus, log_sigmas, z)
    assert _none_or_zero(tape.gradient(loss, z))
    # Control: the gradient w.r.t. mu is (mu - z) / sigma^2 / B, not zero.
    grad_mu = tape.gradient(loss, mus)
    for g, mu, ls, z_l in zip(grad_mu, mus, log_sigmas, z):
        np.testing.assert_allclose(g.numpy(), (mu - z_l).numpy() / np.exp(2 * ls.numpy()) / 5, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- eq. 4 (generator)

@pytest.mark.slow
@pytest.mark.parametrize("masked", [False, True])
def test_generator_loss_is_the_langevin_energy_per_example(masked):
    """generator_loss(z) = batch-summed Langevin energy / B = hand-written -log p(x, z) / B."""
    generator, _ = models.build_networks(TINY)
    rng = np.random.default_rng(2)
    batch_size, sigma = 3, 0.3
    x = _batch(batch_size)
    z = [tf.constant(rng.normal(size=(batch_size, d)), tf.float32) for d in TINY.latent_dims]
    mask = tf.constant(rng.uniform(size=(batch_size, 28, 28, 1)) < 0.8, tf.float32) if masked else None

    loss, x_hat = algorithm.generator_loss(generator, x, z, sigma, mask)
    energy = langevin.gaussian_generator_energy(generator, x, sigma, mask)(z)
    m = 1.0 if mask is None else mask.numpy()
    by_hand = (np.sum((m * (x.numpy() - x_hat.numpy())) ** 2) / (2 * sigma**2)
               + sum(np.sum(z_l.numpy() ** 2) for z_l in z) / 2) / batch_size
    # Values ~ 100-500 summed in float32: rtol 1e-5.
    np.testing.assert_allclose(loss.numpy(), energy.numpy() / batch_size, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), by_hand, rtol=1e-5)
    np.testing.assert_allclose(x_hat.numpy(), generator(z).numpy(), atol=1e-6)
    # `improving` reports the batch-summed energy at z_0: per example it is eq. 4 at z_0.
    hparams = algorithm.Hyperparameters(langevin_steps=1, sigma=sigma)
    _, energy_0 = algorithm.improving(generator, x, z, hparams, tf.constant([0, 1]), mask)
    np.testing.assert_allclose(energy_0.numpy() / batch_size, loss.numpy(), rtol=1e-5)


def test_mask_makes_generator_loss_ignore_occluded_pixels():
    """With a mask, changing x at occluded pixels leaves generator_loss unchanged."""
    generator, _ = models.build_networks(TINY)
    x = _batch(2)
    z = [tf.random.stateless_normal((2, d), [3, d]) for d in TINY.latent_dims]
    mask = tf.constant(np.random.default_rng(3).uniform(size=(2, 28, 28, 1)) < 0.5, tf.float32)
    x_changed = x + (1 - mask) * 5.0
    loss, _ = algorithm.generator_loss(generator, x, z, 0.3, mask)
    loss_changed, _ = algorithm.generator_loss(generator, x_changed, z, 0.3, mask)
    np.testing.assert_array_equal(loss.numpy(), loss_changed.numpy())  # occluded residuals are exactly 0
    unmasked_changed, _ = algorithm.generator_loss(generator, x_changed, z, 0.3)
    assert unmasked_changed.numpy() > loss.numpy() + 1.0  # control: unmasked, the change counts


# ---------------------------------------------------------------------------- hyperparameters

def test_hyperparameter_defaults_are_the_papers():
    """Defaults: T = 15, s = 0.15, sigma = 0.3, lr = 3e-4 ("Training Details"); T = 0 is allowed."""
    hp = algorithm.Hyperparameters()
    assert (hp.langevin_steps, hp.step_size, hp.sigma, hp.learning_rate) == (15, 0.15, 0.3, 3e-4)
    assert algorithm.Hyperparameters(langevin_steps=0).langevin_steps == 0


@pytest.mark.parametrize("kwargs,flag", [
    (dict(langevin_steps=-1), "--langevin_steps"),
    (dict(step_size=0.0), "--step_size"),
    (dict(step_size=-0.1), "--step_size"),
    (dict(step_size=float("nan")), "--step_size"),
    (dict(sigma=0.0), "--sigma"),
    (dict(sigma=-0.3), "--sigma"),
    (dict(learning_rate=0.0), "--learning_rate"),
])
def test_hyperparameters_reject_invalid_values_naming_the_flag(kwargs, flag):
    """Invalid T, s, sigma or lr raise ValueError whose message names the command-line flag."""
    with pytest.raises(ValueError, match=re.escape(flag)):
        algorithm.Hyperparameters(**kwargs)


# ---------------------------------------------------------------------------- initializing

def test_initializing_reparameterises_with_per_layer_noise():
    """z_0^l = mu^l + exp(log sigma^l) * eps^l with eps^l drawn from fold_in(seed, l); z_0 ~ N(mu, sigma^2)."""
    rng = np.random.default_rng(4)
    dims, batch_size = (2, 3), 4000
    mus = [tf.constant(rng.normal(size=(batch_size, d)), tf.float32) for d in dims]
    log_sigmas = [tf.constant(rng.normal(scale=0.5, size=(batch_size, d)), tf.float32) for d in dims]
    seed = tf.constant([5, 6])
    z0, mus_out, log_sigmas_out = algorithm.initializing(lambda x: (mus, log_sigmas), None, seed)
    assert mus_out is mus and log_sigmas_out is log_sigmas
    for layer, (z, mu, ls) in enumerate(zip(z0, mus, log_sigmas)):
        eps = tf.random.stateless_normal(mu.shape, tf.random.experimental.stateless_fold_in(seed, layer))
        np.testing.assert_allclose(z.numpy(), (mu + tf.exp(ls) * eps).numpy(), rtol=1e-6, atol=1e-6)
        # Standardised z_0 is N(0, 1): over n = 4000 * d values the standard error of the mean is
        # 1/sqrt(n) and of the std about 1/sqrt(2n); allow 5 of each.
        standard = ((z - mu) / tf.exp(ls)).numpy().ravel()
        assert abs(standard.mean()) < 5 / np.sqrt(standard.size)
        assert abs(standard.std() - 1) < 5 / np.sqrt(2 * standard.size)
    # Different layers get different noise.
    assert not np.allclose(((z0[0] - mus[0]) / tf.exp(log_sigmas[0])).numpy(),
                           ((z0[1][:, :2] - mus[1][:, :2]) / tf.exp(log_sigmas[1][:, :2])).numpy())


@pytest.mark.slow
def test_initializing_has_no_gradient_path_to_the_encoder():
    """z_0 carries no gradient to the encoder, while mu and log sigma do."""
    _, encoder = models.build_networks(TINY)
    with tf.GradientTape(persistent=True) as tape:
        z0, mus, log_sigmas = algorithm.initializing(encoder, _batch(2), tf.constant([0, 0]))
        z_sum = tf.add_n([tf.reduce_sum(z) for z in z0])
        mu_sum = tf.add_n([tf.reduce_sum(m) + tf.reduce_sum(s) for m, s in zip(mus, log_sigmas)])
    assert _none_or_zero(tape.gradient(z_sum, encoder.trainable_variables))
    assert not _none_or_zero(tape.gradient(mu_sum, encoder.trainable_variables))


@pytest.mark.slow
def test_losses_do_not_leak_between_networks():
    """Recording all of Algorithm 1 on one tape: eq. 4 reaches no encoder weight, eq. 5 no generator weight."""
    generator, encoder = models.build_networks(TINY)
    hparams = algorithm.Hyperparameters(langevin_steps=2)
    x = _batch(2)
    with tf.GradientTape(persistent=True) as tape:  # Langevin is recorded too (not paused)
        z0, mus, log_sigmas = algorithm.initializing(encoder, x, tf.constant([1, 2]))
        z_t, _ = algorithm.improving(generator, x, z0, hparams, tf.constant([3, 4]))
        loss_theta, _ = algorithm.generator_loss(generator, x, z_t, hparams.sigma)
        loss_phi = algorithm.encoder_loss(mus, log_sigmas, z_t)
    assert _none_or_zero(tape.gradient(loss_theta, encoder.trainable_variables))
    assert _none_or_zero(tape.gradient(loss_phi, generator.trainable_variables))
    # Controls: each loss does train its own network, every variable of it.
    assert all(g is not None for g in tape.gradient(loss_theta, generator.trainable_variables))
    assert all(g is not None for g in tape.gradient(loss_phi, encoder.trainable_variables))


# ---------------------------------------------------------------------------- the training step

def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


@pytest.mark.slow
@pytest.mark.parametrize("frozen", ["generator", "encoder"])
def test_train_step_updates_each_network_only_with_its_own_optimizer(monkeypatch, frozen):
    """With one optimizer disabled, train_step leaves that network unchanged and moves every weight of the other."""
    model = methods.HiABP(TINY, algorithm.Hyperparameters(langevin_steps=2))
    passed = {}

    def recorder(name):
        def apply_gradients(grads_and_vars):
            passed[name] = list(grads_and_vars)  # recorded at trace time; nothing applied
        return apply_gradients

    frozen_net = getattr(model, frozen)
    monkeypatch.setattr(getattr(model, f"{frozen}_optimizer"), "apply_gradients", recorder(frozen))
    other = model.encoder if frozen == "generator" else model.generator
    frozen_before, other_before = _snapshot(frozen_net.variables), _snapshot(other.trainable_variables)
    model.train_step({"image": _batch(4)}, tf.constant([0, 1]))
    assert not any(_changed(frozen_before, frozen_net.variables))
    assert all(_changed(other_before, other.trainable_variables))
    # The disabled optimizer was handed exactly its network's variables, each with a gradient.
    grads, variables = zip(*passed[frozen])
    assert [v.path for v in variables] == [v.path for v in frozen_net.trainable_variables]
    assert all(g is not None for g in grads)


@pytest.fixture(scope="module")
def trained():
    """A tiny HiABP (28x28x1, one layer of 4 latents, width 4) after 30 steps on one fixed batch."""
    model = methods.HiABP(models.Architecture((28, 28, 1), (4,), width=4),
                            algorithm.Hyperparameters(learning_rate=3e-3))
    batch = {"image": _batch(8)}
    history = [model.train_step(batch, tf.constant([step, 0])) for step in range(30)]
    return model, batch, [{k: float(v) for k, v in m.items()} for m in history]


@pytest.mark.slow
def test_train_step_metrics_are_finite_and_consistent(trained):
    """Every metric of every step is finite; energy_zT is the generator loss; losses are positive."""
    _, _, history = trained
    expected = {"generator_loss", "encoder_loss", "energy_z0", "energy_zT", "train_mse"}
    for metrics in history:
        assert set(metrics) == expected
        assert all(np.isfinite(v) for v in metrics.values())
        assert metrics["energy_zT"] == metrics["generator_loss"]
        assert metrics["generator_loss"] > 0 and 0 < metrics["train_mse"] < 1


def test_train_step_reduces_generator_loss(trained):
    """Over 30 steps on one batch (lr 3e-3) the generator loss falls: last 5 steps well below the first 5."""
    _, _, history = trained
    losses = np.array([m["generator_loss"] for m in history])
    # The initial loss is ~600 (784 pixels at squared error ~0.14, over 2 sigma^2 = 0.18) and falls
    # by ~40% in 30 steps; Langevin noise moves it by a few units a step, so a 10% drop of the
    # 5-step averages is a safe bar that a non-learning step could not pass.
    assert losses[-5:].mean() < 0.9 * losses[:5].mean(), losses
    mse = np.array([m["train_mse"] for m in history])
    assert mse[-5:].mean() < mse[:5].mean(), mse


@pytest.mark.slow
def test_reconstruct_and_sample_shapes_and_range(trained):
    """reconstruct gives "E" = g(mu(x)) and "E+L" images in [0, 1]; sample(n) gives n images in [0, 1]."""
    model, batch, _ = trained
    x = batch["image"][:3]
    out = model.reconstruct(x, tf.constant([1, 2]))
    assert set(out) == {"E", "E+L"}
    for key in ("E", "E+L"):
        assert out[key].shape == (3, 28, 28, 1)
        assert 0.0 <= float(tf.reduce_min(out[key])) and float(tf.reduce_max(out[key])) <= 1.0
    mus, _ = model.encoder(x)
    np.testing.assert_allclose(out["E"].numpy(), model.generator(mus).numpy(), atol=1e-5)  # graph vs eager
    again = model.reconstruct(x, tf.constant([1, 2]))
    np.testing.assert_array_equal(again["E+L"].numpy(), out["E+L"].numpy())  # same seed, same result
    masked = model.reconstruct(x, tf.constant([1, 2]), mask=tf.ones_like(x))
    np.testing.assert_allclose(masked["E+L"].numpy(), out["E+L"].numpy(), atol=1e-5)  # all-ones mask = no mask

    samples = model.sample(5, tf.constant([3, 4]))
    assert samples.shape == (5, 28, 28, 1)
    assert 0.0 <= float(tf.reduce_min(samples)) and float(tf.reduce_max(samples)) <= 1.0
    assert np.std(samples.numpy(), axis=0).max() > 0  # the samples are not all the same image


def test_the_deterministic_reconstruction_starts_at_the_encoder_mean_and_draws_no_noise():
    arch = models.Architecture((28, 28, 1), (3, 3), width=4)
    model = methods.HiABP(arch, algorithm.Hyperparameters(langevin_steps=4))
    x = tf.random.stateless_uniform((3, 28, 28, 1), [0, 3])
    first, second = (model.reconstruct(x, tf.constant(seed, tf.int32), deterministic=True) for seed in ([1, 1], [2, 7]))
    np.testing.assert_array_equal(first["E+L"].numpy(), second["E+L"].numpy())  # no randomness left
    _, mus, _ = algorithm.initializing(model.encoder, x, tf.constant([0, 0], tf.int32))
    z_t, _ = algorithm.improving(model.generator, x, mus, model.hparams, tf.constant([0, 0], tf.int32), noise=False)
    np.testing.assert_allclose(first["E+L"].numpy(), model.generator(z_t).numpy(), atol=1e-6)
    stochastic = model.reconstruct(x, tf.constant([1, 1], tf.int32))
    assert not np.allclose(stochastic["E+L"].numpy(), first["E+L"].numpy())
    np.testing.assert_array_equal(stochastic["E"].numpy(), first["E"].numpy())
