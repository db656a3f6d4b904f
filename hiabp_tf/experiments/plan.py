"""Which runs make each table and figure of the paper, at each scale: the one place that says so.

A run is a flag file, flags/<name>.flags, trained into runs/<scale>/<name>. The scales:

    quick   the flag files as they are (mnist5k_*: the offline mnist_5k, 650 updates; the main job)
    cpu     the paper's MNIST experiments (mnist_*: the standard 60,000 / 10,000 split) with the quick
            scale's networks, trained to 3,500 updates: flags/cpu.flags after each file; every
            Table 1 row with SEEDS training seeds (runs NAME, NAME_seed1, ...), and LONG_ROWS also
            trained LONG_STEPS updates (NAME_long); and a CelebA column (celeba_*, then
            flags/cpu_celeba.flags: 9,000 real faces) with the same seeds and long runs, and
            Table 2 on it
    paper   the paper's datasets and 3e5 updates (mnist_*, svhn_*, celeba_*; a GPU and tfds data)

`hiabp_tf.experiments.run` trains and evaluates what this plan lists, then writes the results.
"""

from __future__ import annotations

import dataclasses

SCALES = ("quick", "cpu", "paper")
EXPERIMENTS = ("core", "table1", "table2", "table3", "figure1", "figure7", "samples", "diagnostics")
# Table 1 of the paper: (row key, label, score reported); the row key names the run (`table1_name`).
TABLE1 = (
    ("vae", "VAE", "mse_E"),
    ("lvae", "LVAE (L=4)", "mse_E"),
    ("vlae", "VLAE (L=4)", "mse_E"),
    ("abp", "ABP (non-persistent)", "mse_L"),
    ("abp_persistent", "ABP (persistent)", "mse_L"),
    ("iabp", "IABP [E] (L=1)", "mse_E"),
    ("iabp", "IABP [E+L] (L=1)", "mse_EL"),
    ("hiabp_l2", "HiABP [E+L] (L=2)", "mse_EL"),
    ("hiabp_l3", "HiABP [E+L] (L=3)", "mse_EL"),
    ("hiabp_l4", "HiABP [E+L] (L=4)", "mse_EL"),
    # Not rows of the paper: the published LVAE with the total split equally over its layers (this
    # project's first protocol: x is decoded from z^1 alone, a quarter of the total), the same without
    # its KL warm-up (the warm-up's effect, both ways), and the LVAE of this project before the
    # published one (x from every layer).
    ("lvae_equal", "LVAE (L=4), equal split 12/12/12/12", "mse_E"),
    ("lvae_no_warmup", "LVAE (L=4), equal split, no KL warm-up", "mse_E"),
    ("lvae_all_layers", "LVAE variant (L=4, x from every layer)", "mse_E"),
)
EXTRA_ROWS = ("lvae_equal", "lvae_no_warmup", "lvae_all_layers")
# The paper's own rows (the claims compare these).
PAPER_ROWS = tuple(row for row in dict.fromkeys(row for row, _, _ in TABLE1) if row not in EXTRA_ROWS)
TABLE1_ROWS = tuple(dict.fromkeys(row for row, _, _ in TABLE1))  # one run per row key
MASKS = ("pepper", "region10", "region20")  # Table 2
# Table 2's no-model reference row: every occluded pixel filled with the mean training image.
MEAN_IMAGE_REFERENCE = "mean training image (no model)"
LANGEVIN_STEPS = (30, 15, 10, 5)  # Table 3, longest first
FIGURE1_STEPS = (0, 1, 2, 5, 10, 15, 30, 60)  # test-time T of Figure 1's same-model panel
# Figure 1 is a statement about training: IABP and ABP (non-persistent) each trained with these T and
# scored at its own T (T = 15 is Table 1's runs); three at the quick scale, to stay cheap.
FIGURE1_TRAIN_STEPS = {"quick": (1, 5, 15), "cpu": (1, 2, 5, 15), "paper": (1, 2, 5, 15)}
# The training T of Figure 1 trained with every seed of SEEDS (T = 15: Table 1's seeds); the others
# have one seed, and get three where the two methods come within each other's seed spread
# (figure1.md names those T).
FIGURE1_SEEDED_STEPS = (15,)
FIGURE1_ROWS = ("iabp", "abp")  # Table 1's rows of the encoder's and the noise's initialisation
# Table 1's rows scored by Langevin at test time: besides their training T, also at SECOND_TEST_T.
LANGEVIN_ROWS = ("abp", "abp_persistent", "iabp", "hiabp_l2", "hiabp_l3", "hiabp_l4")
SECOND_TEST_T = 60
# Table 1's training seeds at each scale: the cpu scale's margins are small, so three seeds each.
SEEDS = {"quick": (0,), "cpu": (0, 1, 2), "paper": (0,)}
# Does Table 1's ordering hold as training goes on? These rows trained LONG_STEPS updates too (cpu).
LONG_ROWS = ("vae", "iabp", "hiabp_l4")
LONG_STEPS = 14_000
# The published LVAE warms its KL up over the first 10% of the updates (its flag files say so for
# their own budgets); at the cpu scale that is 350 of cpu.flags' 3,500.
CPU_KL_WARMUP_STEPS = 350
# The cpu scale's CelebA column: every row of the paper's Table 1 (not the two LVAE rows of our
# own), with the MNIST column's seeds.
CELEBA_CPU_ROWS = PAPER_ROWS
# The dataset columns whose LONG_ROWS are also trained LONG_STEPS updates at the cpu scale.
LONG_PREFIXES = ("mnist", "celeba")


# The diagnosis of the baselines (results/SCALE/diagnostics.md): runs beside Table 1's, one seed each,
# every 250-update checkpoint kept so that each layer's units and KL can be followed over training.
# (name, flag file, flags after the scale's): the LVAE's bottleneck (a VAE with the equal-split LVAE's
# 12-dimensional z^1; Table 1's LVAE has its widest layer at the bottom and its equal-split row is
# kept), the equal-split LVAE and the CelebA VLAE retrained with their checkpoints kept (their
# Table 1 records kept none; bfloat16 kernels round differently from CPU to CPU, so a retraining on
# another machine is another sample of the same run, not a copy), and one seed of five rows in float32.
DIAGNOSTIC_KEEP = "--keep_checkpoints=20"
DIAGNOSTIC_RUNS = (
    ("mnist_vae_z12", "mnist_vae", ("--latent_dims=12",)),
    ("mnist_lvae_l4_diag", "mnist_lvae_equal_l4", (f"--kl_warmup_steps={CPU_KL_WARMUP_STEPS}",)),
    ("celeba_vlae_l4_diag", "celeba_vlae_l4", ()),
    ("mnist_vae_float32", "mnist_vae", ("--precision=float32",)),
    ("mnist_lvae_l4_float32", "mnist_lvae_l4", (f"--kl_warmup_steps={CPU_KL_WARMUP_STEPS}", "--precision=float32")),
    ("mnist_vlae_l4_float32", "mnist_vlae_l4", ("--precision=float32",)),
    ("mnist_hiabp_l1_float32", "mnist_hiabp_l1", ("--precision=float32",)),
    ("mnist_hiabp_l4_float32", "mnist_hiabp_l4", ("--precision=float32",)),
)
# The float32 runs above against Table 1's first seed of the same row (bfloat16 at the cpu scale).
PRECISION_PAIRS = tuple((name, name[:-len("_float32")]) for name, _, _ in DIAGNOSTIC_RUNS if name.endswith("_float32"))


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: the workdir's name, the flag file it trains from (default: flags/<name>.flags),
    flags added after it (e.g. --seed=1) and the flags of its evaluation (e.g. --mask=pepper)."""

    name: str
    evaluate_flags: tuple[str, ...] = ()
    flagfile: str | None = None
    train_flags: tuple[str, ...] = ()
    # Evaluations after the first (evaluate_flags), each its own flags (e.g. a second test-time T).
    more_evaluations: tuple[tuple[str, ...], ...] = ()

    @property
    def evaluations(self) -> tuple[tuple[str, ...], ...]:
        return (self.evaluate_flags,) + self.more_evaluations

    @property
    def experiment(self) -> str:
        """The flag file's name, flags/<experiment>.flags."""
        return self.flagfile or self.name

    @property
    def cost(self) -> int:
        """Rough cost, to start the longest runs first: Langevin steps x (ladder depth + 1), x 4 for a
        long run."""
        name = self.experiment
        steps = 1 if "vae" in name or "vlae" in name else 15  # the variational methods run no Langevin
        for t in (1, 2, 5, 10, 30):
            if name.endswith(f"_t{t}"):
                steps = t
        depth = next((l for l in (2, 3, 4) if f"_l{l}" in name), 1)
        return steps * (depth + 1) * (LONG_STEPS // 3500 if self.name.endswith("_long") else 1)


def scale_flags(scale: str, row: str) -> tuple[str, ...]:
    """Flags a Table 1 row adds at `scale` after its flag files: the cpu scale's LVAE warm-up."""
    return (f"--kl_warmup_steps={CPU_KL_WARMUP_STEPS}",) if scale == "cpu" and row in ("lvae", "lvae_equal") else ()


def seeded(run: Run, seed: int) -> Run:
    """`run` trained with --seed=`seed` into NAME_seed<seed> (seed 0 is the run itself)."""
    if seed == 0:
        return run
    return dataclasses.replace(run, name=f"{run.name}_seed{seed}", flagfile=run.experiment,
                               train_flags=run.train_flags + (f"--seed={seed}",))


def seed_names(scale: str, name: str) -> list[str]:
    """The workdir names of run `name`'s training seeds at `scale`."""
    return [seeded(Run(name), seed).name for seed in seeds(scale, name)]


def long_run(run: Run) -> Run:
    """`run` trained LONG_STEPS updates into NAME_long."""
    return dataclasses.replace(run, name=f"{run.name}_long", flagfile=run.experiment,
                               train_flags=run.train_flags + (f"--num_steps={LONG_STEPS}",))


def prefixes(scale: str) -> tuple[str, ...]:
    """The flag file prefix of each dataset column at `scale` (Table 1 has one column per dataset)."""
    return {"paper": ("mnist", "svhn", "celeba"), "cpu": ("mnist", "celeba")}.get(scale, ("mnist5k",))


def table1_rows(scale: str, prefix: str) -> tuple[str, ...]:
    """The Table 1 rows trained for a dataset column: every row, but for the cpu scale's CelebA
    (faces cost several times the digits' update) the paper's rows without our two LVAE variants."""
    return CELEBA_CPU_ROWS if (scale, prefix) == ("cpu", "celeba") else TABLE1_ROWS


def seeds(scale: str, name: str) -> tuple[int, ...]:
    """The training seeds of run `name` at `scale` (every row of a column has the same)."""
    del name  # every run of a scale has its seeds
    return SEEDS[scale]


def flag_files(scale: str, experiment: str) -> list[str]:
    """The flag files (under flags/) a run of `experiment` trains from at `scale`, in order: the
    experiment's, then at the cpu scale cpu.flags and, for CelebA, cpu_celeba.flags."""
    files = [experiment]
    if scale == "cpu":
        files.append("cpu")
        if experiment.startswith("celeba_"):
            files.append("cpu_celeba")
    return [f"{name}.flags" for name in files]


def main_prefix(scale: str) -> str:
    return "mnist5k" if scale == "quick" else "mnist"


def table1_name(prefix: str, row: str) -> str:
    """The run of a Table 1 row: IABP is HiABP with L = 1 (mnist5k_iabp on mnist_5k)."""
    if row in ("lvae", "vlae") + EXTRA_ROWS:
        return f"{prefix}_{row}_l4"
    if row == "iabp":
        return f"{prefix}_iabp" if prefix == "mnist5k" else f"{prefix}_hiabp_l1"
    return f"{prefix}_{row}"


def fid_classifier_path(scale: str, prefix: str) -> str:
    """Where Table 1's FID classifier for MNIST-like data is trained once (run.prepare) and read by
    every Table 1 run of the scale (fid_flags)."""
    return f"runs/{scale}/fid_classifier_{prefix}.keras"


def fid_flags(scale: str, prefix: str, inception_weights: str | None) -> tuple[str, ...]:
    """Table 1's FID: in a classifier's feature space for MNIST-like data (Inception is meaningless
    there and cannot be downloaded here), in Inception-v3 features from `inception_weights` otherwise
    (none without them)."""
    if prefix in ("mnist5k", "mnist"):
        return ("--fid=classifier", f"--fid_samples={40000 if scale == 'paper' else 4000}",
                f"--fid_classifier={fid_classifier_path(scale, prefix)}")
    if inception_weights:
        return ("--fid=inception", "--fid_samples=40000", f"--inception_weights={inception_weights}")
    return ()


def shipped_names(scale: str) -> set[str]:
    """The runs whose trained models are shipped under results/SCALE/models/ (the cpu scale): the
    first seed of every Table 1 row, which the figures and the samples pages also draw from, and
    Table 2's mask runs."""
    if scale != "cpu":
        return set()
    return ({table1_name(prefix, row) for prefix in prefixes(scale) for row in table1_rows(scale, prefix)}
            | {f"{table2_base(scale)}_{mask}" for mask in MASKS})


def table2_base(scale: str) -> str:
    """Table 2's model: HiABP L = 4 on CelebA as the paper (the offline digits at the quick scale)."""
    return "mnist5k_hiabp_l3" if scale == "quick" else "celeba_hiabp_l4"


def figure1_name(scale: str, row: str, steps: int) -> str:
    """The run of Figure 1's `row` (iabp, abp) trained with T = `steps`: Table 1's run at T = 15,
    else NAME_t<T> (flags/NAME_t<T>.flags)."""
    name = table1_name(main_prefix(scale), row)
    return name if steps == 15 else f"{name}_t{steps}"


def figure1_seeds(scale: str, steps: int) -> tuple[int, ...]:
    """The training seeds of Figure 1's runs with T = `steps` (`FIGURE1_SEEDED_STEPS`)."""
    return SEEDS[scale] if steps in FIGURE1_SEEDED_STEPS else (0,)


def figure7_faces(scale: str) -> str | None:
    """The faces' HiABP whose layers Figure 7's measurement also describes (Table 1's L = 4 on CelebA)."""
    return None if scale == "quick" else "celeba_hiabp_l4"


def table3_base(scale: str) -> str:
    return "svhn_hiabp_l4" if scale == "paper" else f"{main_prefix(scale)}_hiabp_l3"


def table3_name(scale: str, steps: int) -> str:
    return table3_base(scale) if steps == 15 else f"{table3_base(scale)}_t{steps}"


def samples_pages(scale: str) -> dict:
    """{page name: {label: run}} of the samples pages: VAE, ABP and HiABP side by side (at the cpu
    scale also on its CelebA faces, where ABP is the persistent one Table 1 trains there)."""
    if scale == "paper":
        return {"samples": {"VAE": "celeba_vae", "ABP (non-persistent)": "celeba_abp", "HiABP": "celeba_hiabp_l4"}}
    prefix = main_prefix(scale)
    pages = {"samples": {"VAE": f"{prefix}_vae", "ABP (non-persistent)": f"{prefix}_abp",
                         "HiABP": f"{prefix}_hiabp_l3"}}
    if scale == "cpu":
        pages["samples_celeba"] = {"VAE": "celeba_vae", "ABP (persistent)": "celeba_abp_persistent",
                                   "HiABP (L=4)": "celeba_hiabp_l4"}
    return pages


def core_names(scale: str) -> dict:
    """{label: run} of the main job's table (paper: HiABP L = 1..4 on every dataset)."""
    if scale == "paper":
        return {f"{data} HiABP (L={l})": f"{data}_hiabp_l{l}" for data in prefixes(scale) for l in (1, 2, 3, 4)}
    prefix = main_prefix(scale)
    return {"IABP (L=1)": table1_name(prefix, "iabp"), "HiABP (L=3)": f"{prefix}_hiabp_l3"}


def runs(experiment: str, scale: str, inception_weights: str | None = None) -> list[Run]:
    """The runs `experiment` needs at `scale`, each with its evaluation flags."""
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}.")
    if experiment == "core":
        return [Run(name) for name in core_names(scale).values()]
    if experiment == "table1":
        rows = [(prefix, row, Run(table1_name(prefix, row), fid_flags(scale, prefix, inception_weights),
                                  train_flags=scale_flags(scale, row),
                                  more_evaluations=((f"--langevin_steps={SECOND_TEST_T}",),)
                                  if row in LANGEVIN_ROWS else ()))
                for prefix in prefixes(scale) for row in table1_rows(scale, prefix)]
        seeded_runs = [seeded(run, seed) for seed in SEEDS[scale] for _, _, run in rows
                       if seed in seeds(scale, run.name)]
        return seeded_runs + ([long_run(run) for prefix, row, run in rows
                               if row in LONG_ROWS and prefix in LONG_PREFIXES] if scale == "cpu" else [])
    if experiment == "table2":  # each mask's run scored on occluded test images and on its own training images
        base = table2_base(scale)
        return [Run(base)] + [Run(f"{base}_{mask}", (f"--mask={mask}",), more_evaluations=(
            (f"--mask={mask}", "--split=train"),)) for mask in MASKS]
    if experiment == "table3":  # T = 15 is Table 1's run, with its training seeds
        return [seeded(Run(table3_name(scale, t)), seed) for t in LANGEVIN_STEPS
                for seed in (SEEDS[scale] if t == 15 else (0,))]
    if experiment == "figure1":  # Table 1's IABP and ABP first (langevin_budget's base runs), then every T and seed
        steps = sorted(FIGURE1_TRAIN_STEPS[scale], key=lambda t: t != 15)
        return [seeded(Run(figure1_name(scale, row, t)), seed) for t in steps for seed in figure1_seeds(scale, t)
                for row in FIGURE1_ROWS]
    if experiment == "figure7":  # the picture from the first seed; the numbers from every seed, and the faces'
        faces = figure7_faces(scale)
        return [seeded(Run(f"{main_prefix(scale)}_hiabp_l3"), seed) for seed in SEEDS[scale]] + (
            [Run(faces)] if faces else [])
    if experiment == "samples":
        return [Run(name) for page in samples_pages(scale).values() for name in page.values()]
    if experiment == "diagnostics":  # the cpu scale's; elsewhere the report diagnoses Table 1's runs
        return [Run(name, flagfile=flagfile, train_flags=flags + (DIAGNOSTIC_KEEP,))
                for name, flagfile, flags in DIAGNOSTIC_RUNS] if scale == "cpu" else []
    raise ValueError(f"experiment {experiment!r} is unknown; choose one of {', '.join(EXPERIMENTS)}.")


def pool(experiments, scale: str, inception_weights: str | None = None) -> list[Run]:
    """Every run of `experiments`, each once (its first evaluation flags), longest first, so that the
    last runs to finish are short and the cores stay busy to the end."""
    unique = {}
    for experiment in experiments:
        for run in runs(experiment, scale, inception_weights):
            unique.setdefault(run.name, run)
    return longest_first(unique.values())


def longest_first(runs_) -> list[Run]:
    return sorted(runs_, key=lambda run: -run.cost)  # stable: plan order among equals
