"""The paper's experiments end to end on tiny runs: Table 2 (masks), Table 3 (T), Figure 1, samples,
the results index; every number read back from evaluate's JSON."""

import json
import os

import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf.checks import errors
from hiabp_tf.data import masks
from hiabp_tf.evaluation import metrics
from hiabp_tf.experiments import records
from hiabp_tf.experiments import report
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.training import loop as train  # the loop itself: its module attributes are patched or called


def _run(workdir, steps=2, **overrides):
    settings = dict(dataset="mnist_5k", num_layers=1, latent_dims=(4,), width=4, batch_size=50, langevin_steps=2)
    settings.update(overrides)
    train.train(config_lib.RunConfig(**settings), str(workdir), steps, log_every=1, eval_every=10**6,
                eval_examples=20, checkpoint_every=steps)
    return str(workdir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {"complete": _run(root / "complete"), "abp": _run(root / "abp", method="abp"),
           "vae": _run(root / "vae", method="vae")}
    for mask in ("pepper", "region20"):
        out[mask] = _run(root / mask, mask=mask)
    out["t5"] = _run(root / "t5", langevin_steps=5)
    out["seed1"] = _run(root / "seed1", seed=1)  # "complete" with another training seed
    return out


@pytest.mark.slow
def test_training_on_occluded_images_never_sees_occluded_pixels(tmp_path, monkeypatch):
    """With --mask, every batch the model trains on has its occluded pixels blanked and carries the
    fixed per-example mask; the same example gets the same mask every time it comes back."""
    seen = []
    original = train.methods.build_model

    def recording_build(*args, **kwargs):
        model = original(*args, **kwargs)
        step = model.train_step

        def record(batch, seed, mask=None):
            seen.append({k: np.asarray(v) for k, v in batch.items()} | {"mask_arg": np.asarray(mask)})
            return step(batch, seed, mask)
        model.train_step = record
        return model

    monkeypatch.setattr(train.methods, "build_model", recording_build)
    _run(tmp_path / "m", steps=3, mask="region20", batch_size=2000)  # 4000 images: epoch of 2 batches
    for batch in seen:
        np.testing.assert_array_equal(batch["mask"], batch["mask_arg"])
        assert np.all(batch["image"][batch["mask"] == 0] == 0)  # occluded pixels never reach the model
        expected = masks.example_masks("region20", batch["image"].shape, batch["index"], 0).numpy()
        np.testing.assert_array_equal(batch["mask"], expected)


@pytest.mark.slow
def test_masked_evaluation_reports_recovery_on_occluded_pixels(runs):
    """evaluate --mask scores recovery error of every reconstruction on the occluded test pixels,
    writes its own JSON, and leaves the unmasked result alone."""
    plain = evaluate.evaluate(runs["pepper"])
    masked = evaluate.evaluate(runs["pepper"], mask="pepper")
    assert masked["mask"] == "pepper" and masked["trained_with_mask"] == "pepper"
    for key in ("recovery_mae_E", "recovery_mse_E", "recovery_mae_EL", "recovery_mse_EL"):
        assert 0.0 < masked[key] < 1.0
    assert masked["recovery_mse_EL"] <= masked["recovery_mae_EL"]  # errors in [0, 1]: squares are smaller
    paths = [evaluate.result_path(runs["pepper"], "mnist_5k", "test", m) for m in ("none", "pepper")]
    assert json.load(open(paths[0])) == plain and json.load(open(paths[1])) == masked
    vae = evaluate.evaluate(runs["vae"], mask="region20")
    assert "recovery_mae_E" in vae and "recovery_mae_EL" not in vae


@pytest.mark.slow
def test_training_image_recovery_uses_the_masks_the_run_trained_with(runs):
    """The paper's Table 2 protocol: on the train split, a masked run is scored on the pixels its own
    training masks hid (seeded by its training seed), not on the test masks."""
    result = evaluate.evaluate(runs["region20"], split="train", mask="region20")
    assert result["split"] == "train" and result["mask_seed"] == 0 and result["num_examples"] == 4000
    assert evaluate.evaluate(runs["region20"], mask="region20")["mask_seed"] == metrics.TEST_MASK_SEED
    from hiabp_tf.data import input_pipeline
    model, config, _, _ = workdir_lib.restore(runs["region20"])
    ds, _ = input_pipeline.make_eval_dataset("mnist_5k", "train", batch_size=500)
    on_training_masks = metrics.reconstruction_mse(model, ds, mask_spec="region20", mask_seed=config.seed)
    on_test_masks = metrics.reconstruction_mse(model, ds, mask_spec="region20")
    assert result["recovery_mae_EL"] == pytest.approx(on_training_masks["recovery_mae_EL"], rel=1e-6)
    assert result["recovery_mae_EL"] != pytest.approx(on_test_masks["recovery_mae_EL"], rel=1e-6)
    # The no-model reference there fills with the mean of the observed training pixels only.
    train_mask = masks.example_masks("region20", (28, 28, 1), np.arange(4000), 0).numpy()
    images = np.concatenate([b["image"].numpy() for b in ds])
    observed_mean = (images * train_mask).sum(0) / np.maximum(train_mask.sum(0), 1)
    expected = np.abs(images - observed_mean)[train_mask == 0].mean()
    reference = metrics.mean_image_recovery("mnist_5k", "region20", split="train", mask_seed=0)
    assert reference["recovery_mae"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_table2_report(runs, tmp_path):
    """Table 2 has one column per mask; rows for the masked models on their own training images (the
    paper's protocol) and on occluded test images, the complete-trained model, the mean-image
    references and the paper's numbers; a figure per mask; every cell is the evaluate JSON's."""
    for mask in ("pepper", "region20"):
        evaluate.evaluate(runs[mask], mask=mask)
        evaluate.evaluate(runs[mask], mask=mask, split="train")
        evaluate.evaluate(runs["complete"], mask=mask)
    path = report.write_table2(str(tmp_path), "table2.md", "T2", {"pepper": runs["pepper"],
                               "region20": runs["region20"]}, runs["complete"], "pytest", num_images=3)
    text = open(path).read()
    pepper = report.load_eval(runs["pepper"], "pepper")
    pepper_train = report.load_eval(runs["pepper"], "pepper", split="train")
    complete = report.load_eval(runs["complete"], "region20")
    assert f"{pepper['recovery_mae_EL']:.5f} ({pepper['recovery_mse_EL']:.5f})" in text
    assert f"| {report.TRAINING_IMAGES}: error, trained on occluded images | {pepper_train['recovery_mae_EL']:.5f}" \
        in text
    assert f"{complete['recovery_mae_EL']:.5f}" in text
    assert "| test images: error, trained on complete images |" in text
    assert "| paper (CelebA, 10,000 training faces, 64 x 64): error | 0.0502 | 0.0513 |" in text
    assert os.path.isfile(tmp_path / "table2_pepper.png") and os.path.isfile(tmp_path / "table2_region20.png")
    numbers = json.load(open(tmp_path / "table2.json"))["rows"]  # what the claims read
    assert {(r["mask"], r["images"], r["trained_on"]) for r in numbers} == {
        (m, i, t) for m in ("pepper", "region20") for i, t in (
            (report.TRAINING_IMAGES, "trained on occluded images"), (report.TEST_IMAGES, "trained on occluded images"),
            (report.TEST_IMAGES, "trained on complete images"), (report.TRAINING_IMAGES, report.MEAN_IMAGE_REFERENCE),
            (report.TEST_IMAGES, report.MEAN_IMAGE_REFERENCE))}
    assert next(r for r in numbers if r["mask"] == "pepper" and r["images"] == report.TEST_IMAGES
                and "occluded" in r["trained_on"])["recovery_mae"] == pepper["recovery_mae_EL"]
    reference = metrics.mean_image_recovery("mnist_5k", "region20")  # the no-model row, on the same masks
    assert next(r for r in numbers if r["mask"] == "region20" and r["images"] == report.TEST_IMAGES
                and r["trained_on"] == report.MEAN_IMAGE_REFERENCE)["recovery_mae"] == reference["recovery_mae"]
    assert f"| test images: error, {report.MEAN_IMAGE_REFERENCE} |" in text
    # A mask run kept only as a record without its model: its numbers stand, its figure is not drawn.
    record = str(tmp_path / "record_region20")
    records.save(runs["region20"], record, workdir_lib.restore(runs["region20"])[3])
    again = tmp_path / "again"
    os.makedirs(again)
    (again / "table2_region20.png").write_bytes(b"an older figure")
    text = open(report.write_table2(str(again), "table2.md", "T2", {"pepper": runs["pepper"], "region20": record},
                                    runs["complete"], "pytest", num_images=3)).read()
    assert "`table2_region20.png` is not drawn" in text and "no shipped model" in text
    assert os.path.isfile(again / "table2_pepper.png") and not os.path.exists(again / "table2_region20.png")
    region20 = report.load_eval(runs["region20"], "region20")
    assert f"{region20['recovery_mae_EL']:.5f} ({region20['recovery_mse_EL']:.5f})" in text


@pytest.mark.slow
def test_table3_report(runs, tmp_path):
    """Table 3 reads each run's MSE [E+L] at its own T, and refuses a run evaluated at another T."""
    evaluate.evaluate(runs["complete"])
    evaluate.evaluate(runs["t5"])
    path = report.write_table3(str(tmp_path), "table3.md", "T3", {"2": runs["complete"], "5": runs["t5"]}, None)
    text = open(path).read()
    assert "| LANGEVIN STEPS | T = 2 | T = 5 |" in text
    assert f"{report.load_eval(runs['t5'])['mse_EL']:.5f}" in text
    numbers = json.load(open(tmp_path / "table3.json"))["rows"]
    assert [(r["langevin_steps"], r["mse"]) for r in numbers] == [
        (2, report.load_eval(runs["complete"])["mse_EL"]), (5, report.load_eval(runs["t5"])["mse_EL"])]
    with pytest.raises(errors.WorkdirError, match="T = 5"):
        report.write_table3(str(tmp_path), "bad.md", "T3", {"3": runs["t5"]}, None)
    evaluate.evaluate(runs["seed1"])  # two seeds at T = 2: mean ± std
    report.write_table3(str(tmp_path), "table3.md", "T3", {"2": [runs["complete"], runs["seed1"]], "5": runs["t5"]},
                        None)
    seeds = [report.load_eval(w)["mse_EL"] for w in (runs["complete"], runs["seed1"])]
    two = json.load(open(tmp_path / "table3.json"))["rows"][0]
    assert two["mse_seeds"] == seeds and two["mse"] == pytest.approx(np.mean(seeds))
    assert f"{np.mean(seeds):.5f} ± {np.std(seeds, ddof=1):.5f} (2 seeds)" in open(tmp_path / "table3.md").read()


@pytest.mark.slow
def test_figure1_scores_each_run_at_its_training_t_and_one_model_at_each_test_time_t(runs, tmp_path):
    """Figure 1: IABP and ABP at their training T (2), the verdict, and the IABP model at each test-time
    T from the encoder ([E+L], evaluate's result) and from noise ([L] of the same generator, its own
    JSON); T = 0 from noise decodes the noise, far from the test image."""
    from hiabp_tf.experiments import informative_init
    path = report.write_figure1(str(tmp_path), {"IABP": {2: [runs["complete"]]}, "ABP": {2: [runs["abp"]]}},
                                runs["complete"], [0, 3], None, pending=["abp_t1"], planned_steps=(1, 2))
    text = open(path).read()
    assert os.path.isfile(tmp_path / "figure1.png") and "`abp_t1`" in text
    for t in (0, 3):
        encoder = report.load_eval(runs["complete"], langevin_steps=t)
        noise = json.load(open(informative_init.noise_result_path(runs["complete"], "mnist_5k", t)))
        assert encoder["langevin_steps"] == noise["langevin_steps"] == t and noise["init"] == "noise"
        assert f"| {t} | {encoder['mse_EL']:.5f} | {noise['mse_L']:.5f} |" in text
    data = json.load(open(tmp_path / "figure1.json"))
    assert {(r["initialisation"], r["langevin_steps"]) for r in data["rows"]} == {
        (i, t) for i in ("encoder", "noise") for t in (0, 3)}
    assert [(r["method"], r["training_steps"]) for r in data["training"]] == [("IABP", 2), ("ABP", 2)]
    assert data["training"][1]["mse"] == report.load_eval(runs["abp"])["mse_L"]
    assert data["verdict"]["verdict"] == "untested"  # no IABP run below ABP's largest T here


@pytest.mark.slow
def test_samples_and_index(runs, tmp_path):
    """The samples page links both figures; the index lists every file with its run.sh command."""
    out = tmp_path / "results" / "quick"
    report.write_samples(str(out), [("VAE", runs["vae"]), ("ABP", runs["abp"]), ("HiABP", runs["complete"])],
                         "pytest", num_images=3)
    assert os.path.isfile(out / "samples.png") and os.path.isfile(out / "reconstructions.png")
    (tmp_path / "results" / "memory.md").write_text("# Memory\n")  # a machine-level result
    index = open(report.write_index(str(out), "pytest")).read()
    assert "[samples.md](quick/samples.md)" in index
    assert "[samples.png](quick/samples.png)" in index and "`./run.sh samples quick`" in index
    assert "| [memory.md](memory.md) |" in index and "`./run.sh memory`" in index
    assert "performance.md" not in index  # only files that exist are listed


@pytest.mark.slow
def test_learning_curves_come_from_the_evaluations_during_training(tmp_path):
    """train writes one learning_curve.jsonl line per evaluation; the learning-curve report shows
    each, the change over the last doubling of updates, and the paper's number, and writes the PNG."""
    from hiabp_tf.experiments import claims
    iabp = str(tmp_path / "iabp")
    train.train(config_lib.RunConfig(dataset="mnist_5k", latent_dims=(4,), width=4, batch_size=50, langevin_steps=2),
                iabp, 4, log_every=1, eval_every=2, eval_examples=20, checkpoint_every=2)
    curve = workdir_lib.read_learning_curve(iabp)
    assert [r["step"] for r in curve] == [2, 4] and all(r["num_examples"] == 20 for r in curve)
    path = report.write_learning_curves(str(tmp_path / "out"), {("mnist_5k", "iabp"): iabp}, "pytest")
    text = open(path).read()
    change = curve[1]["mse_EL"] / curve[0]["mse_EL"] - 1
    assert f"| IABP [E+L] (L=1) | {curve[0]['mse_EL']:.5f} | {curve[1]['mse_EL']:.5f} | {change:+.1%} (2 → 4) | " \
           f"{claims.PAPER_TABLE1['MNIST'][('iabp', 'mse_EL')]:.4f} |" in text
    assert f"| IABP [E] (L=1) | {curve[0]['mse_E']:.5f} |" in text and "| last doubling | paper MNIST |" in text
    assert os.path.isfile(tmp_path / "out" / "learning_curves.png")
    # Another dataset column's page compares with the paper's numbers of that column, not MNIST's.
    text = open(report.write_learning_curves(str(tmp_path / "out"), {("CelebA", "iabp"): iabp}, "pytest",
                                             name="learning_curves_celeba")).read()
    assert "| last doubling | paper CelebA |" in text and "paper MNIST" not in text
    assert f"{claims.PAPER_TABLE1['CelebA'][('iabp', 'mse_EL')]:.4f} |" in text
    # Two seeds: the mean with the lowest-to-highest band; a run trained longer in its own section.
    seed1, long = str(tmp_path / "iabp_seed1"), str(tmp_path / "iabp_long")
    for workdir, seed, steps in ((seed1, 1, 4), (long, 0, 8)):
        train.train(config_lib.RunConfig(dataset="mnist_5k", latent_dims=(4,), width=4, batch_size=50,
                                         langevin_steps=2, seed=seed), workdir, steps, log_every=1, eval_every=2,
                    eval_examples=20, checkpoint_every=2)
    path = report.write_learning_curves(str(tmp_path / "out"), {("mnist_5k", "iabp"): [iabp, seed1]}, "pytest",
                                        long_runs={("mnist_5k", "iabp"): long})
    text = open(path).read()
    both = [[r["mse_EL"] for r in workdir_lib.read_learning_curve(w)] for w in (iabp, seed1)]
    curves = json.load(open(tmp_path / "out" / "learning_curves.json"))["curves"]
    el = next(c for c in curves if c["score"] == "mse_EL" and not c["long"])
    np.testing.assert_allclose(el["mse"], np.mean(both, axis=0))
    np.testing.assert_allclose(el["low"], np.min(both, axis=0))
    np.testing.assert_allclose(el["high"], np.max(both, axis=0))
    assert el["num_seeds"] == 2 and "mean over 2 training seeds" in text
    long_el = next(c for c in curves if c["score"] == "mse_EL" and c["long"])
    assert long_el["steps"] == [2, 4, 6, 8] and "## Trained longer" in text
    assert "IABP [E+L] (L=1), 8 updates (seed 0)" in text and "Not trained longer yet" not in text
    longer = json.load(open(tmp_path / "out" / "learning_curves.json"))["trained_longer"]
    assert longer["steps"] == 8 and longer["marks"] == [4, 8] and longer["missing"] == []
    assert longer["summary"] == report.ordering_over_training(longer["marks"], longer["orders"])
    assert longer["summary"] in text and longer["methods"] == ["IABP [E] (L=1)", "IABP [E+L] (L=1)"]
    # A planned long run that is not trained yet is named, whether or not another one is there.
    for long_runs in ({("mnist_5k", "iabp"): long}, {}):
        path = report.write_learning_curves(str(tmp_path / "out"), {("mnist_5k", "iabp"): [iabp, seed1]}, "pytest",
                                            long_runs=long_runs, long_missing=["vae", "hiabp_l4"])
        text = open(path).read()
        assert text.count("## Trained longer") == 1
        assert "Not trained longer yet: VAE, HiABP [E+L] (L=4) (their NAME_long runs of the plan)" in text
        assert ("the order above is of the runs that are" in text) == bool(long_runs)
    with pytest.raises(errors.WorkdirError, match="learning_curve.jsonl"):
        report.write_learning_curves(str(tmp_path / "out"), {("mnist_5k", "iabp"): str(tmp_path / "none")}, None)


class _FlatFeatures:
    """A cheap stand-in for the FID classifier: 16 pixel means as features."""
    description = "16 block means of the pixels (test stand-in)"

    def __call__(self, images):
        x = np.asarray(images, np.float32)
        return x[:, ::7, ::7, 0].reshape(len(x), -1)


@pytest.mark.slow
def test_fid_in_evaluate_and_table1(runs, tmp_path, monkeypatch):
    """evaluate --fid adds the FID of generated samples against the training split, and Table 1
    shows it in the FID column with the feature space named below the table."""
    from hiabp_tf.evaluation import fid
    monkeypatch.setattr(fid.ClassifierFeatures, "load_or_train", classmethod(lambda cls, *a, **k: _FlatFeatures()))
    result = evaluate.evaluate(runs["vae"], fid="classifier", fid_samples=200, fid_classifier=str(tmp_path / "c.keras"))
    assert result["fid"] > 0 and result["fid_samples"] == 200 and "stand-in" in result["fid_features"]
    path = report.write_table1(str(tmp_path), "t1.md", "T1", {("mnist_5k", "vae"): runs["vae"]}, None, num_images=2)
    text = open(path).read()
    assert f"| VAE | {result['mse_E']:.5f} | — | {result['fid']:.2f} | 1 |" in text
    assert "FID of 200 samples against the training split in 16 block means" in text
    (row,) = json.load(open(tmp_path / "t1.json"))["rows"]
    assert (row["row"], row["score"], row["mse"]["mean"], row["fid"]["mean"]) == (
        "vae", "mse_E", result["mse_E"], result["fid"])
    again = evaluate.evaluate(runs["vae"])  # without --fid: the FID of the same checkpoint is kept
    assert again["fid"] == result["fid"] and again["fid_samples"] == 200
    assert "fid" not in evaluate.evaluate(runs["vae"], seed=1)  # another sample seed: not the same FID
    with pytest.raises(errors.ConfigError, match="--inception_weights"):
        evaluate.evaluate(runs["vae"], fid="inception")


@pytest.mark.slow
def test_table1_cells_are_seed_means_at_both_test_times_and_both_ways(runs, tmp_path):
    """Table 1 over training seeds: mean ± std of each score, the Langevin methods also at a second
    test-time T, and [E+L] also deterministic; the JSON keeps every seed's value."""
    seeds = [runs["complete"], runs["seed1"]]
    for workdir in seeds + [runs["abp"]]:
        evaluate.evaluate(workdir)
        evaluate.evaluate(workdir, langevin_steps=3)
    path = report.write_table1(str(tmp_path), "t1.md", "T1", {("mnist_5k", "iabp"): seeds,
                                                               ("mnist_5k", "abp"): runs["abp"]},
                               None, num_images=2, second_t=3,
                               diverged={"mnist_iabp_seed2": "training diverged at step 5: loss became non-finite"})
    text = open(path).read()
    assert "diverged, not in the cells" in text and "`mnist_iabp_seed2`: training diverged at step 5" in text
    assert json.load(open(tmp_path / "t1.json"))["diverged"] == {
        "mnist_iabp_seed2": "training diverged at step 5: loss became non-finite"}
    assert "| METHODS | MSE, training T | MSE, T = 3 | [E+L] deterministic, training T | [E+L] deterministic, T = 3 |" \
        in text
    rows = {(r["row"], r["score"]): r for r in json.load(open(tmp_path / "t1.json"))["rows"]}
    el, e, abp = rows[("iabp", "mse_EL")], rows[("iabp", "mse_E")], rows[("abp", "mse_L")]
    for key, read, steps in (("mse", "mse_EL", None), ("mse_second_t", "mse_EL", 3), ("mse_det", "mse_EL_det", None),
                             ("mse_det_second_t", "mse_EL_det", 3)):
        values = [report.load_eval(w, langevin_steps=steps)[read] for w in seeds]
        assert el[key]["seeds"] == values and el[key]["std"] == pytest.approx(np.std(values, ddof=1))
    assert e["mse_second_t"] is None and e["mse_det"] is None  # [E] has no Langevin to vary
    assert abp["mse_second_t"]["mean"] == report.load_eval(runs["abp"], langevin_steps=3)["mse_L"]
    assert abp["mse_det"] is None and abp["mse"]["std"] is None and el["seeds"] == [0, 1]
    mean, std = el["mse"]["mean"], el["mse"]["std"]
    assert f"| IABP [E+L] (L=1) | {mean:.5f} ± {std:.5f} |" in text and " | 2 |" in text
