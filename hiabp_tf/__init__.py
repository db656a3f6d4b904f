"""HiABP: Hierarchical Initialized Alternating Back-propagation (AAAI 2021) in TensorFlow 2 / Keras."""

__version__ = "0.1.0"


def load(workdir):
    """The trained model of a workdir (latest checkpoint) as a `hiabp_tf.serving.api.TrainedModel`:
    encode, decode, reconstruct, sample, resample_layer, inpaint. TensorFlow is imported only
    when this is called, so `import hiabp_tf` stays cheap."""
    from hiabp_tf.serving import api  # pylint: disable=import-outside-toplevel
    return api.load(workdir)
