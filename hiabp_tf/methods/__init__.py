"""The methods of the paper's Table 1, looked up by name: HiABP (IABP is L = 1) and its baselines.

Every method implements `base.Method` (training step, reconstructions, samples, initializer,
energy), with the same networks from `hiabp_tf.core`. This package imports only `core`.
"""

from hiabp_tf.methods.abp import ABP
from hiabp_tf.methods.abp import PersistentABP
from hiabp_tf.methods.hiabp import HiABP
from hiabp_tf.methods.variational import LVAE
from hiabp_tf.methods.variational import VAE
from hiabp_tf.methods.variational import VLAE
from hiabp_tf.methods.variational import LVAEAllLayers

# Every row of Table 1: HiABP (IABP is L = 1) and its baselines, all with the same networks.
METHOD_CLASSES = {"hiabp": HiABP, "vae": VAE, "vlae": VLAE, "lvae": LVAE, "lvae_all_layers": LVAEAllLayers,
                  "abp": ABP, "abp_persistent": PersistentABP}
# The methods trained on a negative ELBO (their KL term can be warmed up, --kl_warmup_steps).
VARIATIONAL = ("vae", "vlae", "lvae", "lvae_all_layers")
METHODS = tuple(METHOD_CLASSES)


def build_model(config, image_shape, num_train_examples: int):
    """The method's model object for a RunConfig (networks, optimisers, compiled steps; for
    persistent ABP, one chain per training example)."""
    cls = METHOD_CLASSES[config.method]
    return cls(config.architecture(image_shape), config.hyperparameters(), num_train_examples)
