"""Measurement: the reconstruction protocol (`metrics`), FID (`fid`), the statistics over training
seeds (`statistics`), what an image shows (`image_factors`: Figure 7's factors), what a model's
latent layers do (`diagnostics`), and the scoring of a trained workdir (`scoring`, the code behind
`python -m hiabp_tf.evaluate`).
May import checks, core, data, methods, config and runtime: the layers below it; training, serving,
experiments, tools and the commands import it."""
