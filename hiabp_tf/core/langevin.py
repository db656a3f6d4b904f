"""Langevin dynamics (eq. 3): the "Improving" step of Algorithm 1, the slow thinking.

    z_{t+1} = z_t - s^2/2 * dE/dz(z_t) + s * eps_t,      eps_t ~ N(0, I),  t = 0..T-1

where E(z) = -log p(x, z) + const is the energy of the latents given the observation. The dynamics
runs on all L latent layers at once and knows nothing of networks: it takes an energy function of
the list of latents, so it can be tested on targets with a closed-form stationary distribution.

The energy must be summed over the batch, not averaged: a mean would divide every example's gradient
by the batch size (a known bug in public ABP code) and make the dynamics depend on the batch size.

Under tf.distribute each replica holds rows [offset, offset + b) of a global batch of G examples and
passes `batch_slice=(offset, G)`: the noise is then drawn for the whole global batch and the replica
keeps its rows (`per_example_normal`), so every example gets the noise it would get on one device.
"""

from __future__ import annotations

from typing import Callable
from typing import Sequence

import tensorflow as tf

EnergyFn = Callable[[list], tf.Tensor]


def per_example_normal(shape, seed, dtype=tf.float32, batch_slice=None) -> tf.Tensor:
    """N(0, I) noise of `shape` (batch first), drawn statelessly from `seed`.

    batch_slice=None: `tf.random.stateless_normal(shape, seed)`. batch_slice=(offset, global_size):
    the draw is for the global batch (global_size rows) and rows [offset, offset + shape[0]) are
    returned, i.e. the rows a replica holding that slice of the global batch would get on one device.
    """
    if batch_slice is None:
        return tf.random.stateless_normal(shape, seed, dtype=dtype)
    offset, global_size = batch_slice
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    rest = shape[1:]
    noise = tf.random.stateless_normal(
        tf.concat([[tf.cast(global_size, tf.int32)], rest], 0), seed, dtype=dtype)
    return tf.slice(noise, tf.concat([[tf.cast(offset, tf.int32)], tf.zeros_like(rest)], 0), shape)


def langevin_dynamics(energy_fn: EnergyFn, z0: Sequence[tf.Tensor], num_steps, step_size,
                      seed, clip=None, batch_slice=None, unroll=False,
                      noise: bool = True) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Runs `num_steps` Langevin steps from the latents `z0`.

    Args:
      energy_fn: maps a list of latents [z^1, ..., z^L] to the batch-summed energy (a scalar).
      z0: initial latents, a list of (B, d_l) tensors.
      num_steps: T (a Python int or scalar int tensor; T = 0 returns z0).
      step_size: s.
      seed: int32 tensor of shape [2]; the noise of step t is drawn statelessly from (seed, t), so
        a run is reproducible and independent of how the loop is compiled.
      clip: if given, every component of dE/dz is clipped to [-clip, clip] (off by default: the
        paper has no clipping; an opt-in guard for chains that diverge).
      batch_slice: (offset, global_size) when z0 holds rows [offset, offset + B) of a larger global
        batch (one replica under tf.distribute): the noise is drawn for the global batch and sliced
        (see `per_example_normal`). None (one device): the noise is drawn for z0's own shape.
      noise: False drops the noise term s * eps_t: gradient descent on the energy with step s^2/2,
        the mode-seeking variant of the test-time [E+L] (the protocol reports both).
      unroll: trace the steps as straight-line code (num_steps must be a Python int) instead of a
        graph while-loop: the same values up to float round-off, a T-times larger graph, and no
        faster on the CPU (measured by the benchmark, results/performance.md), so off by default.
    Returns:
      (z_T as a list, energy at z_0): the energy at z_0 comes for free from the first gradient.
    Called inside a `tf.function` (the training step, or `tf.function(langevin_dynamics)`), the T
    steps become one graph `while` loop with no Python overhead per step.
    """
    z0 = [tf.convert_to_tensor(z) for z in z0]
    step_size = tf.cast(step_size, z0[0].dtype)
    seed = tf.convert_to_tensor(seed)

    def energy_and_grad(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            energy = energy_fn(z)
        return energy, tape.gradient(energy, z, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def step(t, z, energy_0):
        energy, grads = energy_and_grad(z)
        if clip is not None:
            grads = [tf.clip_by_value(g, -clip, clip) for g in grads]
        energy_0 = tf.where(tf.equal(t, 0), energy, energy_0)
        step_seed = tf.random.experimental.stateless_fold_in(seed, t)
        new_z = []
        for layer, (z_l, g_l) in enumerate(zip(z, grads)):
            z_l = z_l - 0.5 * step_size**2 * g_l
            if noise:
                z_l += step_size * per_example_normal(
                    tf.shape(z_l), tf.random.experimental.stateless_fold_in(step_seed, layer), z_l.dtype, batch_slice)
            new_z.append(z_l)
        return t + 1, new_z, energy_0

    if unroll:
        state = (tf.constant(0), z0, energy_fn(z0) if int(num_steps) == 0 else tf.zeros((), z0[0].dtype))
        for _ in range(int(num_steps)):
            state = step(*state)
        return list(state[1]), state[2]
    num_steps = tf.convert_to_tensor(num_steps, tf.int32)
    # Energy at z_0 when T = 0 (no step computes it).
    energy_0 = tf.cond(num_steps > 0, lambda: tf.zeros((), z0[0].dtype), lambda: energy_fn(z0))
    _, z_t, energy_0 = tf.while_loop(
        lambda t, z, e: t < num_steps, step, (tf.constant(0), z0, energy_0),
        shape_invariants=(tf.TensorShape([]), [z.shape for z in z0], tf.TensorShape([])))
    return list(z_t), energy_0


def gaussian_generator_energy(generator, x, sigma, mask=None) -> EnergyFn:
    """E(z) = sum_batch [ sum_l ||z^l||^2 / 2 + ||m * (x - g(z))||^2 / (2 sigma^2) ].

    This is -log p(x, z) up to a constant for the Gaussian prior and likelihood of the paper; with a
    pixel mask m (1 = observed) only observed pixels enter the reconstruction term.
    """
    def energy(z):
        residual = x - generator(z)
        if mask is not None:
            residual = residual * mask
        prior = tf.add_n([tf.reduce_sum(tf.square(z_l)) for z_l in z]) / 2.0
        return prior + tf.reduce_sum(tf.square(residual)) / (2.0 * sigma**2)
    return energy
