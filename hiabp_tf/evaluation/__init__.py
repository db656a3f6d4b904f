"""Measurement: the reconstruction protocol (metrics), FID (fid) and the statistics over training
seeds (statistics). `python -m hiabp_tf.evaluate` is the command that uses them.

May import errors, sittings, core, data, methods, config, workdir and cli: the layers below it; train,
evaluate, serving and experiments import it.
"""
