"""The claims table: verdicts computed from the results JSON files, known answers on made-up numbers;
the learning-curve helpers; the README's results block."""

import json
import os

import pytest

from hiabp_tf import workdir as workdir_lib
from hiabp_tf.experiments import claims
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import report

# Made-up Table 1 numbers: every claim holds except "L = 4 < L = 3" and "IABP [E+L] < ABP (persistent)".
MSE = {("vae", "mse_E"): 0.030, ("lvae", "mse_E"): 0.032, ("vlae", "mse_E"): 0.031, ("abp", "mse_L"): 0.025,
       ("abp_persistent", "mse_L"): 0.015, ("iabp", "mse_E"): 0.024, ("iabp", "mse_EL"): 0.018,
       ("hiabp_l2", "mse_EL"): 0.014, ("hiabp_l3", "mse_EL"): 0.012, ("hiabp_l4", "mse_EL"): 0.0121}


def _write_results(out, table3=None, figure1=None, still_improving=("hiabp_l4",), mean_image=0.15):
    os.makedirs(out, exist_ok=True)
    rows = [dict(column="mnist_5k", row=row, label=label, score=score, mse=MSE[(row, score)], fid=None, step=4000,
                 dataset="mnist_5k", num_examples=1000, workdir=f"runs/cpu/{row}")
            for row, label, score in report.TABLE1_ROWS]
    workdir_lib.write_json_atomic(os.path.join(out, "table1.json"), {"command": "t", "rows": rows})
    curves = [dict(row=r["row"], score=r["score"], label=r["label"], steps=[2000, 4000], mse=[1, 1],
                   last_doubling=dict(from_step=2000, to_step=4000,
                                      relative=-0.2 if r["row"] in still_improving else -0.01))
              for r in rows]
    workdir_lib.write_json_atomic(os.path.join(out, "learning_curves.json"), {"command": "t", "curves": curves})
    table3 = table3 or {5: 0.020, 10: 0.016, 15: 0.015, 30: 0.0148}
    workdir_lib.write_json_atomic(os.path.join(out, "table3.json"), {"command": "t", "rows": [
        dict(langevin_steps=t, mse=v, step=4000, dataset="mnist_5k", workdir="w") for t, v in table3.items()]})
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


def test_verdicts_follow_the_numbers(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    text = open(claims.write_claims(out, "pytest")).read()
    by = _by_claim(out)
    assert by["IABP: Langevin improves on the initializer, [E+L] < [E]"]["verdict"] == "holds"
    assert by["HiABP L = 2 < IABP [E+L]"]["verdict"] == "holds"
    assert by["HiABP L = 3 < L = 2"]["verdict"] == "holds"
    l4 = by["HiABP L = 4 < L = 3"]
    assert l4["verdict"] == "does not hold"
    assert "a tie within 1%" in l4["note"] and "HiABP [E+L] (L=4) still improving (-20.0%" in l4["note"]
    assert "HiABP [E+L] (L=3) flat (-1.0%" in l4["note"]
    assert by["IABP [E+L] < ABP (non-persistent)"]["verdict"] == "holds"
    assert by["IABP [E+L] < ABP (persistent)"]["verdict"] == "does not hold"
    for baseline in ("VAE", "LVAE (L=4)", "VLAE (L=4)"):  # the best L is 3 here (0.0120 < 0.0121)
        assert by[f"HiABP (best L: 3) < {baseline}"]["verdict"] == "holds"
    assert by["HiABP L = 4 < L = 3"]["paper"] == "0.0151 < 0.0162"
    assert by["HiABP L = 4 < L = 3"]["ours"] == "0.0121 vs 0.0120 (+0.8%)"
    t3 = by["Table 3: the MSE falls as T grows"]
    assert t3["verdict"] == "holds" and "T=30: 0.0148" in t3["ours"]
    little = next(c for k, c in by.items() if k.startswith("Table 3: little to gain"))
    assert little["verdict"] == "holds" and little["ours"].startswith("-1.3%")
    f1 = by["Figure 1: encoder initialisation beats noise initialisation at every test-time T"]
    assert f1["verdict"] == "holds" and "3 of 3 T" in f1["ours"] and "1.80x (T=0)" in f1["ours"]
    assert next(c for k, c in by.items() if k.startswith("Table 2"))["verdict"] == "not comparable"
    learns = by[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]
    assert learns["verdict"] == "holds" and learns["ours"].startswith("pepper 0.1000 vs 0.1500 (-33.3%)")
    assert "11 claims hold, 2 do not, 1 cannot be compared here." in text
    assert "| HiABP [E+L] (L=3) | 0.0120 | 0.0162 | lower |" in text
    assert "Command: `pytest`" in text


def test_failing_table3_and_figure1_claims(tmp_path):
    out = _write_results(str(tmp_path / "cpu"), table3={5: 0.020, 10: 0.016, 15: 0.017, 30: 0.014},
                         figure1={0: (0.05, 0.09), 60: (0.016, 0.015)})
    claims.write_claims(out)
    by = _by_claim(out)
    assert by["Table 3: the MSE falls as T grows"]["verdict"] == "does not hold"
    assert next(c for k, c in by.items() if k.startswith("Table 3: little"))["verdict"] == "does not hold"
    f1 = by["Figure 1: encoder initialisation beats noise initialisation at every test-time T"]
    assert f1["verdict"] == "does not hold" and "T = [60]" in f1["note"]


def test_incomplete_data_claim_fails_when_a_mask_is_no_better_than_the_mean_image(tmp_path):
    out = _write_results(str(tmp_path / "cpu"), mean_image=0.1)  # a tie with the models' 0.1 is no better
    claims.write_claims(out)
    learns = _by_claim(out)[claims.LEARNS_FROM_INCOMPLETE_DATA[0]]
    assert learns["verdict"] == "does not hold"
    assert learns["note"] == "no better than the mean image for pepper, region10, region20"


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
    assert "7 claims hold, 2 do not, 0 cannot be compared here, 5 are not measured yet at this scale." in text


def test_readme_block_is_replaced_between_the_markers(tmp_path):
    out = _write_results(str(tmp_path / "cpu"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{claims.README_START}\nold\n{claims.README_END}\nafter\n")
    claims.write_claims(out, readme=str(readme))
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith("\nafter\n") and "\nold\n" not in text
    assert "](cpu/claims.md)" in text and "](cpu/learning_curves.png)" in text  # relative to the README
    assert "| IABP [E+L] (L=1) | 0.0180 | 0.0180 |" in text
    assert "- **does not hold**: HiABP L = 4 < L = 3" in text
    once = text
    claims.write_claims(out, readme=str(readme))
    assert readme.read_text() == once  # idempotent
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(claims.MissingResultError, match="results:start"):
        claims.update_readme(str(tmp_path / "bare.md"), "x")


def test_last_doubling_change_known_answers():
    assert report.last_doubling_change([(250, 0.04), (500, 0.03), (1000, 0.02), (2000, 0.018)]) == dict(
        from_step=1000, to_step=2000, relative=pytest.approx(-0.1))
    # No evaluation at exactly half: the one just below it.
    assert report.last_doubling_change([(250, 0.04), (750, 0.02), (1750, 0.01)])["from_step"] == 750
    assert report.last_doubling_change([(250, 0.04)]) is None


def test_read_learning_curve_keeps_the_latest_record_and_skips_a_cut_line(tmp_path):
    for record in ({"step": 250, "mse_E": 0.05}, {"step": 500, "mse_E": 0.04}, {"step": 500, "mse_E": 0.039}):
        workdir_lib.append_learning_curve(str(tmp_path), record)
    with open(tmp_path / workdir_lib.LEARNING_CURVE_FILE, "a") as f:
        f.write('{"step": 750, "mse')  # a crash in the middle of a line
    assert workdir_lib.read_learning_curve(str(tmp_path)) == [
        {"step": 250, "mse_E": 0.05}, {"step": 500, "mse_E": 0.039}]
    assert workdir_lib.read_learning_curve(str(tmp_path / "none")) == []
