"""Tests for hiabp_tf.methods: the Table 1 baselines (VAE, VLAE, LVAE, ABP, persistent ABP)."""

import by_hand
import keras
import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import methods
from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.methods import abp
from hiabp_tf.methods import base
from hiabp_tf.methods import variational

ONE_LAYER = models.Architecture((28, 28, 1), (5,), width=4)
TWO_LAYERS = models.Architecture((28, 28, 1), (2, 3), width=4)
# A raised learning rate and a short Langevin run keep the training test to a few seconds.
FAST = algorithm.Hyperparameters(langevin_steps=5, learning_rate=3e-3)
NUM_TRAIN = 40


def _batch(batch_size=8, seed=0):
    """A fixed batch: images in [0, 1], mostly dark like MNIST, at spread-out train-split positions."""
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.uniform(size=(batch_size, 28, 28, 1)) ** 3, tf.float32)
    return {"image": images, "index": tf.range(batch_size, dtype=tf.int64) * 3}


def _seed(*values):
    return tf.constant(values, tf.int32)


def _arch_for(method):
    return ONE_LAYER if method == "vae" else TWO_LAYERS


RECONSTRUCTION_KEYS = {"vae": {"E"}, "vlae": {"E"}, "lvae": {"E"}, "lvae_all_layers": {"E"}, "abp": {"L"},
                       "abp_persistent": {"L"}}
LOSS_KEY = {"vae": "loss", "vlae": "loss", "lvae": "loss", "lvae_all_layers": "loss", "abp": "generator_loss",
            "abp_persistent": "generator_loss"}
METRIC_KEYS = {"vae": {"loss", "reconstruction", "kl", "train_mse"},
               "abp": {"generator_loss", "energy_z0", "energy_zT", "train_mse"}}
METRIC_KEYS.update(vlae=METRIC_KEYS["vae"], lvae=METRIC_KEYS["vae"], lvae_all_layers=METRIC_KEYS["vae"],
                   abp_persistent=METRIC_KEYS["abp"])


BASELINES = ("vae", "vlae", "lvae", "lvae_all_layers", "abp", "abp_persistent")


def test_registry_names_match_the_classes():
    assert set(methods.METHOD_CLASSES) == {"hiabp", *BASELINES}
    for name, cls in methods.METHOD_CLASSES.items():
        assert cls.method == name and issubclass(cls, base.Method)
        assert cls.has_encoder == (name not in ("abp", "abp_persistent"))


# ---------------------------------------------------------------------------- every method

@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(BASELINES))
def test_training_lowers_the_loss_and_outputs_have_the_documented_shapes(method):
    keras.utils.set_random_seed(0)  # fixed initial weights: the test is deterministic
    model = methods.METHOD_CLASSES[method](_arch_for(method), FAST, NUM_TRAIN)
    batch = _batch()
    losses = []
    for step in range(30):
        metrics = model.train_step(batch, _seed(0, step))
        assert set(metrics) == METRIC_KEYS[method]
        for name, value in metrics.items():
            assert np.isfinite(value.numpy()), (name, value)
        losses.append(float(metrics[LOSS_KEY[method]]))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses

    recon = model.reconstruct(batch["image"], _seed(1, 2))
    assert set(recon) == RECONSTRUCTION_KEYS[method]
    for images in recon.values():
        assert images.shape == (8, 28, 28, 1)
        assert np.all((images.numpy() >= 0) & (images.numpy() <= 1))
    samples = model.sample(tf.constant(3), _seed(1, 3))
    assert samples.shape == (3, 28, 28, 1)
    assert np.all(np.isfinite(samples.numpy()))


# ---------------------------------------------------------------------------- VAE / VLAE

def test_gaussian_kl_is_the_closed_form():
    """KL(N(m1, s1^2) || N(m2, s2^2)) = 0.5 sum(log(s2^2/s1^2) + (s1^2 + (m1-m2)^2)/s2^2 - 1)."""
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=(2, 6, 4))
    s1, s2 = np.exp(rng.normal(scale=0.5, size=(2, 6, 4)))
    closed = 0.5 * np.sum(np.log(s2**2 / s1**2) + (s1**2 + (m1 - m2) ** 2) / s2**2 - 1, axis=-1)
    np.testing.assert_allclose(base.gaussian_kl(m1, s1, m2, s2).numpy(), closed, rtol=1e-10)
    # Against the standard normal (the VAE prior), the default.
    np.testing.assert_allclose(base.gaussian_kl(m1, s1).numpy(),
                               0.5 * np.sum(s1**2 + m1**2 - 1 - np.log(s1**2), axis=-1), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("masked", [False, True])
def test_vae_loss_is_reconstruction_plus_closed_form_kl(masked):
    """The negative ELBO on a fixed input, by hand: the same eps as the code draws, statelessly."""
    model = variational.VAE(ONE_LAYER, FAST, NUM_TRAIN)
    x = _batch(4)["image"]
    seed = _seed(5, 7)
    rng = np.random.default_rng(4)
    mask = tf.constant(rng.uniform(size=x.shape) < 0.8, tf.float32) if masked else None

    terms = model.loss(x, seed, mask)

    mu, log_sigma = (t[0].numpy().astype(np.float64) for t in model.encoder(x))
    eps = tf.random.stateless_normal(mu.shape, tf.random.experimental.stateless_fold_in(seed, 0)).numpy()
    z = mu + np.exp(log_sigma) * eps
    x_hat = model.generator([tf.constant(z, tf.float32)]).numpy()
    m = 1.0 if mask is None else mask.numpy()
    reconstruction = np.mean(np.sum((m * (x.numpy() - x_hat)) ** 2, axis=(1, 2, 3)) / (2 * FAST.sigma**2))
    kl = np.mean(0.5 * np.sum(np.exp(2 * log_sigma) + mu**2 - 1 - 2 * log_sigma, axis=1))
    np.testing.assert_allclose(terms["reconstruction"].numpy(), reconstruction, rtol=1e-4)
    np.testing.assert_allclose(terms["kl"].numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(terms["loss"].numpy(), reconstruction + kl, rtol=1e-4)
    # The compiled step reports the same loss (computed before its update) for the same seed.
    metrics = model.train_step({"image": x, "index": tf.range(4, dtype=tf.int64)}, seed, mask)
    np.testing.assert_allclose(metrics["loss"].numpy(), reconstruction + kl, rtol=1e-4)


@pytest.mark.slow
def test_vae_refuses_more_than_one_layer():
    with pytest.raises(ValueError, match="--num_layers"):
        variational.VAE(TWO_LAYERS, FAST, NUM_TRAIN)
    variational.VLAE(TWO_LAYERS, FAST, NUM_TRAIN)  # the hierarchical version accepts it


@pytest.mark.slow
def test_vlae_kl_is_summed_over_layers():
    model = variational.VLAE(TWO_LAYERS, FAST, NUM_TRAIN)
    x = _batch(4)["image"]
    mus, log_sigmas = model.encoder(x)
    expected = np.mean(sum(0.5 * np.sum(np.exp(2 * ls) + mu**2 - 1 - 2 * ls, axis=1)
                           for mu, ls in zip([m.numpy() for m in mus], [l.numpy() for l in log_sigmas])))
    np.testing.assert_allclose(model.loss(x, _seed(0, 1))["kl"].numpy(), expected, rtol=1e-4)


# ---------------------------------------------------------------------------- LVAE

def test_precision_weighted_merge_is_the_closed_form():
    rng = np.random.default_rng(6)
    mu_q, mu_p = rng.normal(size=(2, 5, 3))
    sigma_q, sigma_p = np.exp(rng.normal(scale=0.5, size=(2, 5, 3)))
    mu, sigma = base.precision_weighted_merge(mu_q, sigma_q, mu_p, sigma_p)
    variance = 1 / (sigma_q**-2 + sigma_p**-2)
    np.testing.assert_allclose(sigma.numpy() ** 2, variance, rtol=1e-12)
    np.testing.assert_allclose(mu.numpy(), (mu_q * sigma_q**-2 + mu_p * sigma_p**-2) * variance, rtol=1e-12)


@pytest.mark.parametrize("mu_q, sigma_q, mu_p, sigma_p", [(0.5, 0.4, -1.0, 1.3), (2.0, 1.5, 1.0, 0.2)])
def test_precision_weighted_merge_is_the_normalised_product_of_densities(mu_q, sigma_q, mu_p, sigma_p):
    """N(mu_q, sigma_q^2) * N(mu_p, sigma_p^2), normalised on a grid, is N(mu, sigma^2)."""
    grid = np.linspace(-12, 12, 48001)
    def density(m, s):
        return np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
    product = density(mu_q, sigma_q) * density(mu_p, sigma_p)
    product /= np.trapezoid(product, grid)
    mu, sigma = base.precision_weighted_merge(
        *(tf.constant(v, tf.float64) for v in (mu_q, sigma_q, mu_p, sigma_p)))
    np.testing.assert_allclose(density(mu.numpy(), sigma.numpy()), product, atol=1e-8)


def test_merge_with_an_infinitely_broad_prior_is_the_bottom_up_gaussian():
    rng = np.random.default_rng(7)
    mu_q = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    sigma_q = tf.constant(np.exp(rng.normal(scale=0.5, size=(4, 3))), tf.float32)
    mu, sigma = base.precision_weighted_merge(mu_q, sigma_q, tf.fill([4, 3], 3.0), tf.fill([4, 3], 1e8))
    np.testing.assert_allclose(mu.numpy(), mu_q.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), sigma_q.numpy(), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [variational.LVAE, variational.LVAEAllLayers])
def test_lvae_with_one_layer_is_the_vae(cls):
    """L = 1: no top-down prior; with the same weights and seed the LVAE loss is the VAE loss."""
    lvae, vae = cls(ONE_LAYER, FAST, NUM_TRAIN), variational.VAE(ONE_LAYER, FAST, NUM_TRAIN)
    assert len(lvae.generator_variables) == len(vae.generator_variables)
    vae.generator.set_weights(lvae.generator.get_weights())
    vae.encoder.set_weights(lvae.encoder.get_weights())
    x = _batch(4)["image"]
    for key in ("loss", "reconstruction", "kl"):
        np.testing.assert_allclose(lvae.loss(x, _seed(2, 2))[key].numpy(), vae.loss(x, _seed(2, 2))[key].numpy(),
                                   rtol=1e-6)


def _lvae_kl_by_hand(model, conditional, x, seed):
    """The LVAE's KL computed by hand, top-down: z^2 from the bottom-up Gaussian (KL to N(0, I));
    layer 1 merges the bottom-up Gaussian with p(z^1 | z^2) and pays its KL to that prior."""
    mus, log_sigmas = [[t.numpy().astype(np.float64) for t in ts] for ts in model.encoder(x)]
    eps = [tf.random.stateless_normal(mu.shape, tf.random.experimental.stateless_fold_in(seed, l)).numpy()
           for l, mu in enumerate(mus)]
    z2 = mus[1] + np.exp(log_sigmas[1]) * eps[1]
    kl2 = 0.5 * np.sum(np.exp(2 * log_sigmas[1]) + mus[1] ** 2 - 1 - 2 * log_sigmas[1], axis=1)
    mu_p, log_sigma_p = (t.numpy().astype(np.float64) for t in conditional(tf.constant(z2, tf.float32)))
    s_q2, s_p2 = np.exp(2 * log_sigmas[0]), np.exp(2 * log_sigma_p)
    var = 1 / (1 / s_q2 + 1 / s_p2)
    mu1 = (mus[0] / s_q2 + mu_p / s_p2) * var
    kl1 = 0.5 * np.sum(np.log(s_p2 / var) + (var + (mu1 - mu_p) ** 2) / s_p2 - 1, axis=1)
    return np.mean(kl1 + kl2)


def _log_sigma_conditional(model):
    """z^2 -> (mu_p, log sigma_p) of p(z^1 | z^2), read off the networks by hand."""
    def conditional(z):
        mu_p, sigma_p = by_hand.lvae_conditional(model, 0, z)
        return mu_p, tf.math.log(sigma_p)
    return conditional


def test_the_lvae_kl_with_random_prior_heads_is_the_closed_form_top_down():
    """The heads start at zero (p(z^1 | z^2) = N(0, (1 + floor)^2 I) whatever z^2), which would hide a KL
    that ignored the layer above or the prior's scale; with random heads both count."""
    model = variational.LVAE(TWO_LAYERS, FAST, NUM_TRAIN)
    by_hand.randomise_prior_heads(model)
    x, seed = _batch(4)["image"], _seed(3, 1)
    mu_p, sigma_p = model.conditional(0, tf.random.stateless_normal((4, 3), [1, 1]))
    assert np.ptp(mu_p.numpy(), axis=0).min() > 1e-3 and np.ptp(sigma_p.numpy(), axis=0).min() > 1e-3
    np.testing.assert_allclose(model.loss(x, seed)["kl"].numpy(),
                               _lvae_kl_by_hand(model, _log_sigma_conditional(model), x, seed), rtol=1e-4)


@pytest.mark.slow
def test_the_published_lvae_is_a_chain_whose_top_down_path_serves_prior_and_posterior():
    model = variational.LVAE(TWO_LAYERS, FAST, NUM_TRAIN)
    assert isinstance(model.generator, variational.ChainGenerator) and "prior" not in model.checkpoint_items()
    z1, z2, other_z2 = (tf.random.stateless_normal((4, d), [7, i]) for i, d in enumerate((2, 3, 3)))
    # x depends on z^1 only; p(z^1 | z^2) starts as N(0, I), the VAE's prior.
    np.testing.assert_array_equal(model.generator([z1, z2]).numpy(), model.generator([z1, other_z2]).numpy())
    mu_p, sigma_p = model.conditional(0, z2)
    np.testing.assert_array_equal(mu_p.numpy(), np.zeros((4, 2)))
    np.testing.assert_allclose(sigma_p.numpy(), np.ones((4, 2)) + variational.SIGMA_FLOOR, rtol=1e-6)
    # The posterior merges the bottom-up Gaussian with the generative model's own top-down conditional.
    x, seed = _batch(4)["image"], _seed(3, 1)
    np.testing.assert_allclose(model.loss(x, seed)["kl"].numpy(),
                               _lvae_kl_by_hand(model, _log_sigma_conditional(model), x, seed), rtol=1e-4)
    heads = model.generator.mu_heads[0].trainable_variables + model.generator.sigma_heads[0].trainable_variables
    before = [v.numpy() for v in heads]
    model.train_step({"image": x, "index": tf.range(4, dtype=tf.int64)}, seed)
    assert all(np.any(b != v.numpy()) for b, v in zip(before, heads))  # the prior learns with the generator
    # ... and now depends on the layer above.
    assert not np.allclose(model.conditional(0, z2)[0].numpy(), model.conditional(0, other_z2)[0].numpy())


@pytest.mark.slow
@pytest.mark.parametrize("top_down", models.LVAE_TOP_DOWN)
def test_the_lvae_prior_heads_read_the_pooled_or_the_flattened_top_down_map(top_down):
    arch = models.Architecture((28, 28, 1), (2, 3), width=4, lvae_top_down=top_down)
    heads = variational.LVAE(arch, FAST, NUM_TRAIN).generator.mu_heads[0]
    side = arch.resolutions()[1]  # d^2, f^2's output, enters f^1 at this side with `width` channels
    assert heads.kernel.shape[0] == (4 if top_down == "pooled" else side * side * 4)


@pytest.mark.slow
def test_the_lvae_at_the_cpu_scale_networks_keeps_its_latents_and_output_alive():
    """The first published-LVAE runs collapsed within 50 updates (prior heads on the flattened
    7x7x32 map moved by ~0.5 per Adamax step, z^1 spread ~20, the sigmoid output stuck at 0, test
    MSE 0.12 on MNIST). With the pooled heads and the cpu scale's networks, 100 updates
    (no warm-up) on mnist_5k digits leave z^1 of order 1 and an output that is not saturated."""
    from hiabp_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(0)
    arch = models.Architecture((28, 28, 1), (12, 12, 12, 12), width=32)
    model = variational.LVAE(arch, algorithm.Hyperparameters(), 4000)
    images = tf.constant(input_pipeline.mnist_5k_arrays()[0], tf.float32) / 255.0
    for step in range(100):  # batches of 100, each digit seen once
        batch = images[(step % 40) * 100:(step % 40) * 100 + 100]
        model.train_step({"image": batch, "index": tf.range(100, dtype=tf.int64)}, _seed(0, step))
    z, _ = model.posterior(images[:100], _seed(1, 1))
    x_hat = model.generator(z)
    assert float(tf.math.reduce_std(z[0])) < 5.0
    assert float(tf.reduce_mean(x_hat)) > 0.05  # the mean digit pixel is ~0.13; a collapsed chain gave ~0.0


def test_the_kl_warm_up_rises_linearly_from_0_to_1():
    hparams = algorithm.Hyperparameters(langevin_steps=5, learning_rate=3e-3, kl_warmup_steps=200)
    model, x, seed = variational.LVAE(TWO_LAYERS, hparams, NUM_TRAIN), _batch(4)["image"], _seed(3, 1)
    for updates, beta in ((0, 0.0), (50, 0.25), (200, 1.0), (5000, 1.0)):
        model.generator_optimizer.iterations.assign(updates)
        terms = model.loss(x, seed)
        np.testing.assert_allclose(terms["objective"].numpy(),
                                   (terms["reconstruction"] + beta * terms["kl"]).numpy(), rtol=1e-6)
        np.testing.assert_allclose(terms["loss"].numpy(), (terms["reconstruction"] + terms["kl"]).numpy(), rtol=1e-6)
    no_warmup = variational.LVAE(TWO_LAYERS, FAST, NUM_TRAIN)
    assert float(no_warmup.kl_weight()) == 1.0
    with pytest.raises(ValueError, match="--kl_warmup_steps must be >= 0"):
        algorithm.Hyperparameters(kl_warmup_steps=-1)


@pytest.mark.slow
def test_the_all_layers_variant_keeps_its_own_prior_nets_that_learn_with_the_generator():
    model = variational.LVAEAllLayers(TWO_LAYERS, FAST, NUM_TRAIN)
    x, seed = _batch(4)["image"], _seed(3, 1)
    np.testing.assert_allclose(model.loss(x, seed)["kl"].numpy(),
                               _lvae_kl_by_hand(model, model.prior.conditionals[0], x, seed), rtol=1e-4)
    assert model.prior.trainable_variables
    before = [v.numpy() for v in model.prior.trainable_variables]
    model.train_step({"image": x, "index": tf.range(4, dtype=tf.int64)}, seed)
    assert all(np.any(b != v.numpy()) for b, v in zip(before, model.prior.trainable_variables))
    assert "prior" in model.checkpoint_items()


# ---------------------------------------------------------------------------- ABP

@pytest.mark.slow
def test_abp_has_no_encoder_and_reconstructs_by_langevin_from_noise():
    model = abp.ABP(TWO_LAYERS, FAST, NUM_TRAIN)
    assert model.encoder is None
    assert set(model.checkpoint_items()) == {"generator", "generator_optimizer"}
    x = _batch(4)["image"]
    seed = _seed(4, 4)
    recon = model.reconstruct(x, seed)
    assert set(recon) == {"L"}
    # With zero Langevin steps "L" is g(z_0), z_0 ~ N(0, I) drawn from the first half of the seed.
    init_seed = tf.random.experimental.stateless_split(seed, 2)[0]
    z0 = base.standard_normal_latents(TWO_LAYERS.latent_dims, 4, init_seed)
    np.testing.assert_allclose(model.reconstruct(x, seed, langevin_steps=0)["L"].numpy(),
                               model.generator(z0).numpy(), atol=1e-6)


@pytest.mark.slow
def test_persistent_chains_of_the_batch_move_and_the_others_stay():
    model = abp.PersistentABP(TWO_LAYERS, FAST, NUM_TRAIN)
    assert model.persistent_chain_bytes == NUM_TRAIN * sum(TWO_LAYERS.latent_dims) * 4
    batch = _batch()
    before = [c.numpy() for c in model.chains]
    for chain, d in zip(before, TWO_LAYERS.latent_dims):
        assert chain.shape == (NUM_TRAIN, d)
    model.train_step(batch, _seed(0, 0))
    in_batch = np.zeros(NUM_TRAIN, bool)
    in_batch[batch["index"].numpy()] = True
    for old, chain in zip(before, model.chains):
        new = chain.numpy()
        assert np.all(np.any(new[in_batch] != old[in_batch], axis=1))
        np.testing.assert_array_equal(new[~in_batch], old[~in_batch])


def test_persistent_abp_needs_the_train_split_size():
    with pytest.raises(ValueError, match="num_train_examples"):
        abp.PersistentABP(TWO_LAYERS, FAST, None)


@pytest.mark.slow
def test_persistent_abp_checkpoint_round_trip(tmp_path):
    model = abp.PersistentABP(TWO_LAYERS, FAST, NUM_TRAIN)
    batch = _batch()
    model.train_step(batch, _seed(0, 0))
    path = tf.train.Checkpoint(**model.checkpoint_items()).save(str(tmp_path / "ckpt"))

    restored = abp.PersistentABP(TWO_LAYERS, FAST, NUM_TRAIN)
    tf.train.Checkpoint(**restored.checkpoint_items()).restore(path).assert_consumed()
    for a, b in zip(model.chains, restored.chains):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.generator.weights, restored.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Optimiser state too: the next step is the same in both.
    out_a, out_b = model.train_step(batch, _seed(0, 1)), restored.train_step(batch, _seed(0, 1))
    for key in out_a:
        np.testing.assert_allclose(out_a[key].numpy(), out_b[key].numpy(), rtol=1e-6)
    for a, b in zip(model.chains, restored.chains):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
