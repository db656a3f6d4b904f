"""Algorithm 1 of the paper, one piece per function: Initializing, Improving, Learning.

    initializing  z_0 = mu_phi(x) + sigma_phi(x) * eps for every layer l         (eq. 2, 7)
    improving     T Langevin steps on E(z) = sum_l ||z^l||^2/2 + ||x - g(z)||^2/(2 sigma^2)   (eq. 3)
    learning      theta on -log p(x, z_T) (eq. 4); phi on -log q_phi(stop_gradient(z_T) | x) (eq. 5)

`hiabp_tf.methods.hiabp.HiABP` ties them into a compiled training step with two Adamax optimisers
(IABP is HiABP with L = 1).

Every function takes an optional `batch_slice=(offset, global_size)` for tf.distribute: the batch is
then one replica's rows [offset, offset + b) of a global batch, noise is drawn for the global batch
and sliced (`langevin.per_example_normal`), and batch means become this replica's share of the
global mean (sum over its rows / global_size), so that summing over replicas (the all-reduce of
gradients and metrics) gives exactly what one device computes on the global batch. None (one device)
computes as before.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf.core import langevin

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Paper defaults ("Training Details")."""

    langevin_steps: int = 15  # T
    step_size: float = 0.15  # s
    sigma: float = 0.3  # standard deviation of the Gaussian likelihood p(x | z)
    learning_rate: float = 3e-4  # eta_theta = eta_phi, Adamax
    langevin_clip: float | None = None  # optional clip of dE/dz per component (not in the paper)
    kl_warmup_steps: int = 0  # the variational baselines: KL weight 0 -> 1 over this many updates (LVAE's)

    def __post_init__(self):
        if self.langevin_steps < 0:
            raise ValueError(f"--langevin_steps (T) must be >= 0, got {self.langevin_steps}.")
        if not self.step_size > 0:
            raise ValueError(f"--step_size (s) must be > 0, got {self.step_size}.")
        if not self.sigma > 0:
            raise ValueError(f"--sigma must be > 0, got {self.sigma}.")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}.")
        if self.langevin_clip is not None and not self.langevin_clip > 0:
            raise ValueError(f"--langevin_clip must be > 0 when given, got {self.langevin_clip}.")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"--kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}.")


def batch_mean(per_example, batch_slice=None):
    """Mean over the batch; with a batch_slice, this replica's share of the global batch's mean
    (sum over its rows / global_size), so that the sum over replicas is the global mean."""
    if batch_slice is None:
        return tf.reduce_mean(per_example)
    return tf.reduce_sum(per_example) / tf.cast(batch_slice[1], per_example.dtype)


def initializing(encoder, x, seed, batch_slice=None):
    """Fast thinking: z_0 ~ q_phi(z | x) by reparameterisation (eq. 2, 7).

    Returns (z_0, mus, log_sigmas), each a list over layers; z_0 carries no gradient (Langevin starts
    from it, and eq. 5 trains the encoder on z_T, not on z_0).
    """
    mus, log_sigmas = encoder(x)
    z0 = []
    for layer, (mu, log_sigma) in enumerate(zip(mus, log_sigmas)):
        eps = langevin.per_example_normal(
            tf.shape(mu), tf.random.experimental.stateless_fold_in(seed, layer), mu.dtype, batch_slice)
        z0.append(tf.stop_gradient(mu + tf.exp(log_sigma) * eps))
    return z0, mus, log_sigmas


def improving(generator, x, z0, hparams: Hyperparameters, seed, mask=None, langevin_steps=None,
              batch_slice=None, noise: bool = True):
    """Slow thinking: T Langevin steps from z_0 on the posterior p_theta(z | x) (eq. 3).

    Returns (z_T, batch-summed energy at z_0). With a mask only observed pixels count. noise=False:
    the steps without their noise (gradient descent on the energy, a test-time variant).
    """
    steps = hparams.langevin_steps if langevin_steps is None else langevin_steps
    energy_fn = langevin.gaussian_generator_energy(generator, x, hparams.sigma, mask)
    return langevin.langevin_dynamics(energy_fn, z0, steps, hparams.step_size, seed, hparams.langevin_clip,
                                      batch_slice, noise=noise)


def generator_loss(generator, x, z, sigma, mask=None, batch_slice=None):
    """Eq. 4: -log p_theta(x, z) per example, averaged over the batch (constants dropped).

    Per example this equals the Langevin energy, so its value is also the energy at z_T.
    Returns (loss, g(z)).
    """
    x_hat = generator(z)
    residual = x - x_hat
    if mask is not None:
        residual = residual * mask
    reconstruction = tf.reduce_sum(tf.square(residual), axis=[1, 2, 3]) / (2.0 * sigma**2)
    prior = tf.add_n([tf.reduce_sum(tf.square(z_l), axis=1) for z_l in z]) / 2.0
    return batch_mean(reconstruction + prior, batch_slice), x_hat


def encoder_loss(mus, log_sigmas, z_target, batch_slice=None):
    """Eq. 5: -log N(stop_gradient(z_T); mu_phi(x), sigma_phi(x)^2), summed over layers and
    dimensions, averaged over the batch. Equals the paper's ||z - mu||^2/(2 sigma^2) + log sigma
    up to the constant log(2 pi)/2 per dimension. No gradient reaches z_T or the generator.
    """
    nll = []
    for mu, log_sigma, z in zip(mus, log_sigmas, z_target):
        q = tfd.Normal(loc=mu, scale=tf.exp(log_sigma))
        nll.append(-tf.reduce_sum(q.log_prob(tf.stop_gradient(z)), axis=1))
    return batch_mean(tf.add_n(nll), batch_slice)


def mse_per_example(x, x_hat):
    return tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3])
