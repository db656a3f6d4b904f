"""Algorithm 1's losses and Langevin chain written out by hand for the method tests, from tfp log-probs and
a plain Python loop: nothing here calls `algorithm.generator_loss`, `algorithm.encoder_loss`,
`langevin.langevin_dynamics` or a method's `loss`, so a test comparing a training step with these checks
the step's wiring and its losses at once. Also a recorder of the gradients an optimiser is handed."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf.methods import variational

tfd = tfp.distributions


def fold_in(seed, value):
    return tf.random.experimental.stateless_fold_in(seed, value)


def split_seeds(seed):
    """(initializer seed, Langevin seed): the documented split of a step's seed."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, 2))


def layer_noise(shape, seed, layer):
    """The N(0, I) noise of latent layer `layer` (0-based) under `seed`: stateless_normal(fold_in(seed, layer))."""
    return tf.random.stateless_normal(shape, fold_in(seed, layer))


def log_likelihood(x, x_hat, sigma, mask=None):
    """log N(x; g(z), sigma^2 I) per example, over the observed pixels (mask 1) only."""
    log_p = tfd.Normal(x_hat, sigma).log_prob(x)
    if mask is not None:
        log_p = log_p * mask
    return tf.reduce_sum(log_p, axis=[1, 2, 3])


def log_standard_normal(z):
    """log N(z^l; 0, I) per example, summed over the layers of z."""
    return tf.add_n([tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(z_l), axis=1) for z_l in z])


def eq4(generator, x, z, sigma, mask=None):
    """Eq. 4: -log p_theta(x, z), averaged over the batch (with its constants, which move no gradient)."""
    return -tf.reduce_mean(log_likelihood(x, generator(z), sigma, mask) + log_standard_normal(z))


def eq5(mus, log_sigmas, z):
    """Eq. 5: -log q_phi(z | x) = -log N(z; mu, sigma^2) over layers and dimensions, averaged over the batch."""
    return -tf.reduce_mean(tf.add_n([tf.reduce_sum(tfd.Normal(mu, tf.exp(ls)).log_prob(z_l), axis=1)
                                     for mu, ls, z_l in zip(mus, log_sigmas, z)]))


def energy(generator, x, sigma, mask=None):
    """E(z) = -log p(x, z) summed over the batch (constants included)."""
    return lambda z: -tf.reduce_sum(log_likelihood(x, generator(z), sigma, mask) + log_standard_normal(z))


def langevin(energy_fn, z0, num_steps, step_size, seed):
    """Eq. 3 as a Python loop: z <- z - s^2/2 dE/dz + s eps, eps of step t and layer l from
    fold_in(fold_in(seed, t), l)."""
    z = [tf.convert_to_tensor(z_l) for z_l in z0]
    for t in range(num_steps):
        with tf.GradientTape() as tape:
            tape.watch(z)
            e = energy_fn(z)
        grads = tape.gradient(e, z)
        z = [z_l - step_size**2 / 2 * g + step_size * layer_noise(tf.shape(z_l), fold_in(seed, t), l)
             for l, (z_l, g) in enumerate(zip(z, grads))]
    return z


def lvae_conditional(model, layer, z_above):
    """(mu_p, sigma_p) of p(z^l | z^{l+1}), 0-based `layer`, read off the networks' layers by hand:
    the published LVAE's linear heads on the spatial mean of d^{l+1} (softplus scale + floor), or
    the variant's MLP (exp of its log sigma)."""
    if isinstance(model, variational.LVAEAllLayers):
        mu, log_sigma = model.prior.conditionals[layer](z_above)
        return mu, tf.exp(log_sigma)
    generator = model.generator
    h = tf.reduce_mean(generator.top_down(layer + 1, z_above), axis=(1, 2))
    return generator.mu_heads[layer](h), tf.nn.softplus(generator.sigma_heads[layer](h)) + variational.SIGMA_FLOOR


def randomise_prior_heads(model, seed=0, scale=0.5):
    """Random non-zero kernels and biases for the published LVAE's prior heads (they start at zero,
    where p(z^l | z^{l+1}) = N(0, (1 + floor)^2 I) hides its dependence on the layer above)."""
    rng = np.random.default_rng(seed)
    for head in model.generator.mu_heads + model.generator.sigma_heads:
        for variable in (head.kernel, head.bias):
            variable.assign(rng.normal(scale=scale, size=variable.shape).astype(np.float32))


class AppliedGradients:
    """Stands in for an optimiser's `apply_gradients`: applies nothing, and keeps the gradients it is
    handed in variables, so that a compiled step hands them out too (`grads`), and the paths of the
    variables they were for (`paths`, recorded when the step is traced)."""

    def __init__(self, variables):
        self.store = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in variables]
        self.paths = None

    def __call__(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.paths = [v.path for v in variables]
        for stored, grad in zip(self.store, grads):
            stored.assign(grad)

    @property
    def grads(self):
        return [s.numpy() for s in self.store]


def capture(monkeypatch, optimizer, variables) -> AppliedGradients:
    """Replaces `optimizer.apply_gradients` by an AppliedGradients recorder for `variables`."""
    recorder = AppliedGradients(variables)
    monkeypatch.setattr(optimizer, "apply_gradients", recorder)
    return recorder


def assert_same_gradients(applied, expected, variables, rtol=1e-4):
    """Each variable's applied gradient equals the expected one, to rtol of the expected gradient's norm
    (the compiled step and the eager reference round differently)."""
    assert len(applied) == len(expected) == len(variables)
    for got, want, variable in zip(applied, expected, variables):
        want = tf.convert_to_tensor(want).numpy()
        scale = np.linalg.norm(want)
        assert scale > 0, f"{variable.path}: the expected gradient is zero, so the check would be empty"
        error = np.linalg.norm(got - want)
        assert error <= rtol * scale, f"{variable.path}: |applied - expected| = {error:.3g}, |expected| = {scale:.3g}"
