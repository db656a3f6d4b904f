"""HiABP: Hierarchical Initialized Alternating Back-propagation (AAAI 2021) in TensorFlow 2 / Keras."""

__version__ = "0.1.0"
