"""Measurement: the reconstruction protocol (metrics), FID (fid), the statistics over training seeds
(statistics) and what an image shows (image_factors: Figure 7's factors). `python -m
hiabp_tf.evaluate` is the command that uses the first three.

May import errors, sittings, core, data, methods, config, workdir and cli: the layers below it; train,
evaluate, serving and experiments import it.
"""
