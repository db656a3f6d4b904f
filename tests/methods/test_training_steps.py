"""Every method's compiled training step applies exactly the gradients of its own loss, evaluated at the
latents Algorithm 1 (or the method) prescribes for the step's seed; and the persistent ABP's chains
carry each example's z_T from one visit to the next.

The optimisers' `apply_gradients` are replaced by recorders (`by_hand.capture`), so a step applies
nothing and the reference is computed afterwards on the same weights. The references are written by hand
(`by_hand`: tfp log-probs, a Python Langevin loop), so a step that trains a network on the wrong latents
(the encoder on z_0 instead of z_T, the generator before Langevin), drops the mask, or loses the KL
warm-up fails here even though its losses still fall."""

import by_hand
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf import methods
from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.data import masks

tfd = tfp.distributions

SHAPE = (28, 28, 1)
BATCH = 3
# T = 3 steps of s = 0.15: z_T is ~0.3 away from z_0 per dimension, far beyond the round-off of a compiled step.
HPARAMS = algorithm.Hyperparameters(langevin_steps=3, learning_rate=1e-3)
SEED = tf.constant([11, 5], tf.int32)


def _arch(num_layers):
    return models.Architecture(SHAPE, (2,) * num_layers, width=4)


def _data(masked):
    """(x the model is given, mask or None): a pepper-occluded batch when masked."""
    x = tf.random.stateless_uniform((BATCH, *SHAPE), [0, 9]) ** 3
    if not masked:
        return x, None
    mask = masks.make_masks("pepper", x.shape, [1, 2])
    return masks.occlude(x, mask), mask


def _step(monkeypatch, model, batch, mask):
    """Runs the compiled step with both optimisers captured; returns {network: recorder}."""
    recorders = {"generator": by_hand.capture(monkeypatch, model.generator_optimizer, _generator_variables(model))}
    if model.encoder is not None:
        recorders["encoder"] = by_hand.capture(monkeypatch, model.encoder_optimizer,
                                               model.encoder.trainable_variables)
    model.train_step(batch, SEED, mask)
    return recorders


def _generator_variables(model):
    return getattr(model, "generator_variables", model.generator.trainable_variables)


def _check(recorder, expected_grads, variables):
    assert recorder.paths == [v.path for v in variables]  # handed to the right optimiser, in order
    by_hand.assert_same_gradients(recorder.grads, expected_grads, variables)


# ------------------------------------------------------------------------------------- HiABP

@pytest.mark.parametrize("num_layers,masked", [(1, False), (3, True)], ids=["iabp_l1", "hiabp_l3_masked"])
def test_hiabp_step_applies_eq4_and_eq5_gradients_at_z_T(monkeypatch, num_layers, masked):
    """theta gets grad eq. 4 at z_T and phi grad eq. 5 at stop_gradient(z_T), z_T = improving(initializing(x))."""
    model = methods.HiABP(_arch(num_layers), HPARAMS)
    x, mask = _data(masked)
    recorders = _step(monkeypatch, model, {"image": x}, mask)

    init_seed, langevin_seed = by_hand.split_seeds(SEED)
    z0, _, _ = algorithm.initializing(model.encoder, x, init_seed)
    z_t, _ = algorithm.improving(model.generator, x, z0, HPARAMS, langevin_seed, mask)
    generator_vars, encoder_vars = model.generator.trainable_variables, model.encoder.trainable_variables
    with tf.GradientTape() as tape:
        loss_theta = by_hand.eq4(model.generator, x, z_t, HPARAMS.sigma, mask)
    _check(recorders["generator"], tape.gradient(loss_theta, generator_vars), generator_vars)
    with tf.GradientTape() as tape:
        mus, log_sigmas = model.encoder(x)
        loss_phi = by_hand.eq5(mus, log_sigmas, z_t)
    _check(recorders["encoder"], tape.gradient(loss_phi, encoder_vars), encoder_vars)


# --------------------------------------------------------------------------------------- ABP

@pytest.mark.parametrize("method,masked", [("abp", True), ("abp_persistent", False)])
def test_abp_step_applies_eq4_gradients_at_z_T_from_its_z_0(monkeypatch, method, masked):
    """ABP: z_0 ~ N(0, I) from the initializer seed; persistent ABP: z_0 = the batch's chains."""
    model = methods.METHOD_CLASSES[method](_arch(2), HPARAMS, 10)
    x, mask = _data(masked)
    index = tf.constant([7, 0, 4], tf.int64)
    chains = [c.numpy() for c in model.chains] if method == "abp_persistent" else None
    recorders = _step(monkeypatch, model, {"image": x, "index": index}, mask)

    init_seed, langevin_seed = by_hand.split_seeds(SEED)
    if chains is None:
        z0 = [by_hand.layer_noise((BATCH, d), init_seed, l) for l, d in enumerate(model.arch.latent_dims)]
    else:
        z0 = [tf.constant(c[index.numpy()]) for c in chains]
    z_t, _ = algorithm.improving(model.generator, x, z0, HPARAMS, langevin_seed, mask)
    variables = model.generator.trainable_variables
    with tf.GradientTape() as tape:
        loss = by_hand.eq4(model.generator, x, z_t, HPARAMS.sigma, mask)
    _check(recorders["generator"], tape.gradient(loss, variables), variables)


# ------------------------------------------------------------------------- VAE, VLAE, LVAE

def _vae_negative_elbo(model, x, seed, mask):
    """-ELBO with one reparameterised sample (eps of layer l from fold_in(seed, l)), KL to N(0, I) per layer."""
    mus, log_sigmas = model.encoder(x)
    z, kl = [], []
    for l, (mu, log_sigma) in enumerate(zip(mus, log_sigmas)):
        q = tfd.Normal(mu, tf.exp(log_sigma))
        z.append(mu + tf.exp(log_sigma) * by_hand.layer_noise(tf.shape(mu), seed, l))
        kl.append(tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)), axis=1))
    return -tf.reduce_mean(by_hand.log_likelihood(x, model.generator(z), model.hparams.sigma, mask) - tf.add_n(kl))


def _lvae_objective(model, x, seed, mask, beta):
    """Reconstruction + beta KL of the LVAE, its top-down inference by hand: q(z^L | x) is the bottom-up
    Gaussian; q(z^l | z^{l+1}, x) the precision-weighted product of the bottom-up Gaussian and
    p(z^l | z^{l+1}), with its KL to that prior."""
    mus, log_sigmas = model.encoder(x)
    top = len(mus) - 1
    z, kl = [None] * len(mus), []
    for l in range(top, -1, -1):
        mu_q, sigma_q = mus[l], tf.exp(log_sigmas[l])
        if l == top:
            mu, sigma, prior = mu_q, sigma_q, tfd.Normal(0.0, 1.0)
        else:
            mu_p, sigma_p = by_hand.lvae_conditional(model, l, z[l + 1])
            variance = 1.0 / (sigma_q**-2 + sigma_p**-2)
            mu, sigma, prior = (mu_q / sigma_q**2 + mu_p / sigma_p**2) * variance, tf.sqrt(variance), tfd.Normal(mu_p,
                                                                                                             sigma_p)
        z[l] = mu + sigma * by_hand.layer_noise(tf.shape(mu), seed, l)
        kl.append(tf.reduce_sum(tfd.kl_divergence(tfd.Normal(mu, sigma), prior), axis=1))
    reconstruction = -by_hand.log_likelihood(x, model.generator(z), model.hparams.sigma, mask)
    return tf.reduce_mean(reconstruction + beta * tf.add_n(kl))


@pytest.mark.parametrize("method,num_layers,masked", [
    ("vae", 1, True), ("vlae", 3, False), ("lvae", 3, True), ("lvae_all_layers", 2, False)])
def test_variational_step_applies_the_gradients_of_its_objective(monkeypatch, method, num_layers, masked):
    """One loss, split between the two optimisers: the negative ELBO (the LVAE's with its warm-up's beta on
    the KL, here 1/4 of the way) at the reparameterised samples of the step's seed."""
    hparams = HPARAMS if method != "lvae" else algorithm.Hyperparameters(learning_rate=1e-3, kl_warmup_steps=4)
    model = methods.METHOD_CLASSES[method](_arch(num_layers), hparams, 10)
    beta = 1.0
    if method == "lvae":
        by_hand.randomise_prior_heads(model)  # so that the prior's dependence on the layer above counts
        model.generator_optimizer.iterations.assign(1)  # (nothing is applied, so the count stays)
        beta = 0.25
    x, mask = _data(masked)
    recorders = _step(monkeypatch, model, {"image": x, "index": tf.range(BATCH, dtype=tf.int64)}, mask)

    generator_vars, encoder_vars = _generator_variables(model), model.encoder.trainable_variables
    with tf.GradientTape() as tape:
        if method.startswith("lvae"):
            loss = _lvae_objective(model, x, SEED, mask, beta)
        else:
            loss = _vae_negative_elbo(model, x, SEED, mask)
    grads = tape.gradient(loss, generator_vars + encoder_vars)
    _check(recorders["generator"], grads[:len(generator_vars)], generator_vars)
    _check(recorders["encoder"], grads[len(generator_vars):], encoder_vars)


# --------------------------------------------------------------------- persistent chains

def test_persistent_chains_carry_each_examples_z_T_to_its_next_visit():
    """After a step, chain row index[i] is example i's z_T, by hand from z_0 = that row before the step;
    rows outside the batch stay; the next step on the batch starts from the rows the first wrote."""
    model = methods.PersistentABP(_arch(2), HPARAMS, 10)
    x, _ = _data(masked=False)
    batch = {"image": x, "index": tf.constant([7, 0, 4], tf.int64)}  # not in row order
    rows = batch["index"].numpy()
    for step in range(2):
        before = [c.numpy() for c in model.chains]
        seed = tf.constant([3, step], tf.int32)
        _, langevin_seed = by_hand.split_seeds(seed)
        z_t = by_hand.langevin(by_hand.energy(model.generator, x, HPARAMS.sigma), [c[rows] for c in before],
                               HPARAMS.langevin_steps, HPARAMS.step_size, langevin_seed)
        model.train_step(batch, seed)  # Langevin runs on the generator before this step's update
        for old, chain, z in zip(before, model.chains, z_t):
            new = chain.numpy()
            np.testing.assert_allclose(new[rows], z.numpy(), rtol=1e-4, atol=1e-5)
            others = np.setdiff1d(np.arange(10), rows)
            np.testing.assert_array_equal(new[others], old[others])
