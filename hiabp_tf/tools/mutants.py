r"""Mutation check of the tests: does each deliberate bug turn red the tests that should catch it?

    python -m hiabp_tf.tools.mutants [--out=results/mutation.md] [--rev=HEAD] [--only=3,7,lvae] [--list]

Each mutant is one textual replacement in one file (`Mutant`: file, old text, new text, tests to run,
description; `equivalent` when no test can catch it, with the reason). The package and its tests are
copied to a temporary folder (the working tree as it is, or with --rev a commit's tree); the working tree
is never changed. The tests of every mutant are first run on the unmutated copy and must pass. Then,
for each mutant in turn, its file in the copy is mutated, its tests run (`pytest -x`, slow tests
included) and the file restored: the mutant is **caught** when a test fails. The report lists each
mutant, the tests run and the outcome; the command exits with status 1 if a mutant that is not
equivalent was missed, its old text is no longer found exactly once (the list must follow the code), a
run timed out, or the unmutated tests fail.

A mutant's old text must occur exactly once in its file (tests/tools/test_mutants.py checks this
against the working tree, so a change to the code that strands a mutant is seen at once). Add a mutant
to the list of its concern below, or a new list to GROUPS. It is a tool run, not part of `./run.sh test`:
all the mutants take a while (each starts TensorFlow in a new pytest process).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import flags

from hiabp_tf.checks import cli
from hiabp_tf.core import hardware

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # hiabp_tf/<group>/x.py
# What the copy holds: the package and its tests (with conftest.py and pytest's settings).
COPIED = ("hiabp_tf", "tests", "pyproject.toml")


@dataclasses.dataclass(frozen=True)
class Mutant:
    """A deliberate bug: `old` (which must occur exactly once in `file`) replaced by `new`; `tests` are
    pytest node ids (a file, or file::test) that should fail on it; `equivalent` says why none can, when
    the replacement does not change what the code computes."""

    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    description: str
    equivalent: str | None = None


STEPS = "tests/methods/test_training_steps.py"
HIABP_STEP = f"{STEPS}::test_hiabp_step_applies_eq4_and_eq5_gradients_at_z_T"
ABP_STEP = f"{STEPS}::test_abp_step_applies_eq4_gradients_at_z_T_from_its_z_0"
VARIATIONAL_STEP = f"{STEPS}::test_variational_step_applies_the_gradients_of_its_objective"
CHAINS = f"{STEPS}::test_persistent_chains_carry_each_examples_z_T_to_its_next_visit"
ALGORITHM_TESTS = "tests/core/test_algorithm.py"
LANGEVIN_TESTS = "tests/core/test_langevin.py"
METRICS_TESTS = "tests/evaluation/test_metrics.py"
MASK_TESTS = "tests/data/test_masks.py"
FID_DISTANCE = ("tests/evaluation/test_fid.py::test_frechet_distance_diagonal_closed_form",
                "tests/evaluation/test_fid.py::test_frechet_distance_scaled_non_diagonal_and_symmetry_and_zero",
                "tests/evaluation/test_fid.py::test_frechet_distance_rank_deficient_covariances",
                "tests/evaluation/test_fid.py::test_frechet_distance_retries_a_singular_product_with_eps_on_the_diagonals")
LVAE_ENERGY = ("tests/methods/test_interface.py::"
               "test_the_lvae_energy_is_minus_log_p_of_its_hierarchical_prior_and_likelihood")
LVAE_KL = "tests/methods/test_baselines.py::test_the_lvae_kl_with_random_prior_heads_is_the_closed_form_top_down"

HIABP = "hiabp_tf/methods/hiabp.py"
ABP = "hiabp_tf/methods/abp.py"
VARIATIONAL = "hiabp_tf/methods/variational.py"
ALGORITHM = "hiabp_tf/core/algorithm.py"
LANGEVIN = "hiabp_tf/core/langevin.py"

# ------------------------------------------------------------------------------- Algorithm 1
ALGORITHM_WIRING = [
    Mutant(HIABP, "loss_phi = algorithm.encoder_loss(mus, log_sigmas, z_t, batch_slice)",
           "loss_phi = algorithm.encoder_loss(mus, log_sigmas, z0, batch_slice)", (HIABP_STEP,),
           "HiABP trains the encoder (eq. 5) on z_0 instead of z_T"),
    Mutant(HIABP, "algorithm.generator_loss(self.generator, x, z_t, self.hparams.sigma, mask, batch_slice)",
           "algorithm.generator_loss(self.generator, x, z0, self.hparams.sigma, mask, batch_slice)", (HIABP_STEP,),
           "HiABP trains the generator (eq. 4) on z_0: the Langevin improvement skipped"),
    Mutant(HIABP, "z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, mask,",
           "z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, None,",
           (HIABP_STEP,), "HiABP's Langevin sees the occluded pixels (the mask not passed to improving)"),
    Mutant(HIABP, "            with encoder_tape.stop_recording():\n", "            if True:\n", (HIABP_STEP,),
           "HiABP's encoder tape records the Langevin loop",
           equivalent="z_0 leaves `initializing` through stop_gradient and eq. 5 stops the gradient at z_T, so "
                      "the recorded loop adds no path from the encoder loss to the encoder: only time and memory "
                      "change"),
    Mutant(ABP, "loss_theta, x_hat = algorithm.generator_loss(self.generator, x, z_t, self.hparams.sigma, mask,",
           "loss_theta, x_hat = algorithm.generator_loss(self.generator, x, z0, self.hparams.sigma, mask,",
           (ABP_STEP,), "ABP trains the generator on z_0 instead of z_T"),
    Mutant(ABP, "z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, mask,",
           "z_t, energy_0 = algorithm.improving(self.generator, x, z0, self.hparams, langevin_seed, None,",
           (ABP_STEP,), "ABP's training Langevin sees the occluded pixels"),
    Mutant(ALGORITHM, "z0.append(tf.stop_gradient(mu + tf.exp(log_sigma) * eps))",
           "z0.append(tf.stop_gradient(mu + log_sigma * eps))",
           (f"{ALGORITHM_TESTS}::test_initializing_reparameterises_with_per_layer_noise",),
           "initializing scales the noise by log sigma instead of sigma"),
    Mutant(ALGORITHM, "tf.shape(mu), tf.random.experimental.stateless_fold_in(seed, layer), mu.dtype, batch_slice)",
           "tf.shape(mu), seed, mu.dtype, batch_slice)",
           (f"{ALGORITHM_TESTS}::test_initializing_reparameterises_with_per_layer_noise",),
           "initializing draws the same noise for every layer"),
    Mutant(ALGORITHM, "reconstruction = tf.reduce_sum(tf.square(residual), axis=[1, 2, 3]) / (2.0 * sigma**2)",
           "reconstruction = tf.reduce_sum(tf.square(residual), axis=[1, 2, 3]) / (2.0 * sigma)", (HIABP_STEP,),
           "eq. 4 divides by 2 sigma instead of 2 sigma^2"),
    Mutant(ALGORITHM, "q = tfd.Normal(loc=mu, scale=tf.exp(log_sigma))",
           "q = tfd.Normal(loc=mu, scale=tf.exp(2.0 * log_sigma))", (HIABP_STEP,),
           "eq. 5 takes the encoder's variance for its standard deviation"),
    Mutant(ALGORITHM, "        return tf.reduce_mean(per_example)\n", "        return tf.reduce_sum(per_example)\n",
           (HIABP_STEP,), "the losses are summed over the batch instead of averaged"),
    Mutant(LANGEVIN, "z_l = z_l - 0.5 * step_size**2 * g_l", "z_l = z_l - step_size**2 * g_l", (CHAINS,),
           "the Langevin drift is s^2 dE/dz instead of s^2 / 2 dE/dz"),
    Mutant(LANGEVIN, "step_seed = tf.random.experimental.stateless_fold_in(seed, t)", "step_seed = seed", (CHAINS,),
           "every Langevin step draws the same noise"),
    Mutant(LANGEVIN, "return prior + tf.reduce_sum(tf.square(residual)) / (2.0 * sigma**2)",
           "return prior + tf.reduce_mean(tf.square(residual)) / (2.0 * sigma**2)", (CHAINS,),
           "the Langevin energy averages the reconstruction term instead of summing it"),
]

# ----------------------------------------------------------------------------- persistent ABP
PERSISTENT_ABP = [
    Mutant(ABP, "        del seed, batch_slice\n"
                '        return [tf.gather(chain, batch["index"]) for chain in self.chains]',
           "        return standard_normal_latents(self.arch.latent_dims, tf.shape(batch[\"image\"])[0], seed,\n"
           "                                       batch_slice=batch_slice)",
           (CHAINS, ABP_STEP), "persistent ABP restarts its chains from N(0, I) every step"),
    Mutant(ABP, "chain.scatter_nd_update(indices, z)", "chain.scatter_nd_update(tf.reverse(indices, [0]), z)",
           (CHAINS,), "persistent ABP writes z_T back in another row order"),
    Mutant(ABP, 'return [tf.gather(chain, batch["index"]) for chain in self.chains]',
           'return [tf.gather(chain, tf.sort(batch["index"])) for chain in self.chains]', (CHAINS, ABP_STEP),
           "persistent ABP reads the chains in row order instead of the batch's order"),
    Mutant(ABP, "self._finish_step(batch, z_t, batch_slice)", "self._finish_step(batch, z0, batch_slice)", (CHAINS,),
           "persistent ABP writes back z_0: the chains never move"),
]

# ------------------------------------------------------------------------------------ metrics
METRICS = "hiabp_tf/evaluation/metrics.py"
METRICS_ERRORS = [
    Mutant(METRICS, "tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3])))",
           "tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2])))", (METRICS_TESTS,),
           "the test MSE sums the colour channels instead of averaging them"),
    Mutant(METRICS, "tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3])))",
           "tf.reduce_mean(tf.square(model_input - x_hat), axis=[1, 2, 3])))", (METRICS_TESTS,),
           "a masked reconstruction is compared with the occluded input instead of the complete image"),
    Mutant(METRICS, "zip(previous, masks.recovery_sums(x, x_hat, mask))",
           "zip(previous, masks.recovery_sums(model_input, x_hat, mask))",
           (METRICS_TESTS,), "the recovery error compares with the occluded input"),
    Mutant(METRICS, "model_input = masks.occlude(x, mask)", "model_input = x", (METRICS_TESTS,),
           "the model is given the complete image under a mask"),
    Mutant(METRICS, "tf.random.experimental.stateless_fold_in(base_seed, b)", "base_seed", (METRICS_TESTS,),
           "every evaluation batch gets the same noise"),
    Mutant(METRICS, "x = x[:max_examples - count]", "x = x[:max_examples]", (METRICS_TESTS,),
           "max_examples counts per batch instead of over the split"),
    Mutant(METRICS, 'batch["index"][:x.shape[0]], mask_seed)', 'batch["index"][:x.shape[0]], TEST_MASK_SEED)',
           (METRICS_TESTS,), "the masks ignore mask_seed (a training split scored on the test masks)"),
    Mutant("hiabp_tf/data/masks.py", "occluded = tf.broadcast_to(1.0 - tf.cast(mask, tf.float64), tf.shape(x))",
           "occluded = tf.broadcast_to(tf.cast(mask, tf.float64), tf.shape(x))",
           (f"{MASK_TESTS}::test_recovery_errors_known_answer", METRICS_TESTS),
           "the recovery error is taken over the observed pixels"),
]

# --------------------------------------------------------------------------- the baselines
VARIATIONAL_METHODS = [
    Mutant(VARIATIONAL, "                mu_p, sigma_p = self.conditional(l, z[l + 1])\n                prior +=",
           "                mu_p, sigma_p = self.conditional(l, tf.zeros_like(z[l + 1]))\n                prior +=",
           (LVAE_ENERGY,), "the LVAE's energy ignores the prior's dependence on the layer above"),
    Mutant(VARIATIONAL, " + tf.reduce_sum(tf.math.log(sigma_p))", "", (LVAE_ENERGY,),
           "the LVAE's energy drops the prior's log sigma term"),
    Mutant(VARIATIONAL, "                mu_p, sigma_p = self.conditional(l, z[l + 1])\n                mu, sigma =",
           "                mu_p, sigma_p = self.conditional(l, tf.zeros_like(z[l + 1]))\n                mu, sigma =",
           (LVAE_KL, VARIATIONAL_STEP), "the LVAE's posterior and KL ignore the prior's dependence on the layer above"),
    Mutant(VARIATIONAL, "kls[l] = gaussian_kl(mu, sigma, mu_p, sigma_p)", "kls[l] = gaussian_kl(mu, sigma, mu_p, 1.0)",
           (LVAE_KL, VARIATIONAL_STEP), "the LVAE's KL ignores the prior's scale"),
    Mutant(VARIATIONAL, "z[l] = mu if seed is None else reparameterize(mu, sigma, seed, l, batch_slice)",
           "z[l] = mu if seed is None else reparameterize(mus_q[l], sigma_q, seed, l, batch_slice)",
           (VARIATIONAL_STEP,), "the LVAE samples the bottom-up Gaussian instead of the merged posterior"),
    Mutant("hiabp_tf/methods/variational.py",
           'grads = tape.gradient(terms.get("objective", terms["loss"]), generator_vars + encoder_vars)',
           'grads = tape.gradient(terms["loss"], generator_vars + encoder_vars)', (VARIATIONAL_STEP,),
           "the variational step ignores the LVAE's KL warm-up"),
    Mutant(VARIATIONAL, "z.append(reparameterize(mu, sigma_q, seed, layer, batch_slice))", "z.append(mu)",
           (VARIATIONAL_STEP,), "the VAE decodes the encoder's mean instead of a sample"),
    Mutant(VARIATIONAL, "kl = algorithm.batch_mean(tf.add_n(kl), batch_slice)",
           "kl = algorithm.batch_mean(kl[-1], batch_slice)", (VARIATIONAL_STEP,),
           "the VLAE's KL counts the top layer only"),
    Mutant("hiabp_tf/methods/base.py",
           "tf.shape(mu), tf.random.experimental.stateless_fold_in(seed, layer), mu.dtype, batch_slice)",
           "tf.shape(mu), seed, mu.dtype, batch_slice)", (VARIATIONAL_STEP,),
           "the variational methods draw the same noise for every layer"),
]

# --------------------------------------------------------------------------------------- masks
MASKS = "hiabp_tf/data/masks.py"
MASK_MAKING = [
    Mutant(MASKS, "maxval=width - side + 1,", "maxval=width - side,", (MASK_TESTS,),
           "the region's left edge never reaches W - side (its last column)"),
    Mutant(MASKS, "maxval=width - side + 1,", "maxval=height - side + 1,", (MASK_TESTS,),
           "the region's columns are drawn over the rows' range"),
    Mutant(MASKS, "return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int32))", "return base",
           (MASK_TESTS,), "every example gets the same mask"),
    Mutant(MASKS, "pixel_mask = tf.cast(u >= spec.fraction, tf.float32)",
           "pixel_mask = tf.cast(u > spec.fraction, tf.float32)", (MASK_TESTS,),
           "pepper keeps a pixel when u > fraction instead of u >= fraction",
           equivalent="float32 uniform draws are multiples of 2^-23 and 0.2 is not one, so u == 0.2 never "
                      "happens (for another fraction, with probability 2^-23 per pixel)"),
    Mutant(MASKS, "return x * mask + tf.cast(fill, x.dtype) * (1.0 - mask)",
           "return x + tf.cast(fill, x.dtype) * (1.0 - mask)", (f"{MASK_TESTS}::test_occlude_fills_occluded_pixels",),
           "occlude keeps the occluded pixels' intensities"),
]

# ----------------------------------------------------------------------------------------- FID
FID = "hiabp_tf/evaluation/fid.py"
FID_DISTANCE_MUTANTS = [
    Mutant(FID, "if not np.isfinite(covmean).all() or not _negligible_imaginary(covmean):", "if False:",
           FID_DISTANCE, "FID never retries a singular covariance product"),
    Mutant(FID, "covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))",
           "covmean = _sqrtm((sigma1 + offset) @ sigma2)", FID_DISTANCE, "FID's retry adds eps to one covariance only"),
    Mutant(FID, "- 2.0 * np.trace(covmean))", "- np.trace(covmean))", FID_DISTANCE,
           "FID's cross term is Tr sqrt(S1 S2) instead of 2 Tr sqrt(S1 S2)"),
]

# ------------------------------------------------------------------------------ statistics
# Seed summaries and Welch's test (hiabp_tf/evaluation/statistics.py): added with its tests.
STATS = "hiabp_tf/evaluation/statistics.py"
STATS_TESTS = "tests/evaluation/test_statistics.py"
CLAIMS_TESTS = "tests/experiments/test_claims.py"
STATISTICS: list[Mutant] = [
    Mutant(STATS, "result = stats.ttest_ind(a, b, equal_var=False)", "result = stats.ttest_ind(a, b)",
           (STATS_TESTS,), "Student's pooled t-test in place of Welch's"),
    Mutant(STATS, "ALPHA = 0.05", "ALPHA = 0.10", (STATS_TESTS,), "a significance level of 0.10"),
    Mutant(STATS, "    if p_adjusted >= alpha:", "    if p_adjusted > 2 * alpha:", (STATS_TESTS,),
           "p compared with twice the level"),
    Mutant(STATS, "    if p_adjusted >= alpha:", "    if p_adjusted > alpha:", (STATS_TESTS,),
           "p = alpha counted as significant"),
    Mutant(STATS, 'return "holds" if relative < 0 else "does not hold"',
           'return "holds" if relative > 0 else "does not hold"', (STATS_TESTS,), "the direction of the claim swapped"),
    Mutant(STATS, "running = max(running, min(1.0, (m - rank) * pvalues[index]))",
           "running = min(1.0, (m - rank) * pvalues[index])", (STATS_TESTS,),
           "Holm without its step-down monotonicity"),
    Mutant(STATS, "running = max(running, min(1.0, (m - rank) * pvalues[index]))",
           "running = max(running, min(1.0, m * pvalues[index]))", (STATS_TESTS,), "Bonferroni in place of Holm"),
    Mutant(STATS, "return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)",
           "return float((stats.t.ppf(1 - alpha, df) + stats.t.ppf(power, df)) * se)", (STATS_TESTS,),
           "a one-sided critical value in the detectable effect"),
    Mutant(STATS, "half = stats.t.ppf(0.5 + confidence / 2, df) * fit.stderr",
           "half = stats.norm.ppf(0.5 + confidence / 2) * fit.stderr", (STATS_TESTS,),
           "the trend's interval from the normal instead of t(n - 2)"),
    Mutant("hiabp_tf/experiments/claims.py", 'family = [c for c in claims if c["kind"] == kind and',
           'family = [c for c in claims if c["kind"] == kind and c["column"] != "CelebA" and', (CLAIMS_TESTS,),
           "the CelebA claims left out of the paper's Holm family"),
]

# The report's sections, in order: (title, mutants).
GROUPS = (
    ("Algorithm 1's wiring", ALGORITHM_WIRING),
    ("Persistent ABP", PERSISTENT_ABP),
    ("The metrics", METRICS_ERRORS),
    ("VAE, VLAE and LVAE", VARIATIONAL_METHODS),
    ("Masks", MASK_MAKING),
    ("FID", FID_DISTANCE_MUTANTS),
    ("Statistics", STATISTICS),
)
MUTANTS = tuple(m for _, group in GROUPS for m in group)


# -------------------------------------------------------------------------------- the machinery

class StaleMutant(Exception):
    """A mutant's old text is not found exactly once in its file."""


def mutate(text: str, mutant: Mutant) -> str:
    """The file's text with the mutant applied; StaleMutant unless its old text occurs exactly once."""
    count = text.count(mutant.old)
    if count != 1:
        raise StaleMutant(f"{mutant.file}: the old text {mutant.old!r} occurs {count} times (must be once)")
    return text.replace(mutant.old, mutant.new)


def copy_tree(dest: str, rev: str | None = None) -> str:
    """Copies COPIED from the working tree (or, with `rev`, from that commit) into `dest`; returns a line
    saying what was copied."""
    if rev:
        sha = subprocess.run(["git", "rev-parse", "--verify", rev], cwd=REPO, check=True, capture_output=True,
                             text=True).stdout.strip()
        archive = subprocess.run(["git", "archive", "--format=tar", sha, *COPIED], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return f"commit {sha[:12]} (`--rev={rev}`)"
    for name in COPIED:
        source = os.path.join(REPO, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(dest, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest)
    head = _git("rev-parse", "--short=12", "HEAD")
    changed = _git("status", "--porcelain", "--", *COPIED)
    return f"the working tree at commit {head}" + (" with uncommitted changes" if changed else "")


def _git(*args) -> str:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "?"


@dataclasses.dataclass
class Run:
    """One pytest run: status "passed", "failed" (a test failed: the mutant is caught), "error" (pytest
    could not run the tests) or "timeout"; the first failing test; seconds; the output's tail."""

    status: str
    failed: str = ""
    seconds: float = 0.0
    tail: str = ""


def pytest_status(returncode: int) -> str:
    """pytest's exit codes: 0 all passed, 1 some test failed; anything else (interrupted, internal
    error, usage error, no tests collected) means the tests did not run as asked."""
    return {0: "passed", 1: "failed"}.get(returncode, "error")


def first_failure(output: str) -> str:
    """The first test pytest's short summary (-rf) names as FAILED or ERROR."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else ""


def run_tests(root: str, tests, timeout: float, stop_at_first: bool = True) -> Run:
    """pytest on `tests` in the copy at `root`, in a new process group (killed on timeout)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--no-header",
               *(["-x"] if stop_at_first else []), *tests]
    env = {**os.environ, "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.time()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return Run("timeout", seconds=time.time() - start, tail=output[-2000:])
    status = pytest_status(process.returncode)
    return Run(status, first_failure(output) if status == "failed" else "", time.time() - start, output[-2000:])


def outcome(mutant: Mutant, run: Run | None, stale: str = "") -> tuple[str, bool]:
    """(the report's words, whether it is as it should be)."""
    if stale:
        return f"**stale**: {stale}", False
    if run.status == "failed":
        if mutant.equivalent:
            return f"caught by {_test_id(run.failed)}, though listed as equivalent", False
        return f"caught by {_test_id(run.failed)}", True
    if run.status == "passed":
        if mutant.equivalent:
            return f"equivalent, not caught: {mutant.equivalent}", True
        return "**not caught**", False
    return f"**{run.status}**: the tests did not run as asked", False


def _code(text: str) -> str:
    """Text as an inline code span in a table cell (one line, pipes escaped)."""
    one_line = " ⏎ ".join(line.strip() for line in text.strip("\n").split("\n")) or "(nothing)"
    return "`" + one_line.replace("|", "\\|") + "`"


def _test_id(node: str) -> str:
    """A pytest node id for the report: `test_name` in `tests/file.py` (the file as a path the docs tests
    can check), or the file alone."""
    path, _, name = node.partition("::")
    return f"`{name}` in `{path}`" if name else f"`{path}`"


def write_report(path: str, rows, header: dict) -> str:
    """results/mutation.md: `rows` are (group title, number, mutant, outcome words, ok, seconds)."""
    total, ok = len(rows), sum(1 for row in rows if row[4])
    caught = sum(1 for row in rows if row[4] and not row[2].equivalent)
    equivalent = sum(1 for row in rows if row[4] and row[2].equivalent)
    lines = [
        "# Mutation check of the tests",
        "",
        "*For a developer changing the code or its tests: which deliberate bugs the tests catch.*",
        "",
        f"Written by `{header['command']}` on {header['date']} from {header['source']}, on {header['machine']}. "
        "Each mutant is one textual replacement in a copy of the package (never in the working tree); the tests "
        "beside it ran on the copy with `pytest -x`, and the mutant is caught when one of them fails. Before the "
        f"mutants, the same tests passed on the unmutated copy ({header['baseline']}). The list is "
        "`hiabp_tf/tools/mutants.py`; [docs/reliability.md](../docs/reliability.md#the-tests-are-tested) says "
        "how to add a mutant.",
        "",
        f"**{total} mutants: {caught} caught, {equivalent} equivalent (they change nothing a test could see; "
        f"the reason is beside each), {total - ok} not as they should be.**",
    ]
    current = None
    for title, number, mutant, words, _, seconds in rows:
        if title != current:
            current = title
            lines += ["", f"## {title}", "", "| # | mutant | replacement | tests run | outcome |",
                      "|---|---|---|---|---|"]
        tests = "<br>".join(_test_id(t) for t in mutant.tests)
        timing = f" ({seconds:.0f} s)" if seconds else ""
        lines.append(f"| {number} | {mutant.description} | `{mutant.file}`: {_code(mutant.old)} → {_code(mutant.new)} "
                     f"| {tests} | {words.replace('|', chr(92) + '|')}{timing} |")
    lines.append("")
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)
    return text


def select(mutants, only: str | None):
    """(number, mutant) pairs: all, or those whose 1-based number or description matches an item of
    --only (comma-separated numbers or words)."""
    numbered = list(enumerate(mutants, 1))
    if not only:
        return numbered
    items = [item.strip() for item in only.split(",") if item.strip()]
    return [(n, m) for n, m in numbered
            if any(item == str(n) or (not item.isdigit() and item.lower() in m.description.lower()) for item in items)]


def check(root: str, chosen, timeout: float, log=print):
    """Runs the unmutated tests, then each mutant; returns (baseline Run, rows for write_report)."""
    tests = list(dict.fromkeys(t for _, m in chosen for t in m.tests))
    log(f"unmutated copy: {len(tests)} test ids")
    baseline = run_tests(root, tests, timeout * 4, stop_at_first=False)
    if baseline.status != "passed":
        return baseline, []
    title_of = {id(m): title for title, group in GROUPS for m in group}
    rows = []
    for number, mutant in chosen:
        path = os.path.join(root, mutant.file)
        with open(path) as f:
            original = f.read()
        try:
            mutated = mutate(original, mutant)
        except StaleMutant as error:
            words, good = outcome(mutant, None, str(error))
            rows.append((title_of.get(id(mutant), "Other"), number, mutant, words, good, 0.0))
            log(f"{number:3d} stale: {mutant.description}")
            continue
        with open(path, "w") as f:
            f.write(mutated)
        try:
            run = run_tests(root, mutant.tests, timeout)
        finally:
            with open(path, "w") as f:
                f.write(original)
        words, good = outcome(mutant, run)
        rows.append((title_of.get(id(mutant), "Other"), number, mutant, words, good, run.seconds))
        log(f"{number:3d} {'ok ' if good else 'BAD'} {run.status:7s} {run.seconds:5.0f} s  {mutant.description}")
        if run.status in ("error", "timeout"):
            log(run.tail)
    return baseline, rows


def define_flags():
    flags.DEFINE_string("out", "results/mutation.md", "Markdown report to write (relative to the repository).")
    flags.DEFINE_string("rev", "", "Copy this commit's tree (e.g. HEAD) instead of the working tree.")
    flags.DEFINE_string("only", "", "Comma-separated mutant numbers or words of their descriptions (default: all); "
                        "the report then holds only those.")
    flags.DEFINE_bool("list", False, "List the mutants and exit.")
    flags.DEFINE_float("timeout", 1200.0, "Seconds one mutant's tests may take.")


FLAGS = flags.FLAGS


def main():
    chosen = select(MUTANTS, FLAGS.only)
    if FLAGS.list:
        for number, mutant in chosen:
            print(f"{number:3d}  {mutant.file}: {mutant.description}{'  (equivalent)' if mutant.equivalent else ''}")
        return
    if not chosen:
        raise SystemExit(f"--only={FLAGS.only!r} matches no mutant (--list lists them)")
    with tempfile.TemporaryDirectory(prefix="hiabp_mutants_") as root:
        source = copy_tree(root, FLAGS.rev or None)
        print(f"copied {source} to {root}", flush=True)
        start = time.time()
        baseline, rows = check(root, chosen, FLAGS.timeout, log=lambda s: print(s, flush=True))
    if baseline.status != "passed":
        print(baseline.tail)
        raise SystemExit(f"the tests fail ({baseline.status}) on the unmutated copy: fix them before checking mutants")
    command = "python -m hiabp_tf.tools.mutants" + "".join(
        f" --{name}={getattr(FLAGS, name)}" for name in ("rev", "only") if getattr(FLAGS, name))
    header = dict(command=command, date=datetime.date.today().isoformat(), source=source,
                  machine=f"{hardware.describe()}, load average {os.getloadavg()[0]:.1f} at the end (other work "
                          "shares the cores, so the seconds are not the check's alone)",
                  baseline=f"{baseline.seconds:.0f} s; the whole check {time.time() - start:.0f} s")
    out = FLAGS.out if os.path.isabs(FLAGS.out) else os.path.join(REPO, FLAGS.out)
    write_report(out, rows, header)
    bad = [row for row in rows if not row[4]]
    print(f"wrote {out}: {len(rows)} mutants, {len(bad)} not as they should be")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)
