"""The claims table: verdicts computed from the results JSON files, known answers on made-up numbers;
the learning-curve helpers; the README's results block."""

import json
import os

import pytest

from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import claims
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import report
from hiabp_tf.runtime import workdir as workdir_lib

# Made-up Table 1 numbers, each the mean of three seeds 1% apart: every claim holds except "L = 4 < L = 3"
# (+0.8%: a tie at this spread) and "IABP [E+L] < ABP (persistent)" (does not hold).
MSE = {("vae", "mse_E"): 0.030, ("lvae", "mse_E"): 0.032, ("vlae", "mse_E"): 0.031, ("abp", "mse_L"): 0.025,
       ("abp_persistent", "mse_L"): 0.015, ("iabp", "mse_E"): 0.024, ("iabp", "mse_EL"): 0.018,
       ("hiabp_l2", "mse_EL"): 0.014, ("hiabp_l3", "mse_EL"): 0.012, ("hiabp_l4", "mse_EL"): 0.0121,
       ("lvae_all_layers", "mse_E"): 0.033, ("lvae_no_warmup", "mse_E"): 0.031,
       ("lvae_equal", "mse_E"): 0.032}
# The same claims with the deterministic [E+L]: L = 4 is clearly below L = 3 there.
DETERMINISTIC = {"hiabp_l4": 0.0100}


def _seeds(mean, n=3):
    values = [mean * (1 + 0.01 * (k - (n - 1) / 2)) for k in range(n)]
    return statistics.seed_summary(values)


def _write_results(out, table3=None, figure1=None, still_improving=("hiabp_l4",), mean_image=0.15, seeds=3):
    os.makedirs(out, exist_ok=True)
    rows = []
    for row, label, score in report.TABLE1_ROWS:
        mse = MSE[(row, score)]
        langevin = score != "mse_E"
        rows.append(dict(column="MNIST", row=row, label=label, score=score, mse=_seeds(mse, seeds), fid=None,
                         step=3500, dataset="mnist", num_examples=10000, workdirs=[f"runs/cpu/{row}"],
                         mse_second_t=_seeds(mse * 0.9, seeds) if langevin else None,
                         mse_det=_seeds(DETERMINISTIC.get(row, mse), seeds) if score == "mse_EL" else None))
    workdir_lib.write_json_atomic(os.path.join(out, "table1.json"), {"command": "t", "second_t": 60, "rows": rows})
    curves = [dict(row=r["row"], score=r["score"], label=r["label"], steps=[2000, 4000], mse=[1, 1],
                   last_doubling=dict(from_step=2000, to_step=4000,
                                      relative=-0.2 if r["row"] in still_improving else -0.01))
              for r in rows]
    workdir_lib.write_json_atomic(os.path.join(out, "learning_curves.json"), {"command": "t", "curves": curves})
    table3 = table3 or {5: 0.020, 10: 0.016, 15: 0.015, 30: 0.0145}
    workdir_lib.write_json_atomic(os.path.join(out, "table3.json"), {"command": "t", "rows": [
        dict(langevin_steps=t, step=3500, dataset="mnist", workdirs=["w"],
             **({"mse": v, "mse_std": None, "mse_seeds": [v]} if t != 15 else
                {"mse": v, "mse_std": _seeds(v)["std"], "mse_seeds": _seeds(v)["seeds"]}))
        for t, v in table3.items()]})
    figure1 = figure1 or {0: (0.05, 0.09), 15: (0.018, 0.025), 60: (0.015, 0.016)}
    workdir_lib.write_json_atomic(os.path.join(out, "figure1.json"), {"command": "t", "rows": [
        dict(init=i, initialisation=i, langevin_steps=t, mse=v[k]) for t, v in figure1.items()
        for k, i in enumerate(("encoder", "noise"))]})
    table2 = [dict(mask=m, trained_on=f"trained on {kind} images", recovery_mae=0.1 + k, recovery_mse=0.05, step=4000,
                   dataset="mnist_5k", workdir="w") for m in ("pepper", "region10", "region20")
              for k, kind in enumerate(("occluded", "complete"))]
    if mean_image is not None:  # the no-model reference row; the models' occluded recovery is 0.1
        table2 += [dict(mask=m, trained_on=plan.MEAN_IMAGE_REFERENCE, recovery_mae=mean_image, recovery_mse=0.05,
                        step=None, dataset="mnist_5k", workdir=None) for m in ("pepper", "region10", "region20")]
    workdir_lib.write_json_atomic(os.path.join(out, "table2.json"), {"command": "t", "rows": table2})
    return out


def _by_claim(out):
    return {c["claim"]: c for c in json.load(open(os.path.join(out, "claims.json")))["claims"]}


def _seeds_of(out, row, score, variant="mse", column="MNIST"):
    table1 = json.load(open(os.path.join(out, "table1.json")))
    return next(r[variant]["seeds"] for r in table1["rows"] if (r["row"], r["score"], r["column"]) ==
                (row, score, column))


def test_verdicts_follow_welchs_test_on_the_seeds_holm_corrected(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    text = open(claims.write_claims(out, "pytest")).read()
    by = _by_claim(out)
    tested = [c for c in by.values() if c["kind"] == "paper" and c.get("p") is not None]
    # Holm over every tested claim of the paper, in one family.
    assert [c["p_holm"] for c in tested] == pytest.approx(statistics.holm([c["p"] for c in tested]))
    assert all(c["family"] == len(tested) for c in tested) and len(tested) == 10  # 9 pairs and the trend
    l4 = by["HiABP L = 4 < L = 3"]
    expected = statistics.welch(_seeds_of(out, "hiabp_l4", "mse_EL"), _seeds_of(out, "hiabp_l3", "mse_EL"))
    assert l4["p"] == pytest.approx(expected["p"]) and l4["ci"] == pytest.approx(list(expected["relative_ci"]))
    assert l4["effect"] == pytest.approx(0.0121 / 0.0120 - 1) and l4["test"] == statistics.WELCH
    assert l4["verdict"] == "inconclusive" and l4["p_holm"] >= statistics.ALPHA
    assert "inconclusive, not equal: with these seeds the test detects a difference of" in l4["note"]
    assert f"{expected['mde']:.1%} or more with 80% power" in l4["note"]
    assert l4["verdict_mse_det"] == "holds" and l4["verdict_mse_second_t"] == "inconclusive"
    assert "HiABP [E+L] (L=4) still improving (-20.0%" in l4["note"] and "HiABP [E+L] (L=3) flat (-1.0%" in l4["note"]
    for claim in ("IABP: Langevin improves on the initializer, [E+L] < [E]", "HiABP L = 2 < IABP [E+L]",
                  "HiABP L = 3 < L = 2", "IABP [E+L] < ABP (non-persistent)", "HiABP L = 4 < VAE",
                  "HiABP L = 4 < LVAE (L=4)", "HiABP L = 4 < VLAE (L=4)"):  # L = 4, the paper's choice
        assert by[claim]["verdict"] == "holds" and by[claim]["p_holm"] < statistics.ALPHA, claim
    persistent = by["IABP [E+L] < ABP (persistent)"]
    assert persistent["verdict"] == "does not hold" and persistent["effect"] > 0
    trend = by["the MSE falls as L grows (L = 1..4, one test over every seed)"]
    levels = [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    values = [v for row in ("iabp", "hiabp_l2", "hiabp_l3", "hiabp_l4") for v in _seeds_of(out, row, "mse_EL")]
    assert trend["p"] == pytest.approx(statistics.log_linear_trend(levels, values)["p"])
    assert trend["verdict"] == "holds" and trend["effect"] < 0 and trend["source"] == claims.DEPTH_SOURCE
    assert by["HiABP L = 4 < L = 3"]["paper"] == "0.0151 < 0.0162" and by["HiABP L = 4 < L = 3"]["source"] == "Table 1"
    assert by["HiABP L = 4 < L = 3"]["ours"] == "0.0121 ± 0.0001 vs 0.0120 ± 0.0001"
    # Table 3 was measured on SVHN in the paper: ours on MNIST is described, not judged.
    assert by["Table 3: the MSE falls as T grows"]["verdict"] == "not comparable"
    assert "T=30: 0.0145" in by["Table 3: the MSE falls as T grows"]["ours"]
    assert next(c for k, c in by.items() if k.startswith("Table 3: little to gain"))["verdict"] == "not comparable"
    f1 = next(c for k, c in by.items() if k.startswith("Figure 1"))
    assert f1["verdict"] == "untested" and f1["basis"] == "a figure"
    assert next(c for k, c in by.items() if k.startswith("Table 2"))["verdict"] == "not comparable"
    learns = by[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]  # ours, one seed per mask: not a tested verdict
    assert learns["kind"] == "ours" and learns["verdict"] == "untested"
    assert learns["ours"].startswith("pepper 0.1000 vs 0.1500 (-33.3%)") and "lower for every mask" in learns["note"]
    no_warmup = next(c for c in by.values() if "no KL warm-up" in c["claim"])  # ours, not the paper's count
    assert no_warmup["kind"] == "ours" and no_warmup["verdict"] == "holds" and no_warmup["paper"] == "0.0151 < 0.0185"
    assert ("**14 claims of the paper: 10 decided by a test (Holm-corrected together): 8 hold, 1 do not hold, 1 "
            "inconclusive; 1 without a test (a figure); 3 not comparable (measured on other data).**") in text
    assert text.index("## The paper's claims") < text.index("## Claims of our own (not counted above)")
    assert "Verdicts that change with the test-time choice: HiABP L = 4 < L = 3." in text
    assert "| HiABP [E+L] (L=3) | 0.0120 ± 0.0001 | 3 | 0.0108 | 0.0120 | 0.0162 | lower |" in text
    assert "| LVAE variant (L=4, x from every layer) | 0.0330 ± 0.0003 | 3 | — | — | — | — |" in text
    assert "Command: `pytest`" in text and "MNIST: 3,500 updates, 3 training seeds per row" in text


def test_one_seed_claims_are_untested_and_counted_apart(tmp_path):
    out = _write_results(str(tmp_path / "quick"), seeds=1)
    text = open(claims.write_claims(out)).read()
    by = _by_claim(out)
    l4 = by["HiABP L = 4 < L = 3"]
    assert l4["verdict"] == "untested" and l4["p"] is None and l4["test"] == "none: one training seed on a side"
    assert l4["effect"] == pytest.approx(0.0121 / 0.0120 - 1)
    table1 = [c for c in by.values() if c["source"] in ("Table 1", claims.LANGEVIN_SOURCE, claims.DEPTH_SOURCE)]
    assert table1 and all(c["verdict"] == "untested" for c in table1)  # never "holds" on one seed
    assert f"0 decided by a test (Holm-corrected together): 0 hold, 0 do not hold, 0 inconclusive; " \
           f"{len(table1) + 1} without a test (a figure, one seed)" in text


def test_a_figure_that_decides_its_claim_with_a_test_joins_the_family(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    path = os.path.join(out, "figure1.json")
    figure = json.load(open(path))
    figure["claims"] = [dict(claim="Figure 1: encoder initialisation reaches with T = 2 what noise needs T = 15 for",
                             test="Welch's t-test", p=0.001, effect=-0.3, ci=[-0.4, -0.2], ours="x"),
                        dict(claim="Figure 1: test-time panel", verdict="untested", basis="a figure", ours="y")]
    workdir_lib.write_json_atomic(path, figure)
    claims.write_claims(out)
    by = _by_claim(out)
    decided = by["Figure 1: encoder initialisation reaches with T = 2 what noise needs T = 15 for"]
    assert decided["verdict"] == "holds" and decided["family"] == 11 and decided["p_holm"] >= 0.001
    assert by["Figure 1: test-time panel"]["verdict"] == "untested"


def test_incomplete_data_claim_fails_when_a_mask_is_no_better_than_the_mean_image(tmp_path):
    out = _write_results(str(tmp_path / "cpu"), mean_image=0.1)  # a tie with the models' 0.1 is no better
    claims.write_claims(out)
    learns = _by_claim(out)[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]
    assert learns["verdict"] == "untested" and learns["kind"] == "ours"
    assert learns["note"] == ("no better than the mean image for pepper, region10, region20 (one seed: not a tested "
                              "verdict)")


def test_incomplete_data_claim_without_the_reference_row_asks_for_a_rerun(tmp_path):
    out = _write_results(str(tmp_path / "cpu"), mean_image=None)  # a table2.json written before the row existed
    claims.write_claims(out)
    learns = _by_claim(out)[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]
    assert learns["verdict"] == claims.NOT_MEASURED and "`./run.sh table2 cpu`" in learns["note"]


def test_missing_results_name_the_command(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    os.remove(os.path.join(out, "learning_curves.json"))
    with pytest.raises(claims.MissingResultError, match=r"run `./run.sh table1 cpu` first"):
        claims.write_claims(out)


def test_experiments_not_run_yet_are_claims_not_measured_naming_their_command(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    for name in ("table2", "table3", "figure1"):
        os.remove(os.path.join(out, f"{name}.json"))
    text = open(claims.write_claims(out)).read()
    by = _by_claim(out)
    assert by["Table 3: the MSE falls as T grows"]["verdict"] == claims.NOT_MEASURED
    assert "`./run.sh table3 cpu` measures it" in by["Table 3: the MSE falls as T grows"]["note"]
    assert next(c for k, c in by.items() if k.startswith("Table 2"))["note"].startswith("table2.json is not")
    assert "`./run.sh figure1 cpu`" in next(c for k, c in by.items() if k.startswith("Figure 1"))["note"]
    assert by[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]["verdict"] == claims.NOT_MEASURED
    assert ("14 claims of the paper: 10 decided by a test (Holm-corrected together): 8 hold, 1 do not hold, 1 "
            "inconclusive; 0 without a test; 0 not comparable (measured on other data); 4 not measured yet.") in text


def test_readme_block_is_replaced_between_the_markers(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{claims.README_START}\nold\n{claims.README_END}\nafter\n")
    claims.write_claims(out, readme=str(readme))
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith("\nafter\n") and "\nold\n" not in text
    assert "](cpu/claims.md)" in text and "](cpu/learning_curves.png)" in text  # relative to the README
    assert "| IABP [E+L] (L=1) | 0.0180 ± 0.0002 (3) | 0.0162 | 0.0180 | 0.0180 |" in text
    assert "| inconclusive | HiABP L = 4 < L = 3 | +0.8% [" in text and "| Table 1, MNIST | ours, 3,500 updates" in text
    assert "14 claims of the paper: 10 decided by a test" in text
    once = text
    claims.write_claims(out, readme=str(readme))
    assert readme.read_text() == once  # idempotent
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(claims.MissingResultError, match="results:start"):
        claims.update_readme(str(tmp_path / "bare.md"), "x")


def test_readme_block_says_whether_the_order_holds_for_the_runs_trained_longer(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    assert "Trained 14,000 updates" not in claims.readme_block(out, str(tmp_path))  # none trained longer
    path = os.path.join(out, "learning_curves.json")
    curves = json.load(open(path))
    curves["trained_longer"] = dict(methods=["VAE", "HiABP [E+L] (L=4)"], steps=14000, marks=[3500, 14000],
                                    orders=[["VAE", "HiABP [E+L] (L=4)"], ["HiABP [E+L] (L=4)", "VAE"]],
                                    summary=report.ordering_over_training(
                                        [3500, 14000], [["VAE", "HiABP"], ["HiABP", "VAE"]]),
                                    missing=["IABP [E+L] (L=1)"])
    workdir_lib.write_json_atomic(path, curves)
    block = claims.readme_block(out, str(tmp_path))
    assert ("Trained 14,000 updates ([cpu/learning_curves.md](cpu/learning_curves.md)): The order at 3,500 "
            "updates does not hold as training goes on: at 14,000 it is HiABP < VAE") in block
    assert "Not trained longer yet: IABP [E+L] (L=1)." in block
    assert block.index("learning_curves.png") < block.index("Trained 14,000") < block.index("The paper's claims")


def test_last_doubling_change_known_answers():
    assert report.last_doubling_change([(250, 0.04), (500, 0.03), (1000, 0.02), (2000, 0.018)]) == dict(
        from_step=1000, to_step=2000, relative=pytest.approx(-0.1))
    # No evaluation at exactly half: the one just below it.
    assert report.last_doubling_change([(250, 0.04), (750, 0.02), (1750, 0.01)])["from_step"] == 750
    assert report.last_doubling_change([(250, 0.04)]) is None


def test_ordering_over_training_names_where_the_order_first_changes():
    marks = [3500, 7000, 10500, 14000]
    kept = report.ordering_over_training(marks, [["HiABP", "VAE"]] * 4)
    assert kept.startswith("The order at 3,500 updates holds at every later multiple up to 14,000 (one training seed")
    swapped = report.ordering_over_training(marks, [["HiABP", "VAE"], ["VAE", "HiABP"], ["VAE", "HiABP"],
                                                    ["HiABP", "VAE"]])
    assert swapped.startswith("The order at 3,500 updates does not hold as training goes on: at 7,000 it is "
                              "VAE < HiABP, at 14,000 HiABP < VAE (one training seed")
    last = report.ordering_over_training(marks, [["A", "B"]] * 3 + [["B", "A"]])
    assert "at 14,000 it is B < A (" in last and last.count("14,000") == 1


def test_read_learning_curve_keeps_the_latest_record_and_skips_a_cut_line(tmp_path):
    for record in ({"step": 250, "mse_E": 0.05}, {"step": 500, "mse_E": 0.04}, {"step": 500, "mse_E": 0.039}):
        workdir_lib.append_learning_curve(str(tmp_path), record)
    with open(tmp_path / workdir_lib.LEARNING_CURVE_FILE, "a") as f:
        f.write('{"step": 750, "mse')  # a crash in the middle of a line
    assert workdir_lib.read_learning_curve(str(tmp_path)) == [
        {"step": 250, "mse_E": 0.05}, {"step": 500, "mse_E": 0.039}]
    assert workdir_lib.read_learning_curve(str(tmp_path / "none")) == []


def test_a_celeba_column_gets_the_face_claims_and_table2_is_compared_on_training_faces(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    table1 = json.load(open(os.path.join(out, "table1.json")))
    faces = {"vae": 0.030, "vlae": 0.029, "abp_persistent": 0.031, "iabp": (0.028, 0.026), "hiabp_l4": 0.020}
    for row, label, score in report.TABLE1_ROWS:
        if row in faces:
            value = faces[row] if row != "iabp" else faces[row][score == "mse_EL"]
            table1["rows"].append(dict(column="CelebA", row=row, label=label, score=score, step=3500,
                                       dataset="images:/d/celeba,image_size=32", num_examples=1000,
                                       mse=_seeds(value, 3 if row in ("vae", "hiabp_l4") else 1)))
    workdir_lib.write_json_atomic(os.path.join(out, "table1.json"), table1)
    dataset = "images:/d/celeba,image_size=32,image_crop=0.786517,test_images=1000"
    rows = [dict(mask=m, images=images, trained_on=trained_on, recovery_mae=mae, recovery_mse=0.01, step=3500,
                 dataset=dataset, num_examples=8000 if images.startswith("training") else 1000, workdir="w")
            for m in ("pepper", "region10", "region20")
            for images, trained_on, mae in ((claims.TRAINING_IMAGES, "trained on occluded images", 0.045),
                                            ("test images", "trained on occluded images", 0.047),
                                            (claims.TRAINING_IMAGES, plan.MEAN_IMAGE_REFERENCE, 0.2),
                                            ("test images", plan.MEAN_IMAGE_REFERENCE, 0.21))]
    rows[3 * 4 - 4]["recovery_mae"] = 0.06  # region20 on training faces: above the paper's 0.0513
    workdir_lib.write_json_atomic(os.path.join(out, "table2.json"), {"command": "t", "rows": rows})
    text = open(claims.write_claims(out)).read()
    by = _by_claim(out)
    vae = by["CelebA: HiABP L = 4 < VAE"]
    assert vae["verdict"] == "holds" and vae["test"] == statistics.WELCH and vae["paper"] == "0.0183 < 0.0317"
    assert vae["column"] == "CelebA"
    vlae = by["CelebA: HiABP L = 4 < VLAE (L=4)"]  # one seed of VLAE: no test, no heuristic
    assert vlae["verdict"] == "untested" and vlae["p"] is None and vlae["basis"] == "one seed"
    assert by["CelebA: IABP: Langevin improves on the initializer, [E+L] < [E]"]["verdict"] == "untested"
    depth = by["CelebA: the MSE falls as L grows (L = 1..4, one test over every seed)"]
    assert depth["verdict"] == claims.NOT_MEASURED and "HiABP [E+L] (L=2)" in depth["note"]
    table2 = next(c for k, c in by.items() if k.startswith("Table 2: trained on occluded faces"))
    assert table2["verdict"] == "not comparable" and "at 32 x 32" in table2["note"]
    assert table2["ours"].startswith("pepper 0.0450 (-10.4%)")
    assert "on occluded test faces: pepper 0.0470" in table2["ours"]
    learns = by[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]
    assert learns["verdict"] == "untested" and "of the training images" in learns["ours"]
    assert "## Our Table 1 (CelebA) beside the paper's CelebA column" in text
    assert "| HiABP [E+L] (L=4) | 0.0200 ± 0.0002 | 3 | — | — | 0.0183 | higher |" in text
    assert "CelebA: 3,500 updates, 3 seeds: VAE, HiABP [E+L] (L=4); 1 seed: " in text
    # One family: the CelebA claims are corrected together with MNIST's.
    tested = [c for c in by.values() if c["kind"] == "paper" and c.get("p") is not None]
    assert vae in tested and all(c["family"] == len(tested) for c in tested)


def test_a_table1_with_rows_not_trained_yet_names_them_instead_of_failing(tmp_path):
    """`./run.sh table1 cpu --report_only` reports the rows trained so far; the claims on the others wait."""
    out = _write_results(str(tmp_path / "cpu"))
    table1 = json.load(open(os.path.join(out, "table1.json")))
    table1["rows"] = [r for r in table1["rows"] if r["row"] not in ("vae", "abp")]
    workdir_lib.write_json_atomic(os.path.join(out, "table1.json"), table1)
    text = open(claims.write_claims(out)).read()
    by = _by_claim(out)
    vae = by["HiABP L = 4 < VAE"]
    assert vae["verdict"] == claims.NOT_MEASURED and vae["ours"] == "—" and vae["paper"] == "0.0151 < 0.0202"
    assert "table1.json has no MNIST VAE yet: `./run.sh table1 cpu` trains it" in vae["note"]
    assert by["IABP [E+L] < ABP (non-persistent)"]["verdict"] == claims.NOT_MEASURED
    assert by["HiABP L = 4 < VLAE (L=4)"]["verdict"] == "holds"  # the trained rows are still decided
    assert "; 2 not measured yet." in text and "| VAE |" not in text


def test_ordering_over_training_names_the_gaps_within_the_seed_spread():
    marks = [3500, 7000]
    orders = [["HiABP", "IABP", "VAE"], ["IABP", "HiABP", "VAE"]]
    gaps = [[0.02, 0.10], [0.008, 0.10]]
    spread = {"HiABP": 0.003, "IABP": 0.006, "VAE": 0.004}
    text = report.ordering_over_training(marks, orders, gaps, spread)
    assert ("at 7,000 it is IABP < HiABP < VAE (within twice Table 1's relative seed std: IABP / HiABP (+0.8%))"
            in text)  # 0.8% < 2 x 0.6%; HiABP / VAE's 10% is not within 2 x 0.4%
    assert "HiABP / VAE" not in text
    assert "within" not in report.ordering_over_training(marks, orders, [[0.02, 0.1], [0.2, 0.1]], spread)


def test_figure7_factors_are_tested_claims_of_the_paper(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    comparison = dict(n=500, per_seed=["larger"])
    verdicts = [dict(factor="identity", layer=3, means={"1": 0.03, "2": 0.2, "3": 0.8}, comparisons=[
                    dict(comparison, against=1, difference=0.77, ci=[0.7, 0.8], p=1e-100),
                    dict(comparison, against=2, difference=0.6, ci=[0.5, 0.7], p=1e-80)]),
                dict(factor="width", layer=2, means={"1": 0.5, "2": 1.2, "3": 3.3}, comparisons=[
                    dict(comparison, against=1, difference=0.7, ci=[0.6, 0.8], p=1e-60),
                    dict(comparison, against=3, difference=-2.1, ci=[-2.3, -1.9], p=1e-70)]),
                dict(factor="stroke", layer=1, means={"1": 0.30, "2": 0.31, "3": 0.29}, comparisons=[
                    dict(comparison, against=2, difference=-0.01, ci=[-0.05, 0.03], p=0.6),
                    dict(comparison, against=3, difference=0.01, ci=[-0.03, 0.05], p=0.6)])]
    workdir_lib.write_json_atomic(os.path.join(out, "figure7.json"), dict(test="paired t-test", models=[{}],
                                                                          verdicts=verdicts))
    claims.write_claims(out)
    by = _by_claim(out)
    identity = by["Figure 7: resampling layer 3 of HiABP L = 3 changes digit identity most"]
    width = by["Figure 7: resampling layer 2 of HiABP L = 3 changes digit width most"]
    stroke = by["Figure 7: resampling layer 1 of HiABP L = 3 changes stroke width most"]
    assert identity["verdict"] == "holds" and identity["effect"] == 0.6 and identity["p"] == 1e-80
    assert width["verdict"] == "does not hold" and width["effect"] == -2.1  # layer 3 changes it more
    assert stroke["verdict"] == "inconclusive" and "1 training seed" in stroke["note"]
    assert identity["family"] == 13  # Holm over the paper's tested claims, these three among them


def test_readme_block_says_in_one_line_what_the_latent_size_panel_found(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    assert "**Latent size**" not in claims.readme_block(out, str(tmp_path))  # no panel yet: no line
    workdir_lib.write_json_atomic(os.path.join(out, "latent_size.json"), dict(
        sizes=[12, 24, 48], sentence="The verdict depends on the latent size for HiABP L = 4 < VAE (holds at 12)."))
    block = claims.readme_block(out, str(tmp_path))
    line = next(line for line in block.splitlines() if line.startswith("**Latent size**"))
    assert "[cpu/latent_size.md](cpu/latent_size.md)" in line and "12, 24, 48" in line
    assert line.endswith("The verdict depends on the latent size for HiABP L = 4 < VAE (holds at 12).")


def test_figure1s_training_verdict_is_a_tested_claim_with_the_smallest_holm_p(tmp_path):
    """figure1.json of the training experiment (informative_init): the claim carries the comparison with the
    smallest Holm-adjusted p over the smaller T, its effect relative to ABP's mean, and joins the tested claims
    (not the test-time panel, which compares no trainings)."""
    out = _write_results(str(tmp_path / "cpu"))
    path = os.path.join(out, "figure1.json")
    data = json.load(open(path))
    data["verdict"] = dict(outcome="IABP trained with T = 1 has a lower test MSE", target=dict(abp_steps=15, mse=0.02),
                           comparisons=[dict(iabp_steps=1, p=0.03, p_holm=0.06, relative=-0.05, ci=[-0.002, -0.0001],
                                             test="prediction t-test"),
                                        dict(iabp_steps=5, p=0.0005, p_holm=0.0015, relative=-0.4, ci=[-0.009, -0.007],
                                             test="prediction t-test")])
    workdir_lib.write_json_atomic(path, data)
    results = claims.Results(out)
    (claim,) = claims.figure1_claims(results)
    assert claim["p"] == 0.0015 and claim["effect"] == -0.4 and claim["ci"] == pytest.approx([-0.45, -0.35])
    assert "T = 5 against ABP with T = 15" in claim["test"] and claim["basis"] == "test"
    decided = next(c for c in claims.all_claims(results) if c["claim"] == claim["claim"])
    assert decided["verdict"] == "holds" and decided["p_holm"] >= 0.0015
    data["verdict"]["comparisons"] = []
    workdir_lib.write_json_atomic(path, data)
    assert claims.figure1_claims(claims.Results(out))[0]["verdict"] == "untested"
