"""Reconstruction error under the measurement protocol of DESIGN.md.

MSE = mean over pixels and channels of (x - x_hat)^2, averaged over every example of the split.
    [E]    x_hat = g(mu_phi(x))                       (the initializer alone)
    [E+L]  z_0 ~ q_phi(z|x) (eq. 2), T Langevin steps on the test image with the training T, s and
           sigma, x_hat = g(z_T)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def reconstruction_mse(model, dataset, seed: int = 0, langevin_steps=None, max_examples=None) -> dict:
    """Test MSE [E] and [E+L] of `model` over a batched eval `dataset` of {"image", "index"}.

    The Langevin noise of batch b is seeded by (seed, b), so a result is reproducible.
    Returns {"mse_E", "mse_EL", "num_examples"}.
    """
    sums = {"E": 0.0, "E+L": 0.0}
    count = 0
    base_seed = tf.constant([seed, 1], tf.int32)
    for b, batch in enumerate(dataset):
        x = batch["image"]
        if max_examples is not None:
            x = x[:max_examples - count]
        if x.shape[0] == 0:
            break
        recon = model.reconstruct(x, tf.random.experimental.stateless_fold_in(base_seed, b),
                                  langevin_steps=langevin_steps)
        for key in sums:
            sums[key] += float(tf.reduce_sum(tf.reduce_mean(tf.square(x - recon[key]), axis=[1, 2, 3])))
        count += int(x.shape[0])
        if max_examples is not None and count >= max_examples:
            break
    if count == 0:
        raise ValueError("the evaluation split has no examples")
    return {"mse_E": sums["E"] / count, "mse_EL": sums["E+L"] / count, "num_examples": count}


def first_images(dataset, n: int) -> np.ndarray:
    """The first n images of a batched dataset, as a numpy array."""
    images = []
    for batch in dataset:
        images.append(batch["image"].numpy())
        if sum(len(i) for i in images) >= n:
            break
    return np.concatenate(images)[:n]
