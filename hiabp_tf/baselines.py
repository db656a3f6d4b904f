"""The baselines of the paper's Table 1: VAE, VLAE, LVAE, ABP (non-persistent) and ABP (persistent).

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

VAE (Kingma & Welling 2014), method "vae". The loss is the negative ELBO averaged over the batch,
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

ABP, non-persistent short-run (Nijkamp et al. 2019), method "abp". No encoder (`encoder` is None;
only the generator's Adamax). Each step: z_0 ~ N(0, I) for every layer, T Langevin steps
(`algorithm.improving`, with the training T, s and sigma shared by all methods), then the generator
update on eq. 4 (`algorithm.generator_loss`). Test-time reconstructions [L] start from z_0 ~ N(0, I)
and run `langevin_steps` steps on the test image (default: the training T).

ABP, persistent (Han et al. 2017), method "abp_persistent". As ABP, but every training example keeps
its own chain: one non-trainable tf.Variable per latent layer of shape (num_train_examples, d_l),
drawn from N(0, I) with the fixed seed `CHAIN_SEED`, checkpointed as "chains". A step starts
Langevin from the chains of the batch's examples (`batch["index"]`), writes z_T back to them, and
updates the generator on eq. 4. Test images have no chain, so [L] reconstructions start from
N(0, I) exactly as for the non-persistent ABP; only training differs. Under tf.distribute the chains
are mirrored on every replica: each replica reads its examples' chains, and z_T of all replicas is
gathered (in replica order) and written to every copy in cross-replica context.

tf.distribute: every `train_step` is `replica_step(batch, seed, mask)`; under a strategy each replica
runs `replica_step` with `batch_slice=(offset, global_size)` (see `algorithm`): the reparameterisation
and Langevin noise are drawn for the global batch and sliced, and batch means are this replica's
share of the global mean.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from hiabp_tf import algorithm
from hiabp_tf import langevin
from hiabp_tf import models

tfd = tfp.distributions

# Seed of the persistent chains' initial N(0, I) values (fixed, so a run is reproducible and a
# checkpoint restores the same chains whatever --seed trained them).
CHAIN_SEED = (2017, 0)


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


# ---------------------------------------------------------------------------------- shared base

class _Method(tf.Module):
    """Networks and Adamax optimisers shared by the baselines; samples from N(0, I) per layer."""

    method = None

    def __init__(self, arch: models.Architecture, hparams: algorithm.Hyperparameters,
                 num_train_examples: int | None = None, with_encoder: bool = True):
        super().__init__(name=self.method)
        self.arch, self.hparams = arch, hparams
        self.num_train_examples = num_train_examples
        self.generator, encoder = models.build_networks(arch)
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
            mu_p, sigma_p = self.prior.conditional(l, z[l + 1])
            z[l] = reparameterize(mu_p, sigma_p, seed, l)
        return self.generator(z)


# ------------------------------------------------------------------------------------------- ABP

class ABP(_Method):
    """Non-persistent short-run ABP: Langevin from N(0, I) every step, no encoder."""

    method = "abp"
    reconstructions = ("L",)

    def __init__(self, arch, hparams, num_train_examples=None):
        super().__init__(arch, hparams, num_train_examples, with_encoder=False)
        self._build_optimizers()

    def _initial_latents(self, batch, seed, batch_slice=None):
        """z_0 of the training step: N(0, I)."""
        return standard_normal_latents(self.arch.latent_dims, tf.shape(batch["image"])[0], seed,
                                       batch_slice=batch_slice)

    def _finish_step(self, batch, z_t, batch_slice=None):
        """Hook after Langevin (the persistent ABP stores z_T)."""
        del batch, z_t, batch_slice

    @tf.function
    def train_step(self, batch, seed, mask=None):
        return self.replica_step(batch, seed, mask)

    def replica_step(self, batch, seed, mask=None, batch_slice=None):
        x = batch["image"]
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z0 = self._initial_latents(batch, init_seed, batch_slice)
        z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, mask,
                                            batch_slice=batch_slice)
        self._finish_step(batch, z_t, batch_slice)
        variables = self.generator_variables
        with tf.GradientTape() as tape:
            loss_theta, x_hat = algorithm.generator_loss(self.generator, x, z_t, self.hparams.sigma, mask,
                                                         batch_slice)
        self.generator_optimizer.apply_gradients(zip(tape.gradient(loss_theta, variables), variables))
        batch_size = tf.shape(x)[0] if batch_slice is None else batch_slice[1]
        return {
            "generator_loss": loss_theta,
            "energy_z0": energy_0 / tf.cast(batch_size, x.dtype),
            "energy_zT": loss_theta,  # eq. 4 is the energy at z_T, per example
            "train_mse": _mse(x, x_hat, batch_slice),
        }

    @tf.function
    def reconstruct(self, x, seed, langevin_steps=None, mask=None):
        """{"L": g(z_T)}: z_0 ~ N(0, I), then `langevin_steps` (default T) steps on the test image."""
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z0 = standard_normal_latents(self.arch.latent_dims, tf.shape(x)[0], init_seed)
        z_t, _ = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, mask, langevin_steps)
        return {"L": self.generator(z_t)}


class PersistentABP(ABP):
    """Persistent ABP: one Langevin chain per training example, carried across steps."""

    method = "abp_persistent"

    def __init__(self, arch, hparams, num_train_examples=None):
        if num_train_examples is None or int(num_train_examples) < 1:
            raise ValueError("the 'abp_persistent' method keeps one chain per training example and needs "
                             f"the size of the training split, got num_train_examples={num_train_examples}.")
        super().__init__(arch, hparams, int(num_train_examples))
        initial = standard_normal_latents(arch.latent_dims, self.num_train_examples, tf.constant(CHAIN_SEED))
        self.chains = [tf.Variable(z, trainable=False, name=f"chains_z{l + 1}")
                       for l, z in enumerate(initial)]

    @property
    def persistent_chain_bytes(self) -> int:
        """Memory held by the chains (num_train_examples x total latent size x bytes per float)."""
        return sum(int(c.shape.num_elements()) * c.dtype.size for c in self.chains)

    def checkpoint_items(self) -> dict:
        return dict(super().checkpoint_items(), chains=self.chains)

    def _initial_latents(self, batch, seed, batch_slice=None):
        del seed, batch_slice
        return [tf.gather(chain, batch["index"]) for chain in self.chains]

    def _finish_step(self, batch, z_t, batch_slice=None):
        indices = tf.expand_dims(tf.cast(batch["index"], tf.int64), -1)
        if batch_slice is None:
            for chain, z in zip(self.chains, z_t):
                chain.scatter_nd_update(indices, z)
            return
        # One replica of a tf.distribute step: gather every replica's rows (in replica order, so
        # the global batch's order) and write them to every copy of the mirrored chains.
        context = tf.distribute.get_replica_context()
        indices = context.all_gather(indices, axis=0)
        z_t = [context.all_gather(z, axis=0) for z in z_t]

        def write(strategy, indices, z_t):
            for chain, z in zip(self.chains, z_t):
                strategy.extended.update(chain, lambda copy, i, v: copy.scatter_nd_update(i, v),
                                         args=(indices, z), group=False)
        context.merge_call(write, args=(indices, z_t))


METHODS = {"vae": VAE, "vlae": VLAE, "lvae": LVAE, "abp": ABP, "abp_persistent": PersistentABP}
