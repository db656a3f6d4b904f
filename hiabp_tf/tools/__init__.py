"""Measurement tools, not part of the model: the step benchmark and its PyTorch peer, the
performance and memory reports, and the soak test. May import the library; nothing imports them."""
