r"""The scoring behind `python -m hiabp_tf.evaluate`: a trained workdir's test reconstruction MSE over a
whole split.

[E] (encoder mean decoded), [E+L] (encoder sample, then noisy Langevin, as the paper) and its
deterministic variant mse_EL_det (encoder mean, Langevin without noise) for IABP / HiABP, [E] for the
VAEs, [L] (Langevin from N(0, I)) for ABP; keys absent for a method are null in the JSON.

    python -m hiabp_tf.evaluate --workdir=runs/hiabp_l3 [--dataset=npz:held_out.npz]

Writes the result as JSON in the workdir (eval_<dataset>_<split>.json) and prints it as one JSON
object on the last line of stdout. The protocol is in hiabp_tf/evaluation/metrics.py and the README.
"""

from __future__ import annotations

import json
import math
import os
import re
import time

from absl import flags
from absl import logging

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.checks import limits
from hiabp_tf.data import input_pipeline
from hiabp_tf.data import masks
from hiabp_tf.data import spec as data_spec
from hiabp_tf.evaluation import fid as fid_lib
from hiabp_tf.evaluation import metrics
from hiabp_tf.runtime import workdir as workdir_lib


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_string("workdir", None, "A workdir written by hiabp_tf.train.")
    flags.DEFINE_string("dataset", None, "Dataset to score (default: the one trained on); "
                        "any dataset with the training image shape, e.g. npz:PATH, or images:DIR (prepared with "
                        "the run's --image_size, --image_crop and --test_images unless the name gives them, "
                        "e.g. images:DIR,test_images=500).")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir.")
    flags.DEFINE_enum("split", "test", input_pipeline.SPLITS, "Split to score.")
    flags.DEFINE_integer("batch_size", 500, "Evaluation batch size (does not change the result).")
    flags.DEFINE_integer("langevin_steps", None, "Test-time Langevin steps (default: the run's "
                         "--eval_langevin_steps, else its training T).")
    flags.DEFINE_string("mask", "none", "Occlude every test image with its fixed mask (none, pepper, region10, "
                        "region20, ...) and also report the recovery error on the occluded pixels.")
    flags.DEFINE_enum("fid", "none", ["none", "classifier", "inception"],
                      "Also compute FID of --fid_samples generated images against the training split, in "
                      "Inception-v3 pool features (weights from --inception_weights) or in the features of a "
                      "small classifier trained on the same data (MNIST-like data; cached at --fid_classifier).")
    flags.DEFINE_integer("fid_samples", 10_000, "Generated images for FID (the paper: 40,000).")
    flags.DEFINE_string("inception_weights", None,
                        "Local Inception-v3 weights file (include_top=False) for --fid=inception.")
    flags.DEFINE_string("fid_classifier", None, "Cache of the FID classifier (.keras); trained there if absent.")
    config_lib.define_seed_flag("the initializer noise and Langevin noise at test time")


FLAGS = flags.FLAGS


def result_path(workdir: str, dataset, split: str, mask: str = "none", langevin_steps=None) -> str:
    """eval_<data>_<split>[_mask-<mask>][_T<steps>].json; T only when not the run's default; <data> says
    which data was scored (`workdir_lib.dataset_slug`: a registered dataset's name, or for a file or
    folder of the user's its name, settings and a digest of its content), so that a result is never
    replaced by one for other data. Where only a result of an earlier version's name is there
    (`workdir_lib.legacy_dataset_slug`), that one: the readers (reports, ship) find old results."""
    path = _result_file(workdir, workdir_lib.dataset_slug(dataset), split, mask, langevin_steps)
    if not os.path.exists(path) and data_spec.parse(dataset).is_users:
        legacy = _result_file(workdir, workdir_lib.legacy_dataset_slug(str(dataset)), split, mask, langevin_steps)
        if os.path.isfile(legacy):
            return legacy
    return path


def _result_file(workdir: str, slug: str, split: str, mask: str, langevin_steps) -> str:
    spec = masks.parse_mask(mask)
    suffix = "" if spec.kind == "none" else "_mask-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name)
    if langevin_steps is not None:
        suffix += f"_T{langevin_steps}"
    return os.path.join(workdir, f"eval_{slug}_{split}{suffix}.json")


def check_fid_flags(kind: str, inception_weights=None, classifier_path=None) -> None:
    """The flags --fid needs, checked before anything is scored (they were found missing only after a
    whole evaluation)."""
    if kind == "inception" and not inception_weights:
        raise errors.ConfigError(
            "--fid=inception needs --inception_weights=FILE: a local Inception-v3 weights file "
            "(nothing is downloaded at run time).")
    if kind == "classifier" and not classifier_path:
        raise errors.ConfigError("--fid=classifier needs --fid_classifier=PATH.keras (where the "
                                 "feature classifier is cached, or trained if absent).")


def fid_features(config, kind: str, inception_weights=None, classifier_path=None, data_dir=None):
    """The feature network of --fid: Inception-v3 with --inception_weights, or the classifier cached at
    --fid_classifier (trained there if absent). Built before the evaluation, so that an unreadable file
    stops the command at once (an FIDError naming the flag)."""
    check_fid_flags(kind, inception_weights, classifier_path)
    if kind == "inception":
        return fid_lib.InceptionFeatures(inception_weights)
    return fid_lib.ClassifierFeatures.load_or_train(classifier_path, dataset=config.dataset, data_dir=data_dir)


def fid_score(model, config, kind: str, num_samples: int, inception_weights=None, classifier_path=None,
              data_dir=None, seed=0, features=None) -> dict:
    """FID of `num_samples` samples of `model` against its training split (DESIGN.md, Table 1), in
    `features` (else those of `fid_features`)."""
    if num_samples < 2:
        raise errors.ConfigError(f"--fid_samples must be >= 2, got {num_samples}.")
    if features is None:
        features = fid_features(config, kind, inception_weights, classifier_path, data_dir)
    samples = fid_lib.generated_images(model, num_samples, 500, seed)
    train_ds, _ = input_pipeline.make_eval_dataset(config.dataset, "train", data_dir=data_dir)
    return {"fid": fid_lib.fid(features, samples, train_ds), "fid_features": features.description,
            "fid_samples": num_samples}


def evaluate(workdir: str, dataset=None, split="test", data_dir=None, batch_size=500,
             langevin_steps=None, seed=0, mask="none", fid="none", fid_samples=10_000,
             inception_weights=None, fid_classifier=None) -> dict:
    """Test MSE of the latest checkpoint in `workdir` (see the module docstring); also written as
    JSON there. An unreadable latest checkpoint is skipped (a warning) for the newest readable one;
    "step" says which was scored."""
    seed = config_lib.check_seed(seed)
    limits.check_count(batch_size, "--batch_size")
    if fid != "none":
        check_fid_flags(fid, inception_weights, fid_classifier)
    if langevin_steps is not None:
        limits.check_langevin_steps(langevin_steps)
    model, config, image_shape, step = workdir_lib.restore(workdir)
    if fid != "none":
        limits.check_num_samples(fid_samples, "--fid_samples", image_shape, low=2)
    # An images: folder's settings that --dataset does not give are the run's (at least its side).
    run = dict(config.dataset.settings) if config.dataset.kind == "images" else {}
    dataset = data_spec.parse(dataset or config.dataset, defaults={"image_size": image_shape[0], **run})
    eval_ds, info = input_pipeline.make_eval_dataset(dataset, split, batch_size=batch_size, data_dir=data_dir)
    if tuple(info.image_shape) != tuple(image_shape):
        raise input_pipeline.DataError(
            f"--dataset={dataset} has images of shape {info.image_shape}, but the model in "
            f"--workdir={workdir} was trained on {tuple(image_shape)}; score it on data of the same "
            "shape (resize your images, or train a model on this data).")
    steps = config.test_langevin_steps if langevin_steps is None else langevin_steps
    try:
        mask_spec = masks.check_fits(mask, image_shape)  # before the graphs: inside them, a traceback
    except ValueError as e:
        raise errors.ConfigError(str(e)) from None
    # The feature network first: an unreadable --inception_weights or --fid_classifier stops before scoring.
    features = fid_features(config, fid, inception_weights, fid_classifier, data_dir) if fid != "none" else None
    start = time.perf_counter()
    # Occluded training images are scored with the masks the run trained with (seeded by its training
    # seed): Table 2's protocol, recovering pixels that were never observed. Test images: the test masks.
    mask_seed = config.seed if split == "train" else metrics.TEST_MASK_SEED
    scores = metrics.reconstruction_mse(model, eval_ds, seed=seed, langevin_steps=steps, mask_spec=mask_spec,
                                        mask_seed=mask_seed)
    if "E+L" in model.reconstructions:  # the protocol reports [E+L] both ways (metrics.py)
        scores.update(metrics.reconstruction_mse(model, eval_ds, seed=seed, langevin_steps=steps,
                                                 mask_spec=mask_spec, deterministic=True, mask_seed=mask_seed))
    result = {
        "method": config.method,
        "num_layers": config.num_layers,
        "latent_dims": list(config.latent_dims),
        "trained_on": config.dataset,
        "dataset": dataset,
        "split": split,
        "num_examples": scores["num_examples"],
        "step": step,
        **{name: scores.get(name) for name in metrics.SCORE_NAMES.values()},
        "mask": mask_spec.name,
        "mask_seed": None if mask_spec.kind == "none" else mask_seed,
        "trained_with_mask": config.mask_spec.name,
        **{k: v for k, v in scores.items() if k.startswith("recovery_")},
        "langevin_steps": steps,
        "step_size": config.step_size,
        "sigma": config.sigma,
        "seed": seed,
        "train_seed": config.seed,
        "seconds": round(time.perf_counter() - start, 2),
    }
    # Read: this data's earlier result (an old name included); written: always under today's name.
    previous_path = result_path(workdir, dataset, split, mask_spec.name, langevin_steps)
    path = _result_file(workdir, workdir_lib.dataset_slug(dataset), split, mask_spec.name, langevin_steps)
    if fid != "none":
        result.update(fid_score(model, config, fid, fid_samples, inception_weights, fid_classifier,
                                data_dir, seed, features=features))
    else:  # an FID of this same checkpoint and seed, computed earlier, still holds: keep it
        previous = read_result(previous_path)
        if previous and previous.get("step") == step and previous.get("seed") == seed and "fid" in previous:
            result.update({k: previous[k] for k in FID_KEYS if k in previous})
    infinite = sorted(name for name, value in result.items() if isinstance(value, float) and not math.isfinite(value))
    if infinite:  # NaN is no score (nor valid JSON): nothing is written
        raise errors.WorkdirError(
            f"--workdir={workdir}: the model's scores {', '.join(f'{n} = {result[n]}' for n in infinite)} are not "
            f"finite on {dataset.flag} (step {step}); nothing was written. Its reconstructions overflow or its weights "
            "are damaged: score an earlier checkpoint or retrain.")
    if scores["num_examples"] != info.num_examples:
        raise RuntimeError(f"scored {scores['num_examples']} of {info.num_examples} examples")
    workdir_lib.write_json_atomic(path, result)
    return result


FID_KEYS = ("fid", "fid_features", "fid_samples")


def read_result(path: str) -> dict | None:
    """A result file's JSON object, or None where there is none or it cannot be read (it is then computed
    and written again: a result is a function of the checkpoint, the data and the flags)."""
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def main():
    result = evaluate(FLAGS.workdir, FLAGS.dataset, FLAGS.split, FLAGS.data_dir, FLAGS.batch_size,
                      FLAGS.langevin_steps, FLAGS.seed, FLAGS.mask, FLAGS.fid, FLAGS.fid_samples,
                      FLAGS.inception_weights, FLAGS.fid_classifier)
    logging.info("Wrote %s", result_path(FLAGS.workdir, result["dataset"], result["split"], result["mask"],
                                         FLAGS.langevin_steps))
    print(json.dumps(result, sort_keys=True), flush=True)

