"""VAE (Kingma & Welling 2014), method "vae". The loss is the negative ELBO averaged over the batch,
    -log N(x; g(z), sigma^2 I) + KL(q_phi(z|x) || N(0, I)),   z = mu_phi(x) + sigma_phi(x) * eps,
with one reparameterised sample per example and the KL in closed form (`tfd.kl_divergence` of
`tfd.Normal`s). The reconstruction term keeps the fixed sigma of HiABP (no learned decoder
variance) and drops the constant D/2 log(2 pi sigma^2), so "loss" is the negative ELBO up to that
constant. One loss, gradients to both networks, each applied by its own Adamax. L must be 1.
[E] reconstructions are g(mu_phi(x)); there is no Langevin at test time.

VLAE (Zhao, Song & Ermon 2017), method "vlae": the VAE with the hierarchical networks. The bottom-up
ladder Encoder gives q(z^l | x) = N(mu^l(h^l), sigma^l(h^l)^2) for every rung, the ladder Generator
decodes all z^l together, the prior is p(z^l) = N(0, I) independently per layer, and the KL is summed
over layers. It is the same class as the VAE (`VAE` is `VLAE` restricted to L = 1).

LVAE (Sonderby et al. 2016), method "lvae", as published. The generative model is the Markov chain
    p(z^L) = N(0, I),   p(z^l | z^{l+1}) = N(mu_p^l(d^{l+1}), sigma_p^l(d^{l+1})^2),   p(x | z^1)
where d^{l+1} = f^{l+1}(z^{l+1}) is the top-down path (`ChainGenerator`): HiABP's blocks (the
projection of z^l, then f^l, two deconv2d + LeakyReLU(0.1)) with linear heads for mu_p^l and
sigma_p^l on d^{l+1}'s spatial mean per channel (--lvae_top_down), and x = r(f^1(z^1)) with
HiABP's output block; so x depends on z^1 only,
every layer on the one above only, with the same blocks and total latent size as HiABP. Inference:
the bottom-up ladder Encoder gives the Gaussians N(mu_q^l, sigma_q^l^2); it runs top-down, q(z^L | x)
is the bottom-up Gaussian of layer L and for l < L q(z^l | z^{l+1}, x) is the
`precision_weighted_merge` of the bottom-up Gaussian and the generative model's own top-down
N(mu_p^l, sigma_p^l^2) given the sample z^{l+1} (prior and posterior share one top-down path).
Loss = reconstruction + beta * sum_l KL(q(z^l | .) || p(z^l | z^{l+1})), each KL analytic given the
sampled z^{l+1}; beta is the KL warm-up of the LVAE paper, rising linearly from 0 to 1 over
--kl_warmup_steps updates (then 1; 0 = no warm-up). [E] reconstructions decode the top-down posterior
mean (z^{l+1} = its mean when it conditions layer l); samples are ancestral.

The earlier LVAE of this project, method "lvae_all_layers", keeps LVAE's inference and hierarchical
prior (separate small MLPs, `LadderPrior`) but decodes x from every layer with HiABP's ladder
Generator; it has its own row, and workdirs trained with it before the published LVAE existed (their
config.json says "lvae" and has no kl_warmup_steps) load as it.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.methods.base import _Method
from hiabp_tf.methods.base import _mse
from hiabp_tf.methods.base import gaussian_kl
from hiabp_tf.methods.base import precision_weighted_merge
from hiabp_tf.methods.base import reconstruction_nll
from hiabp_tf.methods.base import reparameterize

# ----------------------------------------------------------------------------------- VAE / VLAE

def vae_loss(generator, encoder, x, seed, sigma, mask=None, batch_slice=None):
    """Negative ELBO of the VAE / VLAE, averaged over the batch (one reparameterised sample).

    Returns {"loss", "reconstruction", "kl", "x_hat"}."""
    mus, log_sigmas = encoder(x)
    z, kl = [], []
    for layer, (mu, log_sigma) in enumerate(zip(mus, log_sigmas)):
        sigma_q = tf.exp(log_sigma)
        z.append(reparameterize(mu, sigma_q, seed, layer, batch_slice))
        kl.append(gaussian_kl(mu, sigma_q))
    x_hat = generator(z)
    reconstruction = algorithm.batch_mean(reconstruction_nll(x, x_hat, sigma, mask), batch_slice)
    kl = algorithm.batch_mean(tf.add_n(kl), batch_slice)
    return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl, "x_hat": x_hat}


class _VariationalMethod(_Method):
    """A model trained on its negative ELBO: one loss, gradients to both networks, two Adamax."""

    def loss(self, x, seed, mask=None, batch_slice=None):
        """Returns {"loss", "reconstruction", "kl", "x_hat"} on a batch, averaged over it."""
        raise NotImplementedError

    @tf.function
    def train_step(self, batch, seed, mask=None):
        return self.replica_step(batch, seed, mask)

    def replica_step(self, batch, seed, mask=None, batch_slice=None):
        x = batch["image"]
        generator_vars, encoder_vars = self.generator_variables, self.encoder.trainable_variables
        with tf.GradientTape() as tape:
            terms = self.loss(x, seed, mask, batch_slice)
        # "objective": what is minimised when it differs from the negative ELBO (the LVAE's warm-up).
        grads = tape.gradient(terms.get("objective", terms["loss"]), generator_vars + encoder_vars)
        self.generator_optimizer.apply_gradients(zip(grads[:len(generator_vars)], generator_vars))
        self.encoder_optimizer.apply_gradients(zip(grads[len(generator_vars):], encoder_vars))
        return {"loss": terms["loss"], "reconstruction": terms["reconstruction"], "kl": terms["kl"],
                "train_mse": _mse(x, terms["x_hat"], batch_slice)}


class VLAE(_VariationalMethod):
    """VLAE: the VAE with ladder networks and independent N(0, I) priors per layer."""

    method = "vlae"
    reconstructions = ("E",)
    max_layers = None  # any L the networks allow

    def __init__(self, arch, hparams, num_train_examples=None):
        if self.max_layers is not None and arch.num_layers > self.max_layers:
            raise ValueError(
                f"the {self.method!r} method has one latent layer: --num_layers must be 1, got "
                f"L={arch.num_layers} (use method 'vlae' or 'lvae' for hierarchical latents).")
        super().__init__(arch, hparams, num_train_examples)
        self._build_optimizers()

    def loss(self, x, seed, mask=None, batch_slice=None):
        """Negative ELBO terms on a batch (see `vae_loss`)."""
        return vae_loss(self.generator, self.encoder, x, seed, self.hparams.sigma, mask, batch_slice)

    @tf.function
    def reconstruct(self, x, seed, langevin_steps=None, mask=None):
        """{"E": g(mu_phi(x))}: amortised inference only (seed, langevin_steps, mask are unused)."""
        del seed, langevin_steps, mask
        mus, _ = self.encoder(x)
        return {"E": self.generator(mus)}


class VAE(VLAE):
    """VAE: one latent layer, q(z|x) = N(mu_phi(x), sigma_phi(x)^2), p(z) = N(0, I)."""

    method = "vae"
    max_layers = 1


# ------------------------------------------------------------------------------------------ LVAE

# The smallest standard deviation of the LVAE's top-down Gaussians (keeps their KL finite).
SIGMA_FLOOR = 1e-3


class ChainGenerator(keras.Model):
    """The LVAE's generative model, z^L -> ... -> z^1 -> x, built from HiABP's blocks.

    d^l = f^l(projection(z^l)); x = r(d^1); p(z^l | z^{l+1}) has its mean and softplus scale linear
    in the spatial mean (or flattening) of d^{l+1}. Called on [z^1, ..., z^L] like the ladder
    Generator, it decodes z^1 alone."""

    def __init__(self, arch: models.Architecture, name="generator"):
        super().__init__(name=name)
        self.arch = arch
        layers = range(1, arch.num_layers + 1)
        self.projections = [models.projection(arch, l) for l in layers]
        self.ladder = [models.ladder_block(arch, l) for l in layers]
        self.output_block = models.output_block(arch)
        if arch.num_layers > 1:  # (an unused layer would be left unbuilt)
            # The heads read d^{l+1}'s spatial mean per channel (`Architecture.lvae_top_down`): on
            # the flattened map (1,568 inputs at 7x7x32) each Adamax update, ~lr per weight, moved
            # the prior's mean and scale by up to lr * 1,568 ~ 0.5; within 50 updates z^1 spread
            # ~20, the sigmoid output saturated at 0 and the chain never learned (test MSE 0.12
            # on MNIST, above the mean image's 0.067).
            self.head_features = (keras.layers.GlobalAveragePooling2D() if arch.lvae_top_down == "pooled"
                            else keras.layers.Flatten())
        # Heads of p(z^l | z^{l+1}) for l = 1..L-1 (0-based l < L-1), on d^{l+1}.
        # Zero kernels: every conditional starts as N(0, I) (softplus(log(e - 1)) = 1), the VAE's
        # prior, and learns its dependence on the layer above; random ones on d^{l+1}'s thousands of
        # features start it far from that, and the chain then passed no information to x.
        self.mu_heads = [keras.layers.Dense(d, kernel_initializer="zeros", name=f"prior_mu{l + 1}")
                         for l, d in enumerate(arch.latent_dims[:-1])]
        self.sigma_heads = [keras.layers.Dense(d, kernel_initializer="zeros",
                                               bias_initializer=keras.initializers.Constant(math.log(math.e - 1)),
                                               name=f"prior_sigma{l + 1}")
                            for l, d in enumerate(arch.latent_dims[:-1])]

    def top_down(self, layer: int, z):
        """d^{layer+1} (0-based `layer`): the block of z^{layer+1}, f(projection(z))."""
        return self.ladder[layer](self.projections[layer](z))

    def conditional(self, layer: int, z_above):
        """(mu_p, sigma_p) of p(z^l | z^{l+1}) for 0-based layer l < L-1, given z^{l+1} = `z_above`.

        sigma_p = softplus(linear) + SIGMA_FLOOR, as Sonderby et al. parameterise it: an exp here
        lets a head's first large output make sigma_p vanish and the KL overflow (it did, within
        200 updates on MNIST)."""
        h = self.head_features(self.top_down(layer + 1, z_above))
        mu = tf.cast(self.mu_heads[layer](h), tf.float32)  # casts are no-ops in float32
        return mu, tf.nn.softplus(tf.cast(self.sigma_heads[layer](h), tf.float32)) + SIGMA_FLOOR

    def call(self, latents):
        latents = list(latents)
        for layer in range(self.arch.num_layers - 1):  # creates the prior heads on the first call
            if not self.mu_heads[layer].built:
                self.conditional(layer, latents[layer + 1])
        return tf.cast(self.output_block(self.top_down(0, latents[0])), tf.float32)


class GaussianConditional(keras.Model):
    """Top-down prior p(z^l | z^{l+1}) = N(mu(z^{l+1}), exp(log_sigma(z^{l+1}))^2): a small MLP
    (the "lvae_all_layers" variant's)."""

    def __init__(self, latent_dim: int, hidden: int, name=None):
        super().__init__(name=name)
        self.hidden = keras.layers.Dense(hidden, kernel_initializer=models.INIT)
        self.activation = keras.layers.LeakyReLU(models.LEAK)
        self.mu = keras.layers.Dense(latent_dim)
        self.log_sigma = keras.layers.Dense(latent_dim)

    def call(self, z_above):
        h = self.activation(self.hidden(z_above))
        return self.mu(h), self.log_sigma(h)


class LadderPrior(keras.Model):
    """The variant's top-down priors: conditionals[l] gives p(z^{l+1} | z^{l+2}) (0-based l < L-1)."""

    def __init__(self, arch: models.Architecture, name="prior"):
        super().__init__(name=name)
        dims = arch.latent_dims
        self.conditionals = [GaussianConditional(dims[l], 2 * dims[l], name=f"p_z{l + 1}")
                             for l in range(arch.num_layers - 1)]
        for l, conditional in enumerate(self.conditionals):  # create the weights now
            conditional(tf.zeros((1, dims[l + 1])))

    def conditional(self, layer, z_above):
        """(mu_p, sigma_p) of layer `layer` (0-based, < L-1) given the sample of the layer above."""
        mu, log_sigma = self.conditionals[layer](z_above)
        return mu, tf.exp(log_sigma)


class LVAE(_VariationalMethod):
    """Ladder VAE as published: the chain generative model, top-down precision-weighted inference
    sharing the generative model's top-down path, KL warm-up."""

    method = "lvae"
    reconstructions = ("E",)

    def __init__(self, arch, hparams, num_train_examples=None):
        super().__init__(arch, hparams, num_train_examples, generator_class=ChainGenerator)
        self._build_optimizers()

    def conditional(self, layer, z_above):
        """(mu_p, sigma_p) of p(z^l | z^{l+1}), 0-based layer l < L-1."""
        return self.generator.conditional(layer, z_above)

    def posterior(self, x, seed=None, batch_slice=None):
        """Top-down inference. Returns (z, kls) as lists over layers (bottom first); kls[l] is the
        per-example KL(q(z^l | .) || p(z^l | z^{l+1})). With seed None every layer takes its mean
        (and the layers below are conditioned on that mean) instead of a sample."""
        mus_q, log_sigmas_q = self.encoder(x)
        num_layers = self.arch.num_layers
        z, kls = [None] * num_layers, [None] * num_layers
        for l in range(num_layers - 1, -1, -1):  # top-down: l = L-1 .. 0 (0-based)
            sigma_q = tf.exp(log_sigmas_q[l])
            if l == num_layers - 1:
                mu, sigma = mus_q[l], sigma_q
                mu_p, sigma_p = 0.0, 1.0
            else:
                mu_p, sigma_p = self.conditional(l, z[l + 1])
                mu, sigma = precision_weighted_merge(mus_q[l], sigma_q, mu_p, sigma_p)
            z[l] = mu if seed is None else reparameterize(mu, sigma, seed, l, batch_slice)
            kls[l] = gaussian_kl(mu, sigma, mu_p, sigma_p)
        return z, kls

    def kl_weight(self):
        """beta of the KL warm-up: min(1, updates so far / --kl_warmup_steps) (1 without warm-up);
        the generator optimiser's update count is checkpointed, so a resumed run continues it."""
        warmup = self.hparams.kl_warmup_steps
        if not warmup:
            return tf.constant(1.0)
        return tf.minimum(1.0, tf.cast(self.generator_optimizer.iterations, tf.float32) / float(warmup))

    def loss(self, x, seed, mask=None, batch_slice=None):
        """Negative ELBO of the LVAE on a batch; returns {"loss", "objective" (with the warm-up's
        beta on the KL), "reconstruction", "kl", "x_hat"}."""
        z, kls = self.posterior(x, seed, batch_slice)
        x_hat = self.generator(z)
        reconstruction = algorithm.batch_mean(reconstruction_nll(x, x_hat, self.hparams.sigma, mask), batch_slice)
        kl = algorithm.batch_mean(tf.add_n(kls), batch_slice)
        return {"loss": reconstruction + kl, "objective": reconstruction + self.kl_weight() * kl,
                "reconstruction": reconstruction, "kl": kl, "x_hat": x_hat}

    def initial_latents(self, x, seed):
        """(z_0 sampled top-down from the posterior, the top-down posterior mean)."""
        means, _ = self.posterior(x, None)
        z0, _ = self.posterior(x, seed)
        return [tf.stop_gradient(z) for z in z0], means

    def resample_layer(self, z, layer: int, seed):
        """z^layer redrawn from p(z^l | z^{l+1}) given the layer above (the top layer from N(0, I))."""
        if layer == self.arch.num_layers - 1:
            return super().resample_layer(z, layer, seed)
        mu_p, sigma_p = self.conditional(layer, z[layer + 1])
        return reparameterize(mu_p, sigma_p, seed, layer)

    def energy_fn(self, x, mask=None):
        """-log p(x, z) with the hierarchical prior p(z^L) = N(0, I), p(z^l | z^{l+1}) = N(mu_p, sigma_p^2)."""
        if self.arch.num_layers == 1:
            return super().energy_fn(x, mask)
        sigma = self.hparams.sigma

        def energy(z):
            prior = tf.reduce_sum(tf.square(z[-1])) / 2.0
            for l in range(len(z) - 1):
                mu_p, sigma_p = self.conditional(l, z[l + 1])
                prior += tf.reduce_sum(tf.square((z[l] - mu_p) / sigma_p)) / 2.0 + tf.reduce_sum(tf.math.log(sigma_p))
            return prior + tf.reduce_sum(reconstruction_nll(x, self.generator(z), sigma, mask))
        return energy

    @tf.function
    def reconstruct(self, x, seed, langevin_steps=None, mask=None):
        """{"E": g(z)} with every layer at its top-down posterior mean."""
        del seed, langevin_steps, mask
        z, _ = self.posterior(x, seed=None)
        return {"E": self.generator(z)}

    @tf.function
    def sample(self, num_samples, seed):
        """Ancestral samples: z^L ~ N(0, I), then z^l ~ p(z^l | z^{l+1}) down to l = 1."""
        num_layers = self.arch.num_layers
        z = [None] * num_layers
        top = num_layers - 1
        z[top] = tf.random.stateless_normal([num_samples, self.arch.latent_dims[top]],
                                            tf.random.experimental.stateless_fold_in(seed, top))
        for l in range(top - 1, -1, -1):
            z[l] = self.resample_layer(z, l, seed)
        return self.generator(z)


class LVAEAllLayers(LVAE):
    """The earlier LVAE of this project: LVAE's inference and hierarchical prior (separate MLPs),
    with HiABP's ladder Generator decoding x from every layer."""

    method = "lvae_all_layers"

    def __init__(self, arch, hparams, num_train_examples=None):
        _VariationalMethod.__init__(self, arch, hparams, num_train_examples)
        self.prior = LadderPrior(arch)
        self._build_optimizers()

    def conditional(self, layer, z_above):
        return self.prior.conditional(layer, z_above)

    @property
    def generator_variables(self):
        return self.generator.trainable_variables + self.prior.trainable_variables

    def checkpoint_items(self) -> dict:
        return dict(super().checkpoint_items(), prior=self.prior)
