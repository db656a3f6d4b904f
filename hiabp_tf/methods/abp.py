"""ABP, non-persistent short-run (Nijkamp et al. 2019), method "abp". No encoder (`encoder` is None;
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
"""

from __future__ import annotations

import tensorflow as tf

from hiabp_tf.core import algorithm
from hiabp_tf.methods.base import _Method
from hiabp_tf.methods.base import _mse
from hiabp_tf.methods.base import standard_normal_latents

# Seed of the persistent chains' initial N(0, I) values (fixed, so a run is reproducible and a
# checkpoint restores the same chains whatever --seed trained them).
CHAIN_SEED = (2017, 0)


# ------------------------------------------------------------------------------------------- ABP

class ABP(_Method):
    """Non-persistent short-run ABP: Langevin from N(0, I) every step, no encoder."""

    method = "abp"
    reconstructions = ("L",)
    has_encoder = False

    def initial_latents(self, x, seed):
        """No encoder: z_0 ~ N(0, I), and no mean."""
        return standard_normal_latents(self.arch.latent_dims, tf.shape(x)[0], seed), None

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
