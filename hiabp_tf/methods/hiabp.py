"""HiABP (IABP for L = 1): Algorithm 1 of the paper as a method of Table 1.

Each training step initializes z_0 with the encoder (fast thinking), improves it with T Langevin
steps (slow thinking), and learns the generator on the improved z_T (eq. 4) and the encoder on it
as a target (eq. 5); the pieces are in `hiabp_tf.core.algorithm`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.methods import base


class HiABP(base.Method):
    """Generator, encoder, their Adamax optimisers and Algorithm 1's training step."""

    method = "hiabp"
    # Reconstructions `reconstruct` returns; Table 1 reports IABP both ways ([E] and [E+L]).
    reconstructions = ("E", "E+L")

    def __init__(self, arch: models.Architecture, hparams: algorithm.Hyperparameters, num_train_examples=None,
                 networks=None):
        """`networks`: an optional built (generator, encoder) pair with the interfaces of
        models.Generator / models.Encoder, used instead of the ladder networks of `arch` (the
        benchmark's fixed reference pair)."""
        del num_train_examples  # only the persistent-chain baseline needs it
        super().__init__(name="hiabp")
        self.arch, self.hparams = arch, hparams
        self.generator, self.encoder = networks if networks is not None else models.build_networks(arch)
        self.generator_optimizer = keras.optimizers.Adamax(hparams.learning_rate)
        self.encoder_optimizer = keras.optimizers.Adamax(hparams.learning_rate)
        # Create the optimiser slots now, so a checkpoint restores them eagerly and completely.
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.encoder_optimizer.build(self.encoder.trainable_variables)

    def checkpoint_items(self) -> dict:
        return dict(generator=self.generator, encoder=self.encoder,
                    generator_optimizer=self.generator_optimizer,
                    encoder_optimizer=self.encoder_optimizer)

    @tf.function
    def train_step(self, batch, seed, mask=None):
        """One iteration of Algorithm 1 on a batch {"image": (B, H, W, C), ...}; returns metrics."""
        return self.replica_step(batch, seed, mask)

    def replica_step(self, batch, seed, mask=None, batch_slice=None):
        """The body of `train_step`; under tf.distribute, one replica's part of it (called inside
        `strategy.run` with its batch_slice; the optimisers all-reduce the gradients)."""
        x = batch["image"]
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        batch_size = tf.cast(tf.shape(x)[0] if batch_slice is None else batch_slice[1], x.dtype)
        # The encoder's forward pass is shared by Initializing and eq. 5; the Langevin loop runs
        # with the tape paused so it is not recorded.
        with tf.GradientTape() as encoder_tape:
            z0, mus, log_sigmas = algorithm.initializing(self.encoder, x, init_seed, batch_slice)
            with encoder_tape.stop_recording():
                z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, mask,
                                          batch_slice=batch_slice)
            loss_phi = algorithm.encoder_loss(mus, log_sigmas, z_t, batch_slice)
        with tf.GradientTape() as generator_tape:
            loss_theta, x_hat = algorithm.generator_loss(self.generator, x, z_t, self.hparams.sigma, mask, batch_slice)
        self.generator_optimizer.apply_gradients(zip(
            generator_tape.gradient(loss_theta, self.generator.trainable_variables),
            self.generator.trainable_variables))
        self.encoder_optimizer.apply_gradients(zip(
            encoder_tape.gradient(loss_phi, self.encoder.trainable_variables),
            self.encoder.trainable_variables))
        return {
            "generator_loss": loss_theta,
            "encoder_loss": loss_phi,
            "energy_z0": energy_0 / batch_size,
            "energy_zT": loss_theta,  # eq. 4 is the energy at z_T, per example
            "train_mse": algorithm.batch_mean(algorithm.mse_per_example(x, x_hat), batch_slice),
        }

    @tf.function
    def reconstruct(self, x, seed, langevin_steps=None, mask=None, deterministic=False):
        """Test-time reconstructions: {"E": g(mu_phi(x)), "E+L": g(z_T)} with z_0 from the encoder.

        As the paper (and training): z_0 a sample of q_phi(z | x), T noisy Langevin steps. With
        `deterministic`, the mode-seeking variant: z_0 = mu_phi(x) and the steps without noise."""
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z0, mus, _ = algorithm.initializing(self.encoder, x, init_seed)
        z_t, _ = algorithm.improving(self.generator, x, mus if deterministic else z0, self.hparams, langevin_seed,
                                     mask, langevin_steps, noise=not deterministic)
        return {"E": self.generator(mus), "E+L": self.generator(z_t)}

    @tf.function
    def sample(self, num_samples, seed):
        """Unconditional samples: every layer's z^l ~ N(0, I)."""
        z = [tf.random.stateless_normal([num_samples, d], tf.random.experimental.stateless_fold_in(seed, l))
             for l, d in enumerate(self.arch.latent_dims)]
        return self.generator(z)
