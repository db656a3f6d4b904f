"""Figure 1 as a training experiment (hiabp_tf/experiments/informative_init.py): its flag files, the
verdict on constructed numbers, the page written from stub runs (some not trained yet), and the
figure's ticks. The plan's Figure 1 runs and the runner's wiring: tests/experiments/test_figure1_plan.py."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import numpy as np
import pytest
from scipy import stats

from hiabp_tf.experiments import figures
from hiabp_tf.experiments import informative_init as init
from hiabp_tf.experiments import pages
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import run as runner

IABP, ABP = init.IABP, init.ABP


def _row(method, t, *seeds):
    mean = sum(seeds) / len(seeds)
    std = None if len(seeds) == 1 else (sum((s - mean) ** 2 for s in seeds) / (len(seeds) - 1)) ** 0.5
    return dict(method=method, training_steps=t, mse=mean, mse_std=std, mse_seeds=list(seeds))


TABLE1_T15 = [_row(IABP, 15, 0.0092, 0.0093, 0.0094), _row(ABP, 15, 0.0200, 0.0202, 0.0204)]


@pytest.mark.parametrize("name", ["mnist_hiabp_l1_t2", "mnist_abp_t5", "mnist5k_iabp_t1", "mnist5k_abp_t5"])
def test_a_figure1_flag_file_is_table1s_run_with_another_t(name):
    from hiabp_tf import config as config_lib
    base = name.rsplit("_t", 1)[0]
    base = {"mnist5k_iabp": "mnist5k_iabp"}.get(base, base)
    config, kwargs = config_lib.load_flagfile(os.path.join(runner.REPO, "flags", f"{name}.flags"))
    reference, reference_kwargs = config_lib.load_flagfile(os.path.join(runner.REPO, "flags", f"{base}.flags"))
    assert config.langevin_steps == int(name.rsplit("_t", 1)[1]) and reference.langevin_steps == 15
    assert config == reference.__class__(**{**reference.__dict__, "langevin_steps": config.langevin_steps})
    assert kwargs == reference_kwargs


def test_iabp_reaching_abps_mse_with_fewer_steps_holds():
    rows = TABLE1_T15 + [_row(IABP, 1, 0.0150), _row(ABP, 1, 0.0600), _row(IABP, 5, 0.0110), _row(ABP, 5, 0.0400)]
    verdict = init.decide(rows)
    assert verdict["verdict"] == "holds" and verdict["target"]["abp_steps"] == 15
    assert "T = 1" in verdict["outcome"] and "15x fewer" in verdict["outcome"]
    assert [c["iabp_steps"] for c in verdict["comparisons"]] == [1, 5]
    first = verdict["comparisons"][0]
    assert first["verdict"] == "holds" and first["test"].startswith("one seed against 3: prediction t-test")
    scale = np.std([0.0200, 0.0202, 0.0204], ddof=1) * np.sqrt(1 + 1 / 3)
    assert first["p"] == pytest.approx(2 * stats.t.sf((0.0202 - 0.0150) / scale, 2))
    second = verdict["comparisons"][1]  # T = 5 is further below: the smaller p, doubled; T = 1's is kept
    assert second["p"] < first["p"] and second["p_holm"] == pytest.approx(2 * second["p"])
    assert first["p_holm"] == pytest.approx(max(first["p"], second["p_holm"]))
    assert first["difference"] == pytest.approx(0.0150 - 0.0202)
    assert first["ci"][0] < first["difference"] < first["ci"][1] < 0
    assert {r["abp_steps"]: r["iabp_steps"] for r in verdict["reached"]} == {1: 1, 5: 1, 15: 1}
    assert verdict["needs_seeds"] == [] and verdict["relative_seed_std"] > 0
    same_15 = next(c for c in verdict["same_t"] if c["training_steps"] == 15)
    assert same_15["test"] == "Welch's t-test" and same_15["ci"][1] < 0  # IABP - ABP


def test_iabp_above_abp_at_every_smaller_t_does_not_hold_and_close_ones_need_seeds():
    rows = TABLE1_T15 + [_row(IABP, 1, 0.0300), _row(ABP, 1, 0.0301), _row(IABP, 5, 0.0250), _row(ABP, 5, 0.0300)]
    verdict = init.decide(rows)
    assert verdict["verdict"] == "does not hold" and "significantly above" in verdict["outcome"]
    assert verdict["needs_seeds"] == [1]  # within each other's seed spread on one seed
    assert {r["abp_steps"]: r["iabp_steps"] for r in verdict["reached"]}[1] == 1  # by the means
    assert [c["verdict"] for c in verdict["same_t"]] == ["untested", "untested", "holds"]  # one seed a side: no test


def test_compare_is_welchs_test_with_seeds_on_both_sides():
    a, b = [0.010, 0.011, 0.012], [0.013, 0.015, 0.014]
    c = init.compare(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert c["test"] == "Welch's t-test" and c["p"] == pytest.approx(reference.pvalue)
    assert c["ci"] == pytest.approx(list(reference.confidence_interval(0.95)))
    assert c["relative"] == pytest.approx(-0.003 / 0.014)
    assert init.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_without_a_seed_spread_or_a_smaller_t_it_is_untested():
    one_seed = [_row(IABP, 15, 0.0093), _row(ABP, 15, 0.0202), _row(IABP, 1, 0.0150)]
    assert init.decide(one_seed)["verdict"] == "untested"
    only_t15 = init.decide(TABLE1_T15)
    assert only_t15["verdict"] == "untested" and "no IABP run with a training T below" in only_t15["outcome"]
    assert init.decide([TABLE1_T15[0]])["verdict"] == "untested"


def test_the_page_reports_what_is_trained_and_names_the_rest(tmp_path, monkeypatch):
    """Stub runs: T = 15 of both methods over three seeds, T = 1 of IABP only; the same-model panel."""
    scores = {f"w/iabp15_{s}": (15, {"mse_EL": v}) for s, v in enumerate((0.0092, 0.0093, 0.0094))}
    scores.update({f"w/abp15_{s}": (15, {"mse_L": v}) for s, v in enumerate((0.0200, 0.0202, 0.0204))})
    scores["w/iabp1"] = (1, {"mse_EL": 0.0150})
    monkeypatch.setattr(pages, "load_eval", lambda w, *a, **k: dict(scores[w][1], langevin_steps=scores[w][0],
                                                                      train_seed=0, step=3500, dataset="mnist"))
    monkeypatch.setattr(pages, "run_details", lambda label, w: f"- {label}: `{w}`")
    monkeypatch.setattr(pages, "footer", lambda command, details, datasets: ["", f"Command: `{command}`"] + details)
    test_rows = [{"init": init.INIT_LABELS[i], "initialisation": i, "langevin_steps": t, "mse": m}
                 for i, k in (("encoder", 1.0), ("noise", 3.0))
                 for t, m in ((0, 0.03 * k), (5, 0.012 * k), (60, 0.009 * k))]
    monkeypatch.setattr(init, "test_time_rows", lambda workdir, steps: test_rows)
    training = {IABP: {15: [f"w/iabp15_{s}" for s in range(3)], 1: ["w/iabp1"]},
                ABP: {15: [f"w/abp15_{s}" for s in range(3)]}}
    path = init.write(str(tmp_path), training, "w/iabp15_0", [0, 5, 60], "./run.sh figure1 cpu",
                      pending=["mnist_abp_t1", "mnist_hiabp_l1_t2"], planned_steps=(1, 2, 15))
    text = open(path).read()
    assert "| 1 | 0.01500 (1 seed) | not trained yet |" in text and "| 2 | not trained yet | not trained yet |" in text
    assert "| 15 | 0.00930 ± 0.00010 (3 seeds) | 0.02020 ± 0.00020 (3 seeds) |" in text
    assert "### The claim: **holds**" in text and "`mnist_abp_t1`, `mnist_hiabp_l1_t2`" in text
    assert "| 60 | 0.00900 | 0.02700 |" in text and os.path.isfile(tmp_path / "figure1.png")
    data = json.load(open(tmp_path / "figure1.json"))
    assert data["verdict"]["verdict"] == "holds" and data["pending"] == ["mnist_abp_t1", "mnist_hiabp_l1_t2"]
    assert [(r["method"], r["training_steps"]) for r in data["training"]] == [(IABP, 1), (IABP, 15), (ABP, 15)]
    # claims.py's Figure 1 claim reads the same-model rows by initialisation, as before.
    assert {(r["initialisation"], r["langevin_steps"]) for r in data["rows"]} == {
        (i, t) for i in ("encoder", "noise") for t in (0, 5, 60)}


def test_the_figure_has_a_tick_at_every_t(tmp_path, monkeypatch):
    drawn = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (drawn.append(self),
                                                                                      original(self, *a, **k)))
    rows = [{"init": i, "langevin_steps": t, "mse": 0.01 + 0.001 * t} for i in ("a", "b") for t in plan.FIGURE1_STEPS]
    training = [{"method": m, "training_steps": t, "mse": 0.01, "mse_std": 0.001 if t == 15 else None}
                for m in ("IABP", "ABP") for t in (1, 2, 5, 15)]
    figures.save_langevin_curve(rows, str(tmp_path / "f.png"), "test-time", training=training, training_title="train")
    left, right = drawn[0].axes
    assert list(left.get_xticks()) == [1, 2, 5, 15] and [t.get_text() for t in left.get_xticklabels()] == [
        "1", "2", "5", "15"]
    assert list(right.get_xticks()) == list(plan.FIGURE1_STEPS)
    figures.save_langevin_curve(rows, str(tmp_path / "g.png"), "test-time only")
    assert len(drawn[1].axes) == 1 and list(drawn[1].axes[0].get_xticks()) == list(plan.FIGURE1_STEPS)
    with pytest.raises(ValueError, match="training_steps must be >= 1"):
        figures.save_langevin_curve(rows, str(tmp_path / "h.png"), "t", training=[dict(training[0], training_steps=0)])
