"""Which runs make each table and figure of the paper, at each scale: the one place that says so.

Knows the flag files (flags/), the scales, and whether the data dir holds the data of a dataset column
the cpu scale plans only where it is prepared (asked of tensorflow-datasets, nothing downloaded); knows
nothing of runs/, the records or the reports.

A run (`Run`) is described by its fields, in the paper's terms: its scale, its dataset column (mnist5k,
mnist, svhn, celeba: the flag files' prefix), its Table 1 row (the method and L: vae, lvae, vlae, abp,
abp_persistent, iabp, hiabp_l2 ... hiabp_l4 and our own LVAE rows), its training seed, its budget, the
training-time variations of Figure 1, Table 2, Table 3 and the diagnostics (the training T, a mask, the
precision, the latent size, checkpoints kept) and its evaluations. Its flag file, training flags, cost and
name (its workdir runs/<scale>/<name>, its record results/<scale>/runs/<name>) are derived from them. The
scales:

    quick   the flag files as they are (mnist5k_*: the offline mnist_5k, 650 updates; the main job)
    cpu     the paper's MNIST experiments (mnist_*: the standard 60,000 / 10,000 split) with the quick
            scale's networks, trained to 3,500 updates: flags/cpu.flags after each file; every
            Table 1 row with SEEDS training seeds (runs NAME, NAME_seed1, ...), and LONG_ROWS also
            trained LONG_STEPS updates (NAME_long); and a CelebA column (celeba_*, then
            flags/cpu_celeba.flags: 9,000 real faces) with the same seeds and long runs, and
            Table 2 on it; and an SVHN column (svhn_*, then flags/cpu.flags) with the same seeds
            where tensorflow-datasets' svhn_cropped is prepared in the data dir (`OPTIONAL_COLUMNS`)
    paper   the paper's datasets and 3e5 updates (mnist_*, svhn_*, celeba_*; a GPU and tfds data)

`hiabp_tf.experiments.run` trains and evaluates what this plan lists, then writes the results.
"""

from __future__ import annotations

import dataclasses
import os

SCALES = ("quick", "cpu", "paper")
EXPERIMENTS = ("core", "table1", "table2", "table3", "figure1", "figure7", "samples", "diagnostics", "latent_size")
# Table 1 of the paper: (row key, label, score reported); the row key is a run's `Run.row`.
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


# The dataset columns: the flag files' prefix (mnist5k: the offline mnist_5k).
COLUMNS = ("mnist5k", "mnist", "svhn", "celeba")
# Each Table 1 row's latent layers L (a run's cost grows with L + 1), and the variational rows (no Langevin).
ROW_LAYERS = {"vae": 1, "lvae": 4, "vlae": 4, "abp": 1, "abp_persistent": 1, "iabp": 1, "hiabp_l2": 2, "hiabp_l3": 3,
              "hiabp_l4": 4, "lvae_equal": 4, "lvae_no_warmup": 4, "lvae_all_layers": 4}
VARIATIONAL_ROWS = ("vae", "lvae", "vlae") + EXTRA_ROWS
# The Langevin steps T of every flag file without a _t<T> in its name (Algorithm 1's; Table 1's runs).
TRAIN_T = 15
# flags/cpu.flags's --num_steps: a long run costs LONG_STEPS / CPU_STEPS times as much.
CPU_STEPS = 3500
# The flag files every run of a scale adds after its own, and those a column adds after them.
SCALE_FLAG_FILES = {"cpu": ("cpu",)}
COLUMN_FLAG_FILES = {("cpu", "celeba"): ("cpu_celeba",)}
# The dataset columns a scale plans only where their tensorflow-datasets data is prepared in the data dir
# (nothing is downloaded): {scale: {column: tfds name}}. The cpu scale's SVHN needs no overlay of its own
# after flags/cpu.flags (CelebA's, flags/cpu_celeba.flags, replaces tfds's celeb_a by a folder of faces
# and 64 x 64 by 32 x 32): svhn_cropped is already 32 x 32 x 3 and cpu.flags gives its networks, precision
# and budget as to MNIST's. Its rows and seeds are the CelebA column's (the paper's rows; an update costs
# about a 32 x 32 face's), without long runs.
OPTIONAL_COLUMNS = {"cpu": {"svhn": "svhn_cropped"}}
CPU_COLUMN_ROWS = {"celeba": CELEBA_CPU_ROWS, "svhn": PAPER_ROWS}


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run, by its fields; `name`, `flagfile`, `flag_files`, `train_flags` and `cost` derive
    from them. A field left at its default is the flag files' own setting."""

    scale: str
    column: str  # the dataset column: mnist5k, mnist, svhn, celeba (the flag files' prefix)
    row: str  # Table 1's row: the method and L (TABLE1_ROWS; IABP is HiABP with L = 1)
    seed: int = 0  # the training seed (--seed; 0 is the flag files')
    budget: int | None = None  # updates (--num_steps); None: the scale's flag files' (LONG_STEPS: a long run)
    langevin_steps: int | None = None  # the training T (flags/..._t<T>.flags); None or TRAIN_T: the flag file's
    mask: str | None = None  # trained on images occluded by one of MASKS (Table 2; flags/..._<mask>.flags)
    precision: str | None = None  # --precision after the scale's (the diagnostics' float32)
    latent_size: int | None = None  # the total latent size, split equally over the layers (`split_latent`)
    keep_checkpoints: int | None = None  # --keep_checkpoints (the diagnostics follow a run over training)
    trains_from: str | None = None  # the flag file, where it is not the fields' own (flags/<trains_from>.flags)
    # The test-time settings: one evaluation per tuple of `python -m hiabp_tf.evaluate` flags.
    evaluations: tuple[tuple[str, ...], ...] = ((),)

    def __post_init__(self):
        if self.langevin_steps == TRAIN_T:
            object.__setattr__(self, "langevin_steps", None)  # the flag file's own T: the same run
        for field, value, allowed in (("scale", self.scale, SCALES), ("column", self.column, COLUMNS),
                                      ("row", self.row, TABLE1_ROWS), ("mask", self.mask, MASKS + (None,))):
            if value not in allowed:
                raise ValueError(f"Run {field} {value!r} is unknown; choose one of {', '.join(map(str, allowed))}.")

    @property
    def model(self) -> str:
        """The row's part of the flag files' names: IABP is hiabp_l1 (iabp on mnist_5k), the LVAEs and
        the VLAE have L = 4."""
        if self.row in ("lvae", "vlae") + EXTRA_ROWS:
            return f"{self.row}_l4"
        if self.row == "iabp":
            return "iabp" if self.column == "mnist5k" else "hiabp_l1"
        return self.row

    @property
    def flagfile(self) -> str:
        """The flag file the run trains from, flags/<flagfile>.flags: COLUMN_MODEL[_MASK][_tT], or `trains_from`."""
        return self.trains_from or (f"{self.column}_{self.model}" + (f"_{self.mask}" if self.mask else "")
                                    + (f"_t{self.langevin_steps}" if self.langevin_steps else ""))

    @property
    def flag_files(self) -> list[str]:
        """The flag files (under flags/) it trains from, in order: its own, then its scale's and its column's
        at that scale (cpu.flags; for CelebA also cpu_celeba.flags)."""
        return flag_files(self.scale, self.flagfile, self.column)

    @property
    def train_flags(self) -> tuple[str, ...]:
        """The training flags after the flag files: the scale's for the row, then one per field set."""
        return (scale_flags(self.scale, self.row)
                + ((f"--latent_dims={','.join(map(str, split_latent(self.latent_size, ROW_LAYERS[self.row])))}",)
                   if self.latent_size else ())
                + ((f"--precision={self.precision}",) if self.precision else ())
                + ((f"--keep_checkpoints={self.keep_checkpoints}",) if self.keep_checkpoints else ())
                + ((f"--seed={self.seed}",) if self.seed else ())
                + ((f"--num_steps={self.budget}",) if self.budget else ()))

    @property
    def long(self) -> bool:
        return self.budget == LONG_STEPS

    @property
    def name(self) -> str:
        """COLUMN_MODEL, then a part for each training-time variation (_MASK, _tT, _zDIMS, _PRECISION; a run
        that keeps its checkpoints and has none of these, _diag), _seedN, and _long (or _stepsN)."""
        variations = ((f"_{self.mask}" if self.mask else "")
                      + (f"_t{self.langevin_steps}" if self.langevin_steps else "")
                      + (f"_z{self.latent_size}" if self.latent_size else "")
                      + (f"_{self.precision}" if self.precision else ""))
        if not variations and self.keep_checkpoints:
            variations = "_diag"  # a diagnostic retraining of Table 1's run, which has that run's name
        budget = "" if self.budget is None else "_long" if self.long else f"_steps{self.budget}"
        return f"{self.column}_{self.model}{variations}" + (f"_seed{self.seed}" if self.seed else "") + budget

    @property
    def evaluate_flags(self) -> tuple[str, ...]:
        """The flags of its first evaluation."""
        return self.evaluations[0]

    @property
    def cost(self) -> int:
        """Rough cost, to start the longest runs first: Langevin steps (1 for a variational row) x (L + 1),
        x LONG_STEPS / CPU_STEPS for a long run."""
        steps = 1 if self.row in VARIATIONAL_ROWS else (self.langevin_steps or TRAIN_T)
        return steps * (ROW_LAYERS[self.row] + 1) * (max(1, self.budget // CPU_STEPS) if self.budget else 1)


def scale_flags(scale: str, row: str) -> tuple[str, ...]:
    """Flags a Table 1 row adds at `scale` after its flag files: the cpu scale's LVAE warm-up."""
    return (f"--kl_warmup_steps={CPU_KL_WARMUP_STEPS}",) if scale == "cpu" and row in ("lvae", "lvae_equal") else ()


def flag_files(scale: str, flagfile: str, column: str) -> list[str]:
    """The flag files (under flags/) a run of `column` trains from at `scale`, in order: `flagfile`'s, then
    the scale's (cpu.flags) and the column's at that scale (cpu_celeba.flags)."""
    files = (flagfile,) + SCALE_FLAG_FILES.get(scale, ()) + COLUMN_FLAG_FILES.get((scale, column), ())
    return [f"{name}.flags" for name in files]


def seed_runs(run: Run) -> list[Run]:
    """`run` with each training seed of its scale (seed 0 is the run itself)."""
    return [dataclasses.replace(run, seed=seed) for seed in SEEDS[run.scale]]


def long_run(run: Run) -> Run:
    """`run` trained LONG_STEPS updates."""
    return dataclasses.replace(run, budget=LONG_STEPS)


def data_dir() -> str:
    """The data dir of the plan's trainings (no flag file sets --data_dir): tensorflow-datasets'
    TFDS_DATA_DIR, else its default ~/tensorflow_datasets, as `input_pipeline.resolve_data_dir` finds it."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def prepared(dataset: str, folder: str) -> bool:
    """Whether tensorflow-datasets' `dataset` is prepared in the data dir `folder` (nothing is downloaded;
    tensorflow-datasets is only asked where `folder` has a folder of that name)."""
    if not os.path.isdir(os.path.join(folder, dataset)):
        return False
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    return tfds.builder(dataset, data_dir=folder).is_prepared()


def columns(scale: str) -> tuple[str, ...]:
    """The dataset columns at `scale` (Table 1 has one per dataset), in the paper's order: an optional
    column (`OPTIONAL_COLUMNS`) only where its data is prepared in the data dir."""
    planned = {"paper": ("mnist", "svhn", "celeba"), "cpu": ("mnist", "svhn", "celeba")}.get(scale, ("mnist5k",))
    optional = OPTIONAL_COLUMNS.get(scale, {})
    folder = data_dir() if optional else None
    return tuple(column for column in planned if column not in optional or prepared(optional[column], folder))


def columns_left_out(scale: str) -> list[str]:
    """One line for each optional dataset column `scale` leaves out, saying why and what to prepare."""
    folder = data_dir()
    where = "TFDS_DATA_DIR" if os.environ.get("TFDS_DATA_DIR") else "TFDS_DATA_DIR is not set"
    return [f"{column}: Table 1's {column} column is left out at the {scale} scale: tensorflow-datasets' {dataset} "
            f"is not prepared in the data dir {folder} ({where}); prepare it there (`tfds build {dataset} "
            f"--data_dir={folder}` on a machine with the internet) to plan it"
            for column, dataset in OPTIONAL_COLUMNS.get(scale, {}).items() if not prepared(dataset, folder)]


def table1_rows(scale: str, column: str) -> tuple[str, ...]:
    """The Table 1 rows trained for a dataset column: every row, but for the cpu scale's CelebA and SVHN
    (their update costs several times the digits') the paper's rows without our LVAE variants."""
    return CPU_COLUMN_ROWS.get(column, TABLE1_ROWS) if scale == "cpu" else TABLE1_ROWS


def main_column(scale: str) -> str:
    return "mnist5k" if scale == "quick" else "mnist"


def fid_classifier_path(scale: str, column: str) -> str:
    """Where Table 1's FID classifier for MNIST-like data is trained once (run.prepare) and read by
    every Table 1 run of the scale (fid_flags)."""
    return f"runs/{scale}/fid_classifier_{column}.keras"


def fid_flags(scale: str, column: str, inception_weights: str | None) -> tuple[str, ...]:
    """Table 1's FID: in a classifier's feature space for MNIST-like data (Inception is meaningless
    there and cannot be downloaded here), in Inception-v3 features from `inception_weights` otherwise
    (none without them)."""
    if column in ("mnist5k", "mnist"):
        return ("--fid=classifier", f"--fid_samples={40000 if scale == 'paper' else 4000}",
                f"--fid_classifier={fid_classifier_path(scale, column)}")
    if inception_weights:
        return ("--fid=inception", "--fid_samples=40000", f"--inception_weights={inception_weights}")
    return ()


def table1_models(scale: str, inception_weights: str | None = None) -> list[Run]:
    """The first seed of every Table 1 row of every dataset column at `scale`, with Table 1's evaluations:
    its FID, and for the rows of LANGEVIN_ROWS a second at SECOND_TEST_T."""
    return [Run(scale, column, row, evaluations=(fid_flags(scale, column, inception_weights),) + (
        ((f"--langevin_steps={SECOND_TEST_T}",),) if row in LANGEVIN_ROWS else ()))
        for column in columns(scale) for row in table1_rows(scale, column)]


def long_runs(scale: str, inception_weights: str | None = None) -> list[Run]:
    """The Table 1 runs also trained LONG_STEPS updates (the cpu scale's LONG_ROWS of LONG_PREFIXES)."""
    if scale != "cpu":
        return []
    return [long_run(run) for run in table1_models(scale, inception_weights)
            if run.row in LONG_ROWS and run.column in LONG_PREFIXES]


def shipped_names(scale: str) -> set[str]:
    """The runs whose trained models are shipped under results/SCALE/models/ (the cpu scale): the
    first seed of every Table 1 row, which the figures and the samples pages also draw from, and
    Table 2's mask runs."""
    if scale != "cpu":
        return set()
    return {run.name for run in table1_models(scale)} | {run.name for run in runs("table2", scale) if run.mask}


def table2_base(scale: str) -> Run:
    """Table 2's model: HiABP L = 4 on CelebA as the paper (the offline digits at the quick scale)."""
    return Run(scale, "mnist5k", "hiabp_l3") if scale == "quick" else Run(scale, "celeba", "hiabp_l4")


def table2_run(scale: str, mask: str) -> Run:
    """Table 2's model trained on images occluded by `mask`, scored on occluded test images and on its own
    occluded training images."""
    return dataclasses.replace(table2_base(scale), mask=mask, evaluations=(
        (f"--mask={mask}",), (f"--mask={mask}", "--split=train")))


def figure1_run(scale: str, row: str, steps: int, seed: int = 0) -> Run:
    """The run of Figure 1's `row` (iabp, abp) trained with T = `steps` (Table 1's run at T = 15)."""
    return Run(scale, main_column(scale), row, seed=seed, langevin_steps=steps)


def figure1_seeds(scale: str, steps: int) -> tuple[int, ...]:
    """The training seeds of Figure 1's runs with T = `steps` (`FIGURE1_SEEDED_STEPS`)."""
    return SEEDS[scale] if steps in FIGURE1_SEEDED_STEPS else (0,)


def figure7_faces(scale: str) -> Run | None:
    """The faces' HiABP whose layers Figure 7's measurement also describes (Table 1's L = 4 on CelebA)."""
    return None if scale == "quick" else Run(scale, "celeba", "hiabp_l4")


def table3_base(scale: str) -> Run:
    return Run(scale, "svhn", "hiabp_l4") if scale == "paper" else Run(scale, main_column(scale), "hiabp_l3")


def table3_run(scale: str, steps: int, seed: int = 0) -> Run:
    return dataclasses.replace(table3_base(scale), langevin_steps=steps, seed=seed)


def samples_pages(scale: str) -> dict:
    """{page name: {label: run}} of the samples pages: VAE, ABP and HiABP side by side (at the cpu
    scale also on its CelebA faces, where ABP is the persistent one Table 1 trains there)."""
    if scale == "paper":
        return {"samples": {"VAE": Run(scale, "celeba", "vae"), "ABP (non-persistent)": Run(scale, "celeba", "abp"),
                            "HiABP": Run(scale, "celeba", "hiabp_l4")}}
    column = main_column(scale)
    pages = {"samples": {"VAE": Run(scale, column, "vae"), "ABP (non-persistent)": Run(scale, column, "abp"),
                         "HiABP": Run(scale, column, "hiabp_l3")}}
    if scale == "cpu":
        pages["samples_celeba"] = {"VAE": Run(scale, "celeba", "vae"),
                                   "ABP (persistent)": Run(scale, "celeba", "abp_persistent"),
                                   "HiABP (L=4)": Run(scale, "celeba", "hiabp_l4")}
    return pages


def core_runs(scale: str) -> dict:
    """{label: run} of the main job's table (paper: HiABP L = 1..4 on every dataset)."""
    if scale == "paper":
        return {f"{column} HiABP (L={l})": Run(scale, column, "iabp" if l == 1 else f"hiabp_l{l}")
                for column in columns(scale) for l in (1, 2, 3, 4)}
    column = main_column(scale)
    return {"IABP (L=1)": Run(scale, column, "iabp"), "HiABP (L=3)": Run(scale, column, "hiabp_l3")}


# The diagnosis of the baselines (results/SCALE/diagnostics.md): runs beside Table 1's, one seed each,
# every 250-update checkpoint kept (DIAGNOSTIC_KEEP) so that each layer's units and KL can be followed over
# training. (column, row, fields of `Run`): the LVAE's bottleneck (a VAE with the equal-split LVAE's
# 12-dimensional z^1; Table 1's LVAE has its widest layer at the bottom and its equal-split row is kept),
# the equal-split LVAE and the CelebA VLAE retrained with their checkpoints kept (their Table 1 records
# kept none; bfloat16 kernels round differently from CPU to CPU, so a retraining on another machine is
# another sample of the same run, not a copy; the LVAE's named when Table 1's LVAE was the equal split,
# mnist_lvae_l4_diag), and one seed of five rows in float32.
DIAGNOSTIC_KEEP = 20
DIAGNOSTIC_RUNS = (
    ("mnist", "vae", dict(latent_size=12)),
    ("mnist", "lvae", dict(trains_from="mnist_lvae_equal_l4")),
    ("celeba", "vlae", {}),
    ("mnist", "vae", dict(precision="float32")),
    ("mnist", "lvae", dict(precision="float32")),
    ("mnist", "vlae", dict(precision="float32")),
    ("mnist", "iabp", dict(precision="float32")),
    ("mnist", "hiabp_l4", dict(precision="float32")),
)


def split_latent(total: int, layers: int) -> tuple[int, ...]:
    """The per-layer sizes of a total latent size split equally over `layers` layers, as every Table 1 flag
    file splits its 48 (a size that does not divide evenly is refused rather than split by a rule of ours)."""
    if total < layers or total % layers:
        raise ValueError(f"a total latent size of {total} does not split equally over {layers} layers; choose a "
                         f"multiple of {layers}.")
    return (total // layers,) * layers


# The latent size the paper does not state (results/SCALE/latent_size.md): Table 1's MNIST rows below at
# each total latent size of LATENT_SIZES beside Table 1's own 48, with Table 1's seeds, budget and flags.
# The 12-dimensional VAE of seed 0 is the diagnostics' mnist_vae_z12 (the same flags; it also keeps its
# checkpoints, which changes no number).
LATENT_SIZES = {"cpu": (12, 24), "paper": (12, 24)}
LATENT_SIZE_ROWS = ("vae", "vlae", "iabp", "hiabp_l2", "hiabp_l3", "hiabp_l4")


def latent_size_runs(scale: str) -> list[Run]:
    """The latent-size panel's runs at `scale`: every size and row on the main column with Table 1's seeds
    (first seeds first), then Table 1's own runs of those rows (its 48)."""
    column = main_column(scale)
    panel = [Run(scale, column, row, seed, latent_size=size) for seed in SEEDS[scale]
             for size in LATENT_SIZES.get(scale, ()) for row in LATENT_SIZE_ROWS]
    table1 = [run for run in runs("table1", scale) if run.column == column and run.row in LATENT_SIZE_ROWS
              and not run.long] if panel else []
    return panel + table1


def diagnostic_runs(scale: str) -> list[Run]:
    """The diagnostic runs (the cpu scale's; elsewhere the report diagnoses Table 1's runs)."""
    return [Run(scale, column, row, keep_checkpoints=DIAGNOSTIC_KEEP, **fields)
            for column, row, fields in DIAGNOSTIC_RUNS] if scale == "cpu" else []


# The float32 runs above against Table 1's first seed of the same row (bfloat16 at the cpu scale).
PRECISION_PAIRS = tuple((run.name, Run(run.scale, run.column, run.row).name) for run in diagnostic_runs("cpu")
                        if run.precision == "float32")


def runs(experiment: str, scale: str, inception_weights: str | None = None) -> list[Run]:
    """The runs `experiment` needs at `scale`, each with its evaluations."""
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}.")
    if experiment == "core":
        return list(core_runs(scale).values())
    if experiment == "table1":
        models = table1_models(scale, inception_weights)
        return [dataclasses.replace(run, seed=seed) for seed in SEEDS[scale] for run in models] + long_runs(
            scale, inception_weights)
    if experiment == "table2":  # each mask's run scored on occluded test images and on its own training images
        return [table2_base(scale)] + [table2_run(scale, mask) for mask in MASKS]
    if experiment == "table3":  # T = 15 is Table 1's run, with its training seeds
        return [table3_run(scale, t, seed) for t in LANGEVIN_STEPS for seed in (SEEDS[scale] if t == TRAIN_T else (0,))]
    if experiment == "figure1":  # Table 1's IABP and ABP first (langevin_budget's base runs), then every T and seed
        steps = sorted(FIGURE1_TRAIN_STEPS[scale], key=lambda t: t != TRAIN_T)
        return [figure1_run(scale, row, t, seed) for t in steps for seed in figure1_seeds(scale, t)
                for row in FIGURE1_ROWS]
    if experiment == "figure7":  # the picture from the first seed; the numbers from every seed, and the faces'
        faces = figure7_faces(scale)
        return seed_runs(Run(scale, main_column(scale), "hiabp_l3")) + ([faces] if faces else [])
    if experiment == "samples":
        return [run for page in samples_pages(scale).values() for run in page.values()]
    if experiment == "diagnostics":
        return diagnostic_runs(scale)
    if experiment == "latent_size":
        return latent_size_runs(scale)
    raise ValueError(f"experiment {experiment!r} is unknown; choose one of {', '.join(EXPERIMENTS)}.")


def pool(experiments, scale: str, inception_weights: str | None = None) -> list[Run]:
    """Every run of `experiments`, each once (its first evaluations), longest first, so that the
    last runs to finish are short and the cores stay busy to the end."""
    unique = {}
    for experiment in experiments:
        for run in runs(experiment, scale, inception_weights):
            unique.setdefault(run.name, run)
    return longest_first(unique.values())


def longest_first(runs_) -> list[Run]:
    return sorted(runs_, key=lambda run: -run.cost)  # stable: plan order among equals
