"""The statistics of the verdicts, against scipy and against numbers computed by hand: Welch's test
(p, Welch-Satterthwaite df, the interval), Holm's correction, the smallest detectable effect, the
trend over L, and the verdict's threshold on both sides."""

import math

import numpy as np
import pytest
from scipy import stats

from hiabp_tf.evaluation import statistics


def test_the_thresholds_are_the_stated_numbers():
    assert statistics.ALPHA == 0.05 and statistics.CONFIDENCE == 0.95 and statistics.POWER == 0.80


def test_seed_summary_is_the_mean_and_the_sample_std():
    summary = statistics.seed_summary([0.010, 0.012, 0.014])
    assert summary["mean"] == pytest.approx(0.012) and summary["std"] == pytest.approx(0.002)  # ddof = 1
    assert statistics.seed_summary([0.01])["std"] is None and statistics.seed_summary([0.01, None]) is None


def test_welch_unequal_sizes_and_spreads_by_hand():
    a, b = [1.0, 1.2, 0.9, 1.1], [1.5, 1.9, 1.6]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3  # 0.016667 / 4, 0.043333 / 3: df 3.1458 by hand
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    test = statistics.welch(a, b)
    assert test["df"] == pytest.approx(df) and test["df"] == pytest.approx(3.1458, abs=1e-4)
    assert test["df"] == pytest.approx(statistics.welch_df(a, b))
    assert test["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert test["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert test["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert test["ci"] == pytest.approx((test["difference"] - half, test["difference"] + half))
    assert test["relative"] == pytest.approx((np.mean(a) - np.mean(b)) / np.mean(b))
    assert test["relative_ci"] == pytest.approx((test["ci"][0] / np.mean(b), test["ci"][1] / np.mean(b)))


def test_welch_is_not_students_test():
    """A small noisy side against a large quiet one: Student's pooled test calls it significant
    (p = 0.0003), Welch's does not (p = 0.12), so a claim on it is inconclusive."""
    a, b = [0.7, 1.0, 1.3], [1.40, 1.42, 1.44, 1.46, 1.48, 1.41, 1.43, 1.45, 1.47, 1.49]
    assert stats.ttest_ind(a, b).pvalue < 0.001
    test = statistics.welch(a, b)
    assert test["p"] == pytest.approx(0.1235, abs=1e-4)
    assert statistics.verdict(test["relative"], test["p"]) == "inconclusive"


def test_the_verdict_on_both_sides_of_the_threshold():
    a = [0.0100, 0.0102, 0.0098]
    between = statistics.welch(a, [0.0112 + d for d in (-0.0006, 0, 0.0006)])  # 0.05 < p < 0.10
    assert 0.05 < between["p"] < 0.10 and between["p"] == pytest.approx(0.0620, abs=1e-4)
    assert statistics.verdict(between["relative"], between["p"]) == "inconclusive"
    below = statistics.welch(a, [0.0114 + d for d in (-0.0006, 0, 0.0006)])
    assert below["p"] == pytest.approx(0.0447, abs=1e-4)
    assert statistics.verdict(below["relative"], below["p"]) == "holds"
    assert statistics.verdict(-below["relative"], below["p"]) == "does not hold"  # A significantly higher
    assert statistics.verdict(-0.1, 0.0499) == "holds"
    assert statistics.verdict(-0.1, 0.05) == "inconclusive"  # p = alpha is not below it
    assert statistics.verdict(-0.1, 0.0501) == "inconclusive" and statistics.verdict(0.1, 0.09) == "inconclusive"


def test_welch_without_spread_and_with_one_seed():
    no_spread = statistics.welch([1.0, 1.0], [2.0, 2.0])
    assert no_spread["p"] == 0.0 and no_spread["relative"] == -0.5 and no_spread["mde"] == 0.0
    assert statistics.welch([1.0, 1.0], [1.0, 1.0])["p"] == 1.0
    with pytest.raises(ValueError, match="two seeds or more"):
        statistics.welch([1.0], [2.0, 2.1])


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept at 0.06
    assert statistics.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.holm([0.2, 0.6]) == pytest.approx([0.4, 0.6])
    assert statistics.holm([0.5, 0.9, 0.7]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    assert statistics.holm([0.03]) == pytest.approx([0.03]) and statistics.holm([]) == []
    # Holm is uniformly more powerful than Bonferroni (m x p) and never below the raw p-value.
    p = [0.001, 0.012, 0.02, 0.3]
    assert all(raw <= h <= min(1, 4 * raw) for raw, h in zip(p, statistics.holm(p)))


def test_the_detectable_difference_is_the_planning_formula():
    se, df = 0.0002, 2.5
    expected = (stats.t.ppf(0.975, df) + stats.t.ppf(0.80, df)) * se
    assert statistics.detectable_difference(se, df) == pytest.approx(expected)
    # df = 3 from a t-table: t(0.975) = 3.1824, t(0.80) = 0.9785.
    assert statistics.detectable_difference(se, 3) == pytest.approx(0.0002 * (3.1824 + 0.9785), rel=1e-4)
    # More seeds, a smaller detectable effect; and it is relative to B's mean in `welch`.
    a, b = [0.0100, 0.0102, 0.0098], [0.0110, 0.0112, 0.0108]
    test = statistics.welch(a, b)
    se = math.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3)
    assert test["mde"] == pytest.approx(statistics.detectable_difference(se, test["df"]) / np.mean(b))
    assert statistics.welch(a * 3, b * 3)["mde"] < test["mde"]


def test_the_trend_over_layers():
    levels = [1, 2, 3, 4] * 3
    exact = [0.01 * 0.9 ** (level - 1) for level in levels]  # 10% lower per layer, no noise
    trend = statistics.log_linear_trend(levels, exact)
    assert trend["per_level"] == pytest.approx(-0.1) and trend["p"] < 1e-10 and trend["df"] == 10
    noisy = [v * (1 + 0.02 * ((i % 3) - 1)) for i, v in enumerate(exact)]
    fit = stats.linregress(levels, np.log(noisy))
    trend = statistics.log_linear_trend(levels, noisy)
    half = stats.t.ppf(0.975, 10) * fit.stderr
    assert trend["p"] == pytest.approx(fit.pvalue) and trend["slope"] == pytest.approx(fit.slope)
    assert trend["per_level_ci"] == pytest.approx((math.expm1(fit.slope - half), math.expm1(fit.slope + half)))
    flat = statistics.log_linear_trend(levels, [0.01 * (1 + 0.02 * ((i % 3) - 1)) for i in range(12)])
    assert flat["p"] > 0.5 and flat["per_level_ci"][0] < 0 < flat["per_level_ci"][1]
    with pytest.raises(ValueError, match="two levels"):
        statistics.log_linear_trend([1, 1, 1], [0.1, 0.2, 0.3])
