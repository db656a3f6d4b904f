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

LVAE (Sonderby et al. 2016), method "lvae". Hierarchical prior p(z^L) = N(0, I),
p(z^l | z^{l+1}) = N(mu_p^l(z^{l+1}), sigma_p^l(z^{l+1})^2), each given by a small Keras MLP
(`GaussianConditional`: Dense(2 d_l) + LeakyReLU(0.1), then linear heads for mu and log sigma).
The bottom-up pass is the same ladder Encoder: its (mu_q^l, sigma_q^l) are the bottom-up Gaussians.
Inference runs top-down: q(z^L | x) is the bottom-up Gaussian of layer L; for l < L, q(z^l | z^{l+1}, x)
is the `precision_weighted_merge` of the bottom-up N(mu_q^l, sigma_q^l^2) and the top-down
N(mu_p^l(z^{l+1}), sigma_p^l^2), where z^{l+1} is the reparameterised sample of the layer above.
Loss = reconstruction + sum_l KL(q(z^l | .) || p(z^l | z^{l+1})), each KL analytic given the sampled
z^{l+1}. Choice: the original LVAE decodes x from z^1 only; ours decodes x with the same ladder
Generator as HiABP, fed all layers z^1..z^L, so that the networks are equal across methods (the
generator then sees every layer both through the prior chain and directly). The top-down prior nets
belong to the generative model: the generator's Adamax trains them with the generator, and they are
checkpointed as "prior". With L = 1 there are no prior nets and the LVAE is the VAE. [E]
reconstructions decode every layer at its posterior mean, computed top-down with the means
(z^{l+1} = its mean when it conditions the prior of layer l); samples are ancestral from the
hierarchical prior.
"""

from __future__ import annotations

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
        grads = tape.gradient(terms["loss"], generator_vars + encoder_vars)
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

class GaussianConditional(keras.Model):
    """Top-down prior p(z^l | z^{l+1}) = N(mu(z^{l+1}), exp(log_sigma(z^{l+1}))^2): a small MLP."""

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
    """The LVAE's top-down priors: conditionals[l] gives p(z^{l+1} | z^{l+2}) (0-based l < L-1)."""

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
    """Ladder VAE: hierarchical prior and top-down precision-weighted inference."""

    method = "lvae"
    reconstructions = ("E",)

    def __init__(self, arch, hparams, num_train_examples=None):
        super().__init__(arch, hparams, num_train_examples)
        self.prior = LadderPrior(arch)
        self._build_optimizers()

    @property
    def generator_variables(self):
        return self.generator.trainable_variables + self.prior.trainable_variables

    def checkpoint_items(self) -> dict:
        return dict(super().checkpoint_items(), prior=self.prior)

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
                mu_p, sigma_p = self.prior.conditional(l, z[l + 1])
                mu, sigma = precision_weighted_merge(mus_q[l], sigma_q, mu_p, sigma_p)
            z[l] = mu if seed is None else reparameterize(mu, sigma, seed, l, batch_slice)
            kls[l] = gaussian_kl(mu, sigma, mu_p, sigma_p)
        return z, kls

    def loss(self, x, seed, mask=None, batch_slice=None):
        """Negative ELBO of the LVAE on a batch; returns {"loss", "reconstruction", "kl", "x_hat"}."""
        z, kls = self.posterior(x, seed, batch_slice)
        x_hat = self.generator(z)
        reconstruction = algorithm.batch_mean(reconstruction_nll(x, x_hat, self.hparams.sigma, mask), batch_slice)
        kl = algorithm.batch_mean(tf.add_n(kls), batch_slice)
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl, "x_hat": x_hat}

    def initial_latents(self, x, seed):
        """(z_0 sampled top-down from the posterior, the top-down posterior mean)."""
        means, _ = self.posterior(x, None)
        z0, _ = self.posterior(x, seed)
        return [tf.stop_gradient(z) for z in z0], means

    def resample_layer(self, z, layer: int, seed):
        """z^layer redrawn from p(z^l | z^{l+1}) given the layer above (the top layer from N(0, I))."""
        if layer == self.arch.num_layers - 1:
            return super().resample_layer(z, layer, seed)
        mu_p, sigma_p = self.prior.conditional(layer, z[layer + 1])
        return reparameterize(mu_p, sigma_p, seed, layer)

    def energy_fn(self, x, mask=None):
        """-log p(x, z) with the hierarchical prior p(z^L) = N(0, I), p(z^l | z^{l+1}) = N(mu_p, sigma_p^2)."""
        if self.arch.num_layers == 1:
            return super().energy_fn(x, mask)
        sigma = self.hparams.sigma

        def energy(z):
            prior = tf.reduce_sum(tf.square(z[-1])) / 2.0
            for l in range(len(z) - 1):
                mu_p, sigma_p = self.prior.conditional(l, z[l + 1])
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


