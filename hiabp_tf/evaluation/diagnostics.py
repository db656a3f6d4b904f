"""Per-layer diagnostics of a trained model: which latent units it uses, what each layer costs in KL,
how far Langevin moves each layer, and whether the model fits its training images better than its
test images. They explain a baseline's score rather than rank it (docs/protocol.md, "Diagnosing the
baselines").

    layers = diagnose(model, train_images, test_images)      # {"layers": [...], "mse": {...}}

Per latent layer l (bottom first):
* **active units** (Burda, Grosse & Salakhutdinov 2016): the number of dimensions i with
  Cov_x(E_q[z_i | x]) > ACTIVE_THRESHOLD over the images, where E_q[z | x] is the encoder's mean
  (the LVAE's top-down posterior mean). A unit whose mean does not vary with x carries nothing.
* **KL**: KL(q(z^l | x) || p(z^l)) in nats per image, averaged over the images (the LVAE's
  conditional KL given the sampled layer above, as in its loss; HiABP's encoder against N(0, I),
  which is not in its loss).
* **rms mean** and **mean sigma** of the encoder's Gaussians (an encoder at the prior has rms mean
  0 and sigma 1).
* HiABP only, with the training T: **chain move**, the root mean square per dimension of
  z_T - z_0; **chain spread**, of z_T(a) - z_T(b) for two chains from independent z_0 draws of
  the same image (sqrt(2) = 1.41 if the chain forgets nothing of its random start and the posterior
  is N(0, I), 0 if every chain ends at one point); **MSE with z^l at the mean**, the [E+L] MSE when
  layer l of z_T is replaced by the encoder's mean (how much the generator depends on that layer).
And per model: the [E] (and [E+L]) MSE on training images beside test images (over-fitting shows
as a training MSE well below the test MSE).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hiabp_tf.core import algorithm
from hiabp_tf.methods import base

# Burda et al.'s threshold on the variance over x of a unit's posterior mean.
ACTIVE_THRESHOLD = 0.01


def active_units(means, threshold: float = ACTIVE_THRESHOLD) -> int:
    """The number of columns of `means` (images x dimensions: E_q[z | x] per image) whose variance
    over the images exceeds `threshold`."""
    means = np.asarray(means, np.float64)
    return int(np.sum(np.var(means, axis=0) > threshold))


def _rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(values, np.float64)))))


def encoder_layers(model, x, seed) -> list[dict] | None:
    """Per layer: {"mean": E_q[z^l | x] (images x d_l), "kl": per-image KL, "sigma": the encoder's
    sigma (images x d_l, None for the LVAE, whose merged sigma is internal)}; None without an encoder."""
    if not model.has_encoder or getattr(model, "encoder", None) is None:
        return None
    if hasattr(model, "posterior"):  # LVAE: top-down inference on the generative model's own path
        means, _ = model.posterior(x, None)
        _, kls = model.posterior(x, seed)
        return [{"mean": m.numpy(), "kl": k.numpy(), "sigma": None} for m, k in zip(means, kls)]
    mus, log_sigmas = model.encoder(x)
    layers = []
    for mu, log_sigma in zip(mus, log_sigmas):
        mu, sigma = tf.cast(mu, tf.float32), tf.exp(tf.cast(log_sigma, tf.float32))
        layers.append({"mean": mu.numpy(), "kl": base.gaussian_kl(mu, sigma).numpy(), "sigma": sigma.numpy()})
    return layers


def chain_layers(model, x, seed) -> list[dict]:
    """HiABP's Langevin chains per layer: chain move, chain spread and the [E+L] MSE with the layer
    at the encoder's mean (see the module docstring), from two chains per image."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.constant(seed, tf.int32), 4))
    chains = []
    for init_seed, langevin_seed in ((seeds[0], seeds[1]), (seeds[2], seeds[3])):
        z0, mus, _ = algorithm.initializing(model.encoder, x, init_seed)
        z_t, _ = algorithm.improving(model.generator, x, z0, model.hparams, langevin_seed)
        chains.append((z0, z_t, mus))
    (z0, z_t, mus), (_, z_t_b, _) = chains
    layers = []
    for l in range(len(z_t)):
        at_mean = list(z_t)
        at_mean[l] = tf.cast(mus[l], z_t[l].dtype)
        x_hat = model.generator(at_mean)
        layers.append({"chain_move": _rms(z_t[l] - z0[l]), "chain_spread": _rms(z_t[l] - z_t_b[l]),
                       "mse_EL_layer_at_mean": float(tf.reduce_mean(tf.square(x - x_hat)))})
    return layers


def _reconstruction_mse(model, x, seed) -> dict:
    recon = model.reconstruct(x, tf.constant(seed, tf.int32))
    return {key: float(tf.reduce_mean(tf.square(x - x_hat))) for key, x_hat in recon.items()}


def diagnose(model, train_images, test_images, seed=(0, 7)) -> dict:
    """The diagnostics of `model` (see the module docstring) on arrays of training and test images:
    {"layers": [per layer: dims, active_units, kl, rms_mean, mean_sigma, and HiABP's chain entries],
    "mse": {"train": {reconstruction: MSE}, "test": {...}}}. Units, KL and chains are measured on
    the test images."""
    x_test = tf.convert_to_tensor(test_images, tf.float32)
    x_train = tf.convert_to_tensor(train_images, tf.float32)
    seed = tf.constant(seed, tf.int32)
    layers = [{"layer": l + 1, "dims": int(d)} for l, d in enumerate(model.arch.latent_dims)]
    encoded = encoder_layers(model, x_test, seed)
    if encoded is not None:
        for entry, layer in zip(layers, encoded):
            entry.update(active_units=active_units(layer["mean"]), kl=float(np.mean(layer["kl"])),
                         rms_mean=_rms(layer["mean"]),
                         mean_sigma=None if layer["sigma"] is None else float(np.mean(layer["sigma"])))
    if model.method == "hiabp":
        for entry, layer in zip(layers, chain_layers(model, x_test, seed)):
            entry.update(layer)
    return {"layers": layers, "mse": {"train": _reconstruction_mse(model, x_train, seed),
                                      "test": _reconstruction_mse(model, x_test, seed)}}
