"""The statistics of every verdict: a score over training seeds, one claim "A < B" decided by Welch's
t-test with its effect and 95% confidence interval, the family of the paper's claims corrected by
Holm's method, the smallest effect a test could have detected, and a trend over the number of layers.

    summary = seed_summary([0.0121, 0.0119, 0.0124])    # {"mean", "std" (ddof=1), "seeds"}
    test = welch(hiabp_seeds, vae_seeds)                # p, df, difference and relative, 95% CIs, mde
    adjusted = holm([test["p"] for test in family])     # Holm-adjusted p-values, same order
    verdict(test["relative"], adjusted[0])              # holds / does not hold / inconclusive
    slope = log_linear_trend(layers, mse)               # % change per layer with its 95% CI

Verdicts: **holds** (A significantly lower than B after correction), **does not hold** (A significantly
higher), **inconclusive** (not significant: never "equal"; the test says the smallest relative
effect it could have detected at 80% power from the observed spread), **not comparable** (measured
on other data than the paper's), **untested** (no test is possible: one seed on a side, or a claim
made by a figure; reported apart from the tested claims).

Holm's step-down method is written out here (ten lines, checked against hand-computed cases in the
tests) because scipy has none and statsmodels, which has it, would add pandas to the requirements.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

# Significance level of every test, applied to Holm-adjusted p-values within a family of claims.
ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.80  # the power at which a test's smallest detectable effect is stated
VERDICTS = ("holds", "does not hold", "inconclusive", "not comparable", "untested")
TESTED = ("holds", "does not hold", "inconclusive")
WELCH = "Welch's t-test (scipy.stats.ttest_ind, equal_var=False, two-sided)"
TREND = "least-squares slope of log MSE on L (scipy.stats.linregress, two-sided t-test on the slope)"


def seed_summary(values) -> dict | None:
    """{"mean", "std" (sample std, ddof=1; None for one seed), "seeds": the values} of a score over
    training seeds, or None if any seed lacks it."""
    if not values or any(v is None for v in values):
        return None
    values = [float(v) for v in values]
    return dict(mean=float(np.mean(values)), std=float(np.std(values, ddof=1)) if len(values) > 1 else None,
                seeds=values)


def welch_df(a, b) -> float:
    """The Welch-Satterthwaite degrees of freedom of two samples."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    return float((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)))


def detectable_difference(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference of means that a two-sided t-test with standard error `se` and
    `df` degrees of freedom detects with probability `power` at level `alpha`, by the usual
    planning formula (t_{1 - alpha/2, df} + t_{power, df}) * se (the noncentral t approximated by a
    shifted central t; scipy's noncentral t is not finite for the df of about 2 that 3 seeds give)."""
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def welch(a, b, confidence: float = CONFIDENCE) -> dict:
    """Is mean(a) below mean(b)? Welch's t-test of two samples (each of two or more seeds):

    {"test", "p" (two-sided), "df" (Welch-Satterthwaite), "difference" = mean(a) - mean(b), its
    "ci" (`confidence`), "relative" = difference / mean(b) and "relative_ci" (the interval divided
    by mean(b), taken as fixed), "mde": the smallest relative difference the test would detect with
    80% power at ALPHA given the observed spreads and sizes}.

    With no spread on either side the t statistic is undefined: the means decide (p = 0 if they
    differ, 1 if not) and the interval is the point."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t-test needs two seeds or more on each side, got {len(a)} and {len(b)}")
    difference, reference = float(a.mean() - b.mean()), float(b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        p, df, ci, mde = (0.0 if difference else 1.0), float(len(a) + len(b) - 2), (difference, difference), 0.0
    else:
        result = stats.ttest_ind(a, b, equal_var=False)
        p, df = float(result.pvalue), float(result.df)
        low, high = result.confidence_interval(confidence)
        ci = (float(low), float(high))
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        mde = detectable_difference(se, df) / abs(reference)
    return dict(test=WELCH, p=p, df=df, difference=difference, ci=ci, relative=difference / reference,
                relative_ci=(ci[0] / reference, ci[1] / reference), mde=mde, confidence=confidence)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m p-values is
    multiplied by (m - i), i = 0.., and each kept at least as large as the one before it (and at
    most 1). A claim holds at level ALPHA if its adjusted p-value is below ALPHA."""
    pvalues = [float(p) for p in pvalues]
    m = len(pvalues)
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def verdict(relative: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    """The verdict on "A < B" from its relative difference (A - B) / B and its adjusted p-value."""
    if p_adjusted >= alpha:
        return "inconclusive"
    return "holds" if relative < 0 else "does not hold"


def log_linear_trend(levels, values, confidence: float = CONFIDENCE) -> dict:
    """Does a score fall as the level (the number of layers L) grows? The least-squares slope b of
    log(value) on the level over every run (every seed of every level), so exp(b) - 1 is the relative
    change per level: {"test", "slope", "p" (two-sided, the slope against 0), "df" = n - 2,
    "per_level" = exp(b) - 1, "per_level_ci", "n"}."""
    x, y = np.asarray(levels, np.float64), np.log(np.asarray(values, np.float64))
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"a trend needs three runs or more over two levels or more, got levels {list(levels)}")
    fit = stats.linregress(x, y)
    df = len(x) - 2
    half = stats.t.ppf(0.5 + confidence / 2, df) * fit.stderr
    return dict(test=TREND, slope=float(fit.slope), p=float(fit.pvalue), df=df, n=len(x),
                per_level=math.expm1(fit.slope),
                per_level_ci=(math.expm1(fit.slope - half), math.expm1(fit.slope + half)), confidence=confidence)
