"""Statistics over training seeds: a score's mean and spread, and whether one method's score is
below another's, decided by Welch's t-test (scipy.stats) on the seeds.

    summary = seed_summary([0.0121, 0.0119, 0.0124])      # {"mean", "std" (ddof=1), "seeds"}
    compare(hiabp_seeds, vae_seeds)["verdict"]           # holds / does not hold / tie
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Significance level of the seed tests: a difference with p >= ALPHA is a tie.
ALPHA = 0.05
# Where one side has a single seed (Table 3's T other than 15), a difference smaller than this many
# seed standard deviations of the row that has several seeds is a tie.
ONE_SEED_SIGMAS = 2.0
# "untested": one seed on a side and no seed spread to judge the difference by; like a tie, it never
# counts as holding.
VERDICTS = ("holds", "does not hold", "tie", "untested")


def seed_summary(values) -> dict:
    """{"mean", "std" (sample std, ddof=1; None for one seed), "seeds": the values} of a score over
    training seeds, or None if any seed lacks it."""
    if not values or any(v is None for v in values):
        return None
    values = [float(v) for v in values]
    return dict(mean=float(np.mean(values)), std=float(np.std(values, ddof=1)) if len(values) > 1 else None,
                seeds=values)


def compare(smaller: list[float], larger: list[float], reference_std: float | None = None) -> dict:
    """Is mean(smaller) < mean(larger)? {"verdict": holds / does not hold / tie, "p", "test"}.

    Several seeds on both sides: Welch's t-test, significant at p < ALPHA. One seed on a side: with
    `reference_std` (the seed std of a comparable row), a difference beyond ONE_SEED_SIGMAS of it
    decides, else a tie; without one, the verdict is "untested" (the sign alone decides nothing)."""
    mean_a, mean_b = sum(smaller) / len(smaller), sum(larger) / len(larger)
    direction = "holds" if mean_a < mean_b else "does not hold"
    if len(smaller) >= 2 and len(larger) >= 2:
        if len(set(smaller)) == len(set(larger)) == 1:  # no spread on either side: the means alone decide
            p = 0.0 if mean_a != mean_b else 1.0
        else:
            p = float(stats.ttest_ind(smaller, larger, equal_var=False).pvalue)
        return dict(verdict=direction if p < ALPHA else "tie", p=p, test="Welch's t-test")
    if reference_std is not None:
        decisive = abs(mean_a - mean_b) > ONE_SEED_SIGMAS * reference_std
        return dict(verdict=direction if decisive else "tie", p=None,
                    test=f"one seed: |difference| vs {ONE_SEED_SIGMAS:g} x seed std {reference_std:.5f}")
    return dict(verdict="untested", p=None, test="one seed: no test")
