"""The interface every method shares (`Method`), and the pieces the baselines have in common.

The baselines of the paper's Table 1: VAE, VLAE, LVAE, ABP (non-persistent) and ABP (persistent).

Every class has HiABP's interface (`train_step`, `reconstruct`, `sample`, `checkpoint_items`), the
same ladder Generator (eq. 6) and, where there is an encoder, the same ladder Encoder (eq. 7) from
`models.py`, the same Gaussian likelihood p(x | z) = N(g(z), sigma^2 I) with `hparams.sigma`
(constants dropped: -log p(x|z) = ||x - g(z)||^2 / (2 sigma^2); with a pixel mask, 1 = observed,
only observed pixels count), N(0, I) priors on the latents, and Adamax optimisers with
`hparams.learning_rate` built in `__init__`, so all methods of a table train on equal terms. The
randomness of a step is drawn statelessly from its `seed` (shape [2]); the noise of latent layer l
(0-based) is keyed by `stateless_fold_in(seed, l)`, as in `algorithm.initializing`. The [E]
reconstructions of the variational methods encode the image as given (an occluded image's hidden
pixels included), so their `mask` argument is unused; the [L] reconstructions of ABP use the mask in
the Langevin energy. `num_train_examples` is needed only by the persistent ABP.

tf.distribute: every `train_step` is `replica_step(batch, seed, mask)`; under a strategy each replica
runs `replica_step` with `batch_slice=(offset, global_size)` (see `algorithm`): the reparameterisation
and Langevin noise are drawn for the global batch and sliced, and batch means are this replica's
share of the global mean.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf.core import algorithm
from hiabp_tf.core import langevin
from hiabp_tf.core import models

tfd = tfp.distributions


# ------------------------------------------------------------------------------------ pure pieces

def standard_normal_latents(latent_dims, batch_size, seed, dtype=tf.float32, batch_slice=None):
    """[z^l ~ N(0, I) of shape (batch_size, d_l)], layer l drawn from fold_in(seed, l) (with a
    batch_slice: this replica's rows of the global batch's draw)."""
    return [langevin.per_example_normal([batch_size, d], tf.random.experimental.stateless_fold_in(seed, l),
                                        dtype, batch_slice)
            for l, d in enumerate(latent_dims)]


def reparameterize(mu, sigma, seed, layer, batch_slice=None):
    """z = mu + sigma * eps, eps ~ N(0, I) from fold_in(seed, layer); gradients reach mu and sigma."""
    eps = langevin.per_example_normal(
        tf.shape(mu), tf.random.experimental.stateless_fold_in(seed, layer), mu.dtype, batch_slice)
    return mu + sigma * eps


def gaussian_kl(q_mu, q_sigma, p_mu=0.0, p_sigma=1.0):
    """KL(N(q_mu, q_sigma^2) || N(p_mu, p_sigma^2)) of diagonal Gaussians, summed over the last axis."""
    q_mu = tf.convert_to_tensor(q_mu)
    p_mu = tf.cast(p_mu, q_mu.dtype)
    p_sigma = tf.cast(p_sigma, q_mu.dtype)
    kl = tfd.kl_divergence(tfd.Normal(q_mu, q_sigma), tfd.Normal(p_mu, p_sigma))
    return tf.reduce_sum(kl, axis=-1)


def reconstruction_nll(x, x_hat, sigma, mask=None):
    """-log N(x; x_hat, sigma^2 I) per example, constants dropped: ||m * (x - x_hat)||^2 / (2 sigma^2).

    The same term as in `algorithm.generator_loss` and the Langevin energy."""
    residual = x - x_hat
    if mask is not None:
        residual = residual * mask
    return tf.reduce_sum(tf.square(residual), axis=[1, 2, 3]) / (2.0 * sigma**2)


def precision_weighted_merge(mu_q, sigma_q, mu_p, sigma_p):
    """LVAE's merge of the bottom-up N(mu_q, sigma_q^2) and the top-down N(mu_p, sigma_p^2).

        sigma^2 = 1 / (sigma_q^-2 + sigma_p^-2),    mu = (mu_q sigma_q^-2 + mu_p sigma_p^-2) sigma^2

    i.e. the normalised product of the two densities. Returns (mu, sigma)."""
    precision_q = tf.math.reciprocal(tf.square(sigma_q))
    precision_p = tf.math.reciprocal(tf.square(sigma_p))
    variance = tf.math.reciprocal(precision_q + precision_p)
    mu = (mu_q * precision_q + mu_p * precision_p) * variance
    return mu, tf.sqrt(variance)


def _mse(x, x_hat, batch_slice=None):
    if batch_slice is None:
        return tf.reduce_mean(tf.square(x - x_hat))
    return algorithm.batch_mean(tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3]), batch_slice)


class Method(tf.Module):
    """The interface every method of Table 1 shares, so training, evaluation, the API, export,
    inpainting and the benchmark use any method by name without branching on it.

      train_step(batch, seed, mask)          one update; returns scalar metrics (compiled)
      replica_step(batch, seed, mask, batch_slice)   its body, per replica under tf.distribute
      reconstruct(x, seed, langevin_steps, mask)     {"E", "E+L"} / {"E"} / {"L"}: `reconstructions`
                                             (methods with "E+L" also take deterministic=True:
                                             z_0 = the encoder mean, Langevin without noise)
      sample(num_samples, seed)              unconditional samples from the model's prior
      reconstruct_from_noise(x, seed, langevin_steps, mask)   {"L"}: Langevin from z_0 ~ N(0, I) on
                                             the model's energy, the encoder unused (ABP's [L] for
                                             any method: Figure 1's same-model comparison)
      initial_latents(x, seed)               (z_0, mean): the initializer's sample and mean, lists
                                             over layers (None for methods without an encoder)
      energy_fn(x, mask)                     E(z) = -log p(x, z) (batch-summed, constants dropped)
      resample_layer(z, layer, seed)         z^layer redrawn from the prior given the other layers
      checkpoint_items()                     what a tf.train.Checkpoint saves
    """

    method = None
    reconstructions = ()
    has_encoder = True

    def initial_latents(self, x, seed):
        """Fast thinking: (z_0 ~ q_phi(z | x) without gradient, the encoder's mean mu_phi(x))."""
        z0, mus, _ = algorithm.initializing(self.encoder, x, seed)
        return z0, mus

    @tf.function
    def reconstruct_from_noise(self, x, seed, langevin_steps=None, mask=None):
        """{"L": g(z_T)}: every layer's z_0 ~ N(0, I), then `langevin_steps` (default T) Langevin steps
        on the test image with the training s and sigma; an encoder, if the method has one, is not
        used. The seed is split as in ABP's `reconstruct`, so ABP gives the same numbers either way."""
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z0 = standard_normal_latents(self.arch.latent_dims, tf.shape(x)[0], init_seed)
        steps = self.hparams.langevin_steps if langevin_steps is None else langevin_steps
        z_t, _ = langevin.langevin_dynamics(self.energy_fn(x, mask), z0, steps, self.hparams.step_size, langevin_seed,
                                            self.hparams.langevin_clip)
        return {"L": self.generator(z_t)}

    def energy_fn(self, x, mask=None) -> langevin.EnergyFn:
        """The Langevin energy of the paper's model: N(0, I) priors and the Gaussian likelihood."""
        return langevin.gaussian_generator_energy(self.generator, x, self.hparams.sigma, mask)

    def resample_layer(self, z, layer: int, seed):
        """A new draw of z^layer (0-based) from the prior given the other layers z: N(0, I) here."""
        return tf.random.stateless_normal(tf.shape(z[layer]), seed)


# ---------------------------------------------------------------------------------- shared base

class _Method(Method):
    """Networks and Adamax optimisers shared by the baselines; samples from N(0, I) per layer."""


    def __init__(self, arch: models.Architecture, hparams: algorithm.Hyperparameters,
                 num_train_examples: int | None = None, with_encoder: bool = True,
                 generator_class=models.Generator):
        super().__init__(name=self.method)
        self.arch, self.hparams = arch, hparams
        self.num_train_examples = num_train_examples
        self.generator, encoder = models.build_networks(arch, generator_class)
        self.encoder = encoder if with_encoder else None
        self.generator_optimizer = keras.optimizers.Adamax(hparams.learning_rate)
        self.encoder_optimizer = keras.optimizers.Adamax(hparams.learning_rate) if with_encoder else None

    def _build_optimizers(self):
        # Create the optimiser slots now, so a checkpoint restores them eagerly and completely.
        self.generator_optimizer.build(self.generator_variables)
        if self.encoder_optimizer is not None:
            self.encoder_optimizer.build(self.encoder.trainable_variables)

    @property
    def generator_variables(self):
        """Everything the generator's optimiser trains (the generative model's parameters)."""
        return self.generator.trainable_variables

    def checkpoint_items(self) -> dict:
        items = dict(generator=self.generator, generator_optimizer=self.generator_optimizer)
        if self.encoder is not None:
            items.update(encoder=self.encoder, encoder_optimizer=self.encoder_optimizer)
        return items

    @tf.function
    def sample(self, num_samples, seed):
        """Unconditional samples: every layer's z^l ~ N(0, I)."""
        return self.generator(standard_normal_latents(self.arch.latent_dims, num_samples, seed))
