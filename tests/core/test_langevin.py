"""Tests for hiabp_tf.core.langevin: Langevin dynamics (eq. 3) on targets with a closed form.

The target throughout is the linear-Gaussian model x = W z + noise(sigma), z ~ N(0, I), whose
posterior p(z | x) is Gaussian with precision P = I + W^T W / sigma^2 and mean P^{-1} W^T x / sigma^2,
and whose energy gradient is z + W^T (W z - x) / sigma^2.
"""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from hiabp_tf.core import langevin

# ---------------------------------------------------------------------------- the linear target

SIGMA = 0.5
IMAGE_SHAPE = (2, 2, 1)  # 4 "pixels" for a 2-D latent


def _linear_target():
    """W (4, 2) built so that P has eigenvalues 2 and 10 along rotated axes, and one observation x."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 2)))  # orthonormal columns
    angle = np.pi / 6
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    precision = rot @ np.diag([2.0, 10.0]) @ rot.T
    r = np.real(scipy.linalg.sqrtm(SIGMA**2 * (precision - np.eye(2))))  # R^T R = sigma^2 (P - I)
    w = q @ r
    x = np.array([0.7, -0.3, 0.4, 1.1])
    np.testing.assert_allclose(np.eye(2) + w.T @ w / SIGMA**2, precision, atol=1e-10)
    mean = np.linalg.solve(precision, w.T @ x / SIGMA**2)
    return w, x, precision, mean


def _hand_energy(w, x, sigma=SIGMA):
    """Batch-summed energy sum_b ||z_b||^2/2 + ||x - W z_b||^2/(2 sigma^2), written by hand."""
    w_t, x_t = tf.constant(w, tf.float32), tf.constant(x, tf.float32)

    def energy(z):
        residual = x_t - tf.matmul(z[0], w_t, transpose_b=True)
        return tf.reduce_sum(tf.square(z[0])) / 2 + tf.reduce_sum(tf.square(residual)) / (2 * sigma**2)
    return energy


def _linear_generator(w):
    """g(z) = W z^1 reshaped to (B, 2, 2, 1): the linear model as a generator of 'images'."""
    w_t = tf.constant(w, tf.float32)
    return lambda z: tf.reshape(tf.matmul(z[0], w_t, transpose_b=True), (-1,) + IMAGE_SHAPE)


def _analytic_grad(w, x, z, sigma=SIGMA, rows=None):
    """Per-example gradient z + W^T (W z - x) / sigma^2 (only the pixels `rows` if given)."""
    if rows is not None:
        w, x = w[rows], x[rows]
    return z + (z @ w.T - x) @ w / sigma**2


def _noise(seed, step, layer, shape):
    """The noise eps_t of layer `layer` at step `step`, drawn as langevin_dynamics draws it."""
    step_seed = tf.random.experimental.stateless_fold_in(tf.constant(seed, tf.int32), step)
    return tf.random.stateless_normal(
        shape, tf.random.experimental.stateless_fold_in(step_seed, layer)).numpy()


_run = tf.function(langevin.langevin_dynamics)


# ---------------------------------------------------------------------------- stationary law

def _check_stationary(energy_fn, w, x, precision, mean):
    """Runs many chains on one x and compares their spread with the exact (discretised) posterior."""
    num_chains, num_steps, s = 10000, 200, 0.3
    z0 = tf.fill((num_chains, 2), 3.0)  # far from the mode: the chains must also mix
    (z_t,), _ = _run(energy_fn, [z0], num_steps, s, tf.constant([3, 4], tf.int32))
    z_t = z_t.numpy().astype(np.float64)

    # Unadjusted Langevin on a Gaussian is z <- A z + const + s eps with A = I - s^2 P / 2: its
    # stationary law is Gaussian with the exact mean and the covariance C = A C A^T + s^2 I.
    a = np.eye(2) - s**2 * precision / 2
    cov_discrete = scipy.linalg.solve_discrete_lyapunov(a, s**2 * np.eye(2))
    cov_exact = np.linalg.inv(precision)
    # Slowest mode contracts by (1 - s^2 * 2 / 2) = 0.91 a step: 0.91^200 ~ 6e-9, so 200 steps mix.
    assert np.max(np.abs(np.linalg.eigvals(a))) ** num_steps < 1e-6

    sample_mean = z_t.mean(axis=0)
    sample_cov = np.cov(z_t, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(cov_discrete), np.diag(cov_discrete)))
    # Mean: the standard error is sqrt(C_ii / N) ~ 0.006; allow 5 standard errors.
    np.testing.assert_array_less(np.abs(sample_mean - mean), 5 * np.sqrt(np.diag(cov_discrete) / num_chains))
    # Covariance vs the discretised stationary covariance: the relative standard error of a
    # (normalised) sample covariance entry is <= sqrt(2 / N) = 1.4%; allow 5%.
    np.testing.assert_array_less(np.abs(sample_cov - cov_discrete) / scale, 0.05)
    # That tight check discriminates: at s = 0.3 the discretisation bias (29% of the variance along
    # the stiff axis, 12% in the normalisation above) is larger than its tolerance ...
    assert np.max(np.abs(cov_discrete - cov_exact) / scale) > 0.1
    # ... and the true posterior covariance P^{-1} is matched only to within that O(s^2) bias
    # (about 15% here, normalised as above) plus sampling error: 25%.
    exact_scale = np.sqrt(np.outer(np.diag(cov_exact), np.diag(cov_exact)))
    np.testing.assert_array_less(np.abs(sample_cov - cov_exact) / exact_scale, 0.25)


@pytest.mark.slow
def test_stationary_distribution_matches_linear_gaussian_posterior():
    """Chains under a hand-written energy reach the closed-form (discretised) Gaussian posterior."""
    w, x, precision, mean = _linear_target()
    _check_stationary(_hand_energy(w, x), w, x, precision, mean)


@pytest.mark.slow
def test_gaussian_generator_energy_has_the_closed_form_posterior():
    """gaussian_generator_energy with a linear 'generator' gives the same closed-form posterior."""
    w, x, precision, mean = _linear_target()
    x_image = tf.constant(x.reshape((1,) + IMAGE_SHAPE), tf.float32)  # broadcast to every chain
    energy_fn = langevin.gaussian_generator_energy(_linear_generator(w), x_image, SIGMA)
    # The helper is the hand-written energy, value for value (float32 sums: rtol 1e-5).
    z = [tf.random.stateless_normal((6, 2), [0, 1])]
    np.testing.assert_allclose(energy_fn(z).numpy(), _hand_energy(w, x)(z).numpy(), rtol=1e-5)
    _check_stationary(energy_fn, w, x, precision, mean)


# ---------------------------------------------------------------------------- energy and mask

def _grad(energy_fn, z):
    z = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        energy = energy_fn([z])
    return tape.gradient(energy, z).numpy()


def test_mask_removes_occluded_pixels_from_the_energy():
    """With a mask, occluded pixels do not affect the gradient, which is the closed form on observed rows."""
    w, x, _, _ = _linear_target()
    observed = np.array([True, False, True, False])
    mask = tf.constant(observed.reshape((1,) + IMAGE_SHAPE), tf.float32)
    z = np.random.default_rng(1).normal(size=(5, 2))
    x_changed = np.where(observed, x, x + np.array([0.0, 9.0, 0.0, -4.0]))  # only occluded pixels differ

    def grad_for(x_values, mask_):
        x_image = tf.constant(np.tile(x_values.reshape((1,) + IMAGE_SHAPE), (5, 1, 1, 1)), tf.float32)
        return _grad(langevin.gaussian_generator_energy(_linear_generator(w), x_image, SIGMA, mask_), z)

    g = grad_for(x, mask)
    # Occluded pixels must not enter at all: bit-for-bit the same gradient (masked residual is 0).
    np.testing.assert_array_equal(grad_for(x_changed, mask), g)
    # float32 vs float64 closed form, gradients of size ~10: rtol 1e-5, atol 1e-5.
    np.testing.assert_allclose(g, _analytic_grad(w, x, z, rows=observed), rtol=1e-5, atol=1e-5)
    # Control: without the mask the occluded pixels do change the gradient.
    assert np.max(np.abs(grad_for(x_changed, None) - grad_for(x, None))) > 1.0


# ---------------------------------------------------------------------------- one step, exactly

def test_one_step_is_gradient_step_plus_scaled_noise():
    """T = 1 gives z_1 = z_0 - s^2/2 * (z + W^T (W z - x)/sigma^2) + s * eps_0 with the reproduced eps_0."""
    w, x, _, _ = _linear_target()
    z0 = np.random.default_rng(2).normal(size=(3, 2))
    s, seed = 0.15, [7, 8]
    (z1,), energy_0 = langevin.langevin_dynamics(_hand_energy(w, x), [tf.constant(z0, tf.float32)], 1, s, seed)
    expected = z0 - s**2 / 2 * _analytic_grad(w, x, z0) + s * _noise(seed, 0, 0, (3, 2))
    # float32 arithmetic on O(1) values: atol 1e-5.
    np.testing.assert_allclose(z1.numpy(), expected, atol=1e-5)
    hand_energy_0 = np.sum(z0**2) / 2 + np.sum((x - z0 @ w.T) ** 2) / (2 * SIGMA**2)
    np.testing.assert_allclose(energy_0.numpy(), hand_energy_0, rtol=1e-5)


def test_two_steps_use_fresh_noise_per_step():
    """T = 2 applies the exact update twice, with the noise of step 1 drawn from (seed, 1)."""
    w, x, _, _ = _linear_target()
    z0 = np.random.default_rng(3).normal(size=(3, 2))
    s, seed = 0.15, [5, 6]
    (z2,), _ = langevin.langevin_dynamics(_hand_energy(w, x), [tf.constant(z0, tf.float32)], 2, s, seed)
    z = z0
    for t in range(2):
        z = z - s**2 / 2 * _analytic_grad(w, x, z) + s * _noise(seed, t, 0, (3, 2))
    np.testing.assert_allclose(z2.numpy(), z, atol=1e-5)  # float32 round-off, as above


def test_example_dynamics_do_not_depend_on_batch():
    """Example 0's drift is -s^2/2 times its own gradient, alone or in a batch of 8 (energy is summed)."""
    w, x, _, _ = _linear_target()
    rng = np.random.default_rng(4)
    z_batch = rng.normal(size=(8, 2))
    x_batch = np.concatenate([x[None], rng.normal(size=(7, 4))])  # other examples see other images
    s, seed = 0.15, [1, 2]
    # A non-linear generator, so the drift is not a linear function shared by all examples.
    w_t = tf.constant(w, tf.float32)
    def generator(z):
        return tf.reshape(tf.tanh(tf.matmul(z[0], w_t, transpose_b=True)), (-1,) + IMAGE_SHAPE)

    def drift(z0, x_values):
        x_image = tf.constant(x_values.reshape((-1,) + IMAGE_SHAPE), tf.float32)
        energy_fn = langevin.gaussian_generator_energy(generator, x_image, SIGMA)
        (z1,), _ = langevin.langevin_dynamics(energy_fn, [tf.constant(z0, tf.float32)], 1, s, seed)
        return z1.numpy() - z0 - s * _noise(seed, 0, 0, z0.shape)

    alone, in_batch = drift(z_batch[:1], x_batch[:1]), drift(z_batch, x_batch)[:1]
    np.testing.assert_allclose(in_batch, alone, atol=1e-6)  # float32 round-off on drifts ~ 1e-2
    # And the drift is the full per-example gradient step (a batch-mean energy would give 1/8 of it).
    z = z_batch[:1]
    pre = z @ w.T
    grad = z + ((np.tanh(pre) - x_batch[:1]) * (1 - np.tanh(pre) ** 2)) @ w / SIGMA**2
    np.testing.assert_allclose(alone, -s**2 / 2 * grad, atol=1e-6)
    assert np.max(np.abs(alone)) > 1e-3  # the drift is large enough for the 1e-6 checks to mean something


def test_gaussian_generator_energy_sums_over_the_batch():
    """The batch energy is the sum, not the mean, of the per-example energies."""
    w, _, _, _ = _linear_target()
    rng = np.random.default_rng(5)
    z = [tf.constant(rng.normal(size=(4, 2)), tf.float32)]
    x_image = tf.constant(rng.normal(size=(4,) + IMAGE_SHAPE), tf.float32)
    energy_fn = langevin.gaussian_generator_energy(_linear_generator(w), x_image, SIGMA)
    per_example = [langevin.gaussian_generator_energy(_linear_generator(w), x_image[i:i + 1], SIGMA)(
        [z[0][i:i + 1]]).numpy() for i in range(4)]
    np.testing.assert_allclose(energy_fn(z).numpy(), np.sum(per_example), rtol=1e-5)  # float32 sums


# ---------------------------------------------------------------------------- T = 0, layers, seeds

def _three_layer_energy():
    """A coupled 3-layer energy with latent sizes 2, 3, 5: prior plus a linear 'reconstruction'."""
    rng = np.random.default_rng(6)
    mats = [tf.constant(rng.normal(size=(d, 4)), tf.float32) for d in (2, 3, 5)]
    x = tf.constant(rng.normal(size=(4, 4)), tf.float32)

    def energy(z):
        recon = tf.add_n([tf.matmul(z_l, m) for z_l, m in zip(z, mats)])
        return tf.add_n([tf.reduce_sum(tf.square(z_l)) for z_l in z]) / 2 + tf.reduce_sum(tf.square(x - recon))
    return energy


def _three_layer_z0():
    return [tf.random.stateless_normal((4, d), [9, d]) for d in (2, 3, 5)]


def test_zero_steps_return_z0_and_its_energy():
    """T = 0 returns the latents unchanged and the energy at z_0, eagerly and compiled."""
    energy_fn, z0 = _three_layer_energy(), _three_layer_z0()
    for run in (langevin.langevin_dynamics, _run):
        z_t, energy_0 = run(energy_fn, z0, 0, 0.1, [1, 1])
        assert len(z_t) == 3
        for a, b in zip(z_t, z0):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_allclose(energy_0.numpy(), energy_fn(z0).numpy(), rtol=1e-6)


def test_multi_layer_every_layer_moves_and_seed_controls_noise():
    """With L = 3 layers every layer moves, keeps its shape, the same seed reproduces the run, another differs."""
    energy_fn, z0 = _three_layer_energy(), _three_layer_z0()
    z_a, energy_a = _run(energy_fn, z0, 5, 0.1, tf.constant([1, 2]))
    z_b, energy_b = _run(energy_fn, z0, 5, 0.1, tf.constant([1, 2]))
    z_c, _ = _run(energy_fn, z0, 5, 0.1, tf.constant([3, 4]))
    for l in range(3):
        assert z_a[l].shape == z0[l].shape
        assert np.min(np.abs(z_a[l].numpy() - z0[l].numpy())) > 0  # every coordinate moved
        np.testing.assert_array_equal(z_a[l].numpy(), z_b[l].numpy())
        assert np.max(np.abs(z_a[l].numpy() - z_c[l].numpy())) > 1e-2  # noise s*eps ~ 0.1 per step
    # The energy returned for T > 0 is still the energy at z_0 (float32: rtol 1e-6).
    np.testing.assert_allclose(energy_a.numpy(), energy_fn(z0).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(energy_a.numpy(), energy_b.numpy())


def test_one_step_on_three_layers_uses_per_layer_noise():
    """With L = 3 and a prior-only energy, z_1^l = (1 - s^2/2) z_0^l + s * eps^l, eps^l from fold_in(.., l)."""
    z0 = _three_layer_z0()
    def prior(z):
        return tf.add_n([tf.reduce_sum(tf.square(z_l)) for z_l in z]) / 2
    s, seed = 0.2, [2, 3]
    z1, _ = langevin.langevin_dynamics(prior, z0, 1, s, seed)
    for l, (a, b) in enumerate(zip(z1, z0)):
        expected = (1 - s**2 / 2) * b.numpy() + s * _noise(seed, 0, l, b.shape)
        np.testing.assert_allclose(a.numpy(), expected, atol=1e-6)  # float32 round-off
    # So the layers' noises differ (no draw shared between layers of the same shape).
    eps = [(a.numpy() - (1 - s**2 / 2) * b.numpy()) / s for a, b in zip(z1, z0)]
    assert np.max(np.abs(eps[0] - eps[1][:, :2])) > 0.1


def test_eager_and_compiled_runs_agree():
    """The noise is stateless in (seed, t, layer): eager and tf.function runs give the same z_T."""
    energy_fn, z0 = _three_layer_energy(), _three_layer_z0()
    eager, _ = langevin.langevin_dynamics(energy_fn, z0, 3, 0.1, [4, 2])
    compiled, _ = _run(energy_fn, z0, tf.constant(3), 0.1, tf.constant([4, 2]))
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)  # graph rewrites: float32 round-off


def test_unrolled_steps_equal_the_while_loop():
    """unroll=True (the benchmark's counterfactual) traces the same steps as straight-line code."""
    energy_fn, z0 = _three_layer_energy(), _three_layer_z0()
    looped, energy_looped = _run(energy_fn, z0, tf.constant(4), 0.1, tf.constant([4, 2]))
    unrolled, energy_unrolled = tf.function(lambda z: langevin.langevin_dynamics(
        energy_fn, z, 4, 0.1, tf.constant([4, 2]), unroll=True))(z0)
    for a, b in zip(looped, unrolled):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(energy_looped.numpy(), energy_unrolled.numpy(), rtol=1e-5)


# ---------------------------------------------------------------------------- without noise

def test_without_noise_the_steps_are_gradient_descent_to_the_posterior_mode():
    """noise=False (the deterministic [E+L]): z_{t+1} - m = A (z_t - m) with A = I - s^2 P / 2 on the
    linear target, exactly, whatever the seed; so the chain converges to the posterior mean m."""
    w, x, precision, mean = _linear_target()
    s, steps = 0.3, 7
    z0 = np.array([[3.0, -2.0], [0.0, 1.0]])
    a = np.eye(2) - s**2 * precision / 2
    expected = mean + (z0 - mean) @ np.linalg.matrix_power(a, steps).T
    for seed in ([0, 1], [5, 9]):
        (z_t,), _ = _run(_hand_energy(w, x), [tf.constant(z0, tf.float32)], steps, s, tf.constant(seed, tf.int32),
                         noise=False)
        np.testing.assert_allclose(z_t.numpy(), expected, rtol=1e-4, atol=1e-5)
    (far,), _ = _run(_hand_energy(w, x), [tf.constant(z0, tf.float32)], 400, s, tf.constant([0, 1], tf.int32),
                     noise=False)
    np.testing.assert_allclose(far.numpy(), np.tile(mean, (2, 1)), atol=1e-4)
