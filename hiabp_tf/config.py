"""RunConfig: everything that defines a training run, and the command-line flags made from it.

Each field of RunConfig is one flag of `python -m hiabp_tf.train` (same name, type and default; the
help text is the field's `help` metadata), so a setting is written once. Flag files (flags/*.flags)
are read by absl itself, nested `--flagfile=` includes and all, also in-process:

    config, train_kwargs = config_lib.load_flagfile("flags/mnist5k_iabp.flags", langevin_steps=5)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os

from absl import flags

from hiabp_tf import methods
from hiabp_tf.checks import limits
from hiabp_tf.checks.errors import ConfigError
from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.data import image_folder
from hiabp_tf.data import masks
from hiabp_tf.data import spec as data_spec

SEED_MAX = limits.SEED_MAX  # every --seed is in 0..SEED_MAX (limits.check_seed)


def _field(default, help_text, **flag):
    """A RunConfig field and the help of its flag (extra absl arguments, e.g. enum_values, in `flag`)."""
    return dataclasses.field(default=default, metadata={"help": help_text, **flag})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (the absl flags of train.py, minus bookkeeping)."""

    # What to train.
    method: str = _field("hiabp", "Which model to train.", enum_values=methods.METHODS)
    dataset: data_spec.DataSpec = _field(  # given as text (a flag, config.json), parsed in __post_init__
        "mnist_5k", "mnist_5k (offline), mnist, svhn_cropped, celeb_a (tensorflow-datasets), "
                          "npz:PATH or images:DIR (a folder of JPEG/PNG files: see --image_size, --image_crop, "
                          "--test_images; a relative DIR is relative to the current directory and recorded "
                          "absolute, with those settings, in config.json).")
    num_layers: int = _field(1, "L, the number of latent layers (1 = IABP).")
    latent_dims: tuple[int, ...] = _field((48,), "Size of z^l for l = 1..L (bottom layer first), one per layer.")
    width: int = _field(64, "Channels of every ladder (de)conv layer.")
    # Algorithm 1 (paper defaults).
    langevin_steps: int = _field(15, "T, Langevin steps per iteration.")
    step_size: float = _field(0.15, "s, the Langevin step size.")
    sigma: float = _field(0.3, "Standard deviation of the Gaussian likelihood p(x|z).")
    learning_rate: float = _field(3e-4, "Adamax learning rate of both networks.")
    batch_size: int = _field(100, "m, examples per iteration.")
    seed: int = _field(0, "Seed of weights, data order, initializer and Langevin noise "
                       f"(0..{SEED_MAX}).")
    eval_langevin_steps: int | None = _field(
        None, "Test-time Langevin steps of [E+L] / [L] reconstructions (default: the training T).")
    # Occlusion of the training images (learning from incomplete data, Table 2).
    mask: str = _field("none", "Occlude the training images (learning from incomplete data): none, pepper, "
                       "pepper:F, region10, region20 or region:N (side N on a 64x64 image).")
    langevin_clip: float | None = _field(
        None, "Clip every component of the Langevin gradient dE/dz to [-c, c] (off by default: the "
        "paper has no clipping).")
    kl_warmup_steps: int = _field(
        0, "Variational methods: the KL term's weight rises linearly from 0 to 1 over this many updates "
        "(the warm-up of Sonderby et al. 2016's LVAE); 0 = none.")
    lvae_top_down: str = _field(
        "pooled", "LVAE: what its linear prior heads p(z^l | z^{l+1}) read of the top-down map d^{l+1}: pooled "
        "(the spatial mean of each channel) or flattened (every position: the first LVAE runs, which "
        "collapsed; workdirs of then load as it).", enum_values=models.LVAE_TOP_DOWN)
    precision: str = _field(
        "float32", "Arithmetic of the networks: float32 (exact), bfloat16 (Keras mixed_bfloat16: faster "
        "on CPUs with AVX512_BF16 or AMX, slightly different results, see results/performance.md; emulated "
        "and several times slower on other CPUs) or auto (bfloat16 where the CPU has it in hardware, else "
        "float32; the run's config.json records which).",
        enum_values=models.PRECISION_CHOICES)

    def __post_init__(self):
        object.__setattr__(self, "latent_dims", tuple(int(d) for d in self.latent_dims))
        # `auto` is settled here, on the machine that builds the run, so config.json and every
        # network built from this config say which arithmetic the run used.
        object.__setattr__(self, "precision", models.resolve_precision(self.precision))
        try:
            # Parsed once (config.json's text, old ones included, or the flags'): the name alone rebuilds the
            # splits wherever the run is read.
            object.__setattr__(self, "dataset", data_spec.parse(self.dataset))
            self._validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def _validate(self):
        if self.method not in methods.METHODS:
            raise ValueError(f"--method={self.method!r} is unknown; choose one of {', '.join(methods.METHODS)}.")
        for field in dataclasses.fields(self):  # every integer, before it reaches a tensor
            value = getattr(self, field.name)
            if field.type.split(" ")[0] == "int" and value is not None:
                limits.check_int(value, f"--{field.name}", *INT_FIELD_RANGES.get(field.name, (0, limits.INT32_MAX)))
            elif field.type.split(" ")[0] == "float" and value is not None and not math.isfinite(value):
                raise ValueError(f"--{field.name}={value} must be a finite number.")
        for size in self.latent_dims:
            limits.check_int(size, "--latent_dims", 1, limits.LATENT_DIM_MAX)
        if len(self.latent_dims) != self.num_layers:
            raise ValueError(
                f"--latent_dims has {len(self.latent_dims)} sizes {list(self.latent_dims)} but "
                f"--num_layers={self.num_layers}: give one size per latent layer, bottom layer first "
                f"(e.g. --latent_dims={','.join(['16'] * self.num_layers)}).")
        if self.dataset.kind == "images":
            size, sides = self.dataset.settings["image_size"], _SUPPORTED_SIDES
            if size not in sides:
                raise ValueError(f"--image_size={size} is not a side the HiABP networks build: use one of "
                                 f"{', '.join(map(str, sides))} (the centre square is resized to it).")
        masks.parse_mask(self.mask)  # a ValueError naming --mask
        if self.precision not in models.PRECISIONS:
            raise ValueError(f"--precision={self.precision!r} is unknown: use one of "
                             f"{', '.join(models.PRECISION_CHOICES)}.")
        if self.kl_warmup_steps and self.method not in methods.VARIATIONAL:
            raise ValueError(f"--kl_warmup_steps={self.kl_warmup_steps} is for the variational methods "
                             f"({', '.join(methods.VARIATIONAL)}): --method={self.method} has no KL term. Drop it.")
        if self.lvae_top_down != "pooled" and self.method != "lvae":
            raise ValueError(f"--lvae_top_down={self.lvae_top_down} is for --method=lvae (its prior heads); "
                             f"--method={self.method} has none. Drop it.")
        if self.method == "vae" and self.num_layers != 1:
            raise ValueError(f"--method=vae has one latent layer: --num_layers must be 1, got "
                             f"{self.num_layers} (use --method=vlae or lvae for hierarchical latents).")
        self.hyperparameters()  # validates T, s, sigma and the learning rate

    def hyperparameters(self) -> algorithm.Hyperparameters:
        return algorithm.Hyperparameters(
            langevin_steps=self.langevin_steps, step_size=self.step_size, sigma=self.sigma,
            learning_rate=self.learning_rate, langevin_clip=self.langevin_clip, kl_warmup_steps=self.kl_warmup_steps)

    @property
    def test_langevin_steps(self) -> int:
        return self.langevin_steps if self.eval_langevin_steps is None else self.eval_langevin_steps

    @property
    def mask_spec(self) -> masks.MaskSpec:
        return masks.parse_mask(self.mask)

    def architecture(self, image_shape) -> models.Architecture:
        try:
            return models.Architecture(tuple(image_shape), self.latent_dims, self.width, self.precision,
                                       self.lvae_top_down)
        except ValueError as e:
            raise ConfigError(f"--dataset={self.dataset}: {e}") from None

    def model_fields(self) -> dict:
        """The fields a checkpoint depends on: resuming with others would not restore (the
        networks, and the input pipeline whose position the checkpoint holds)."""
        return {k: getattr(self, k) for k in ("method", "num_layers", "latent_dims", "width", "dataset",
                                              "batch_size", "seed", "mask", "lvae_top_down")}

    def training_changes(self, other: "RunConfig") -> dict:
        """{field: (this value, other's)} of the settings, besides `model_fields`, in which `other`
        differs: each changes how a resumed run trains (or what its default test-time T is). The
        precision is not among them: the weights are float32 either way, and each sitting records it."""
        fixed = set(self.model_fields()) | {"precision"}
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if f.name not in fixed and getattr(self, f.name) != getattr(other, f.name)}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        if data.get("method") == "lvae" and "kl_warmup_steps" not in data:
            # Written before the published LVAE existed: "lvae" was then the variant that decodes
            # x from every layer, now "lvae_all_layers".
            data = dict(data, method="lvae_all_layers")
        elif data.get("method") == "lvae" and "lvae_top_down" not in data:
            # The first published-LVAE runs: prior heads on the flattened top-down map.
            data = dict(data, lvae_top_down="flattened")
        return cls(**{k: v for k, v in data.items() if k in known})


_SUPPORTED_SIDES = sorted({shape[0] for shape in models.SUPPORTED_IMAGE_SHAPES})


# The range of each integer field of RunConfig (its flag's); any other integer field (a setting added
# later included) is a count in 0..2**31 - 1, the int32 it becomes in the graph.
INT_FIELD_RANGES = {
    "num_layers": (1, 4),
    "width": (1, limits.WIDTH_MAX),
    "batch_size": (1, limits.INT32_MAX),
    "seed": (0, limits.SEED_MAX),
    "langevin_steps": (0, limits.LANGEVIN_STEPS_MAX),
    "eval_langevin_steps": (0, limits.LANGEVIN_STEPS_MAX),
}


def flag_text(name: str, value) -> str:
    """A setting as its flag of hiabp_tf.train: `--latent_dims=16,16`, `--eval_langevin_steps` unset."""
    if value is None:
        return f"--{name} unset"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return f"--{name}={value}"


def check_seed(seed, flag: str = "--seed") -> int:
    """`seed` as an int if it is one in 0..SEED_MAX, the range of every --seed; else a ConfigError
    naming `flag`."""
    return limits.check_seed(seed, flag)


# --------------------------------------------------------------------------------- flags

# The flags of `python -m hiabp_tf.train` that are not RunConfig fields: train()'s bookkeeping
# arguments (they do not change the model), name -> (absl DEFINE function name, default, help).
TRAIN_FLAGS = {
    "num_steps": ("integer", 300_000, "Total parameter updates (the paper: 3e5)."),
    "log_every": ("integer", 100, "Steps between progress lines and scalar summaries."),
    "eval_every": ("integer", 5000, "Steps between test-MSE and image summaries."),
    "eval_examples": ("integer", 1000, "Test examples scored at each eval_every (evaluate.py uses all)."),
    "checkpoint_every": ("integer", 1000, "Steps between checkpoints."),
    "keep_checkpoints": ("integer", 3, "Checkpoints kept by the CheckpointManager."),
    "deterministic": ("bool", False, "Deterministic ops (tf.config.experimental.enable_op_determinism): "
                      "two runs with the same seed give identical losses, at some speed cost."),
    "allow_config_change": ("bool", False, "Resume a workdir although flags that change its model or training "
                            "(--langevin_steps, --step_size, --sigma, --learning_rate, ...) differ from config.json; "
                            "without it such a resume is refused. sittings.json records each sitting's settings."),
}
# The range of each integer of TRAIN_FLAGS (limits.check_int): steps are int32 in the graph.
TRAIN_FLAG_RANGES = {
    "num_steps": (0, limits.NUM_STEPS_MAX),
    "log_every": (1, limits.INT32_MAX),
    "eval_every": (1, limits.INT32_MAX),
    "eval_examples": (1, limits.INT32_MAX),
    "checkpoint_every": (1, limits.INT32_MAX),
    "keep_checkpoints": (1, limits.INT32_MAX),
}


def check_train_flags(**values) -> None:
    """Each integer of TRAIN_FLAGS in `values` (by flag name) in its range, else a ConfigError naming it."""
    for name, value in values.items():
        limits.check_int(value, f"--{name}", *TRAIN_FLAG_RANGES[name])


# The flags of a --dataset=images:DIR folder (data/image_folder.py). They define the data, so they
# become part of the dataset's name (config.json records it; every command reading the run's data
# gets the same splits from the name alone): name -> (absl DEFINE function name, help).
IMAGE_FLAGS = {
    "image_size": ("integer", "images:DIR only: side S of the square images (S x S x C, C as stored: 1 for "
                   f"grayscale, 3 for RGB); one of {', '.join(map(str, _SUPPORTED_SIDES))}."),
    "image_crop": ("float", "images:DIR only: each image's centre square of this fraction of its shorter side is "
                   "resized to --image_size. 1 (the default) keeps the largest centred square (nothing but the "
                   "longer side's margins is lost); 0.786517 (140/178) is the paper's CelebA region, the centre "
                   "140 x 140 of a 218 x 178 aligned face (70 x 70 of the 109 x 89 faces of ../shared/data/celeba)."),
    "test_images": ("integer", "images:DIR only: the last N decodable files in sorted file-name order are the test "
                    "split, the others the train split."),
}


def define_run_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one flag per RunConfig field, the images:DIR settings (IMAGE_FLAGS), then train()'s
    bookkeeping flags (TRAIN_FLAGS)."""
    for field in dataclasses.fields(RunConfig):
        meta, default = field.metadata, field.default
        if "enum_values" in meta:
            flags.DEFINE_enum(field.name, default, list(meta["enum_values"]), meta["help"], flag_values=flag_values)
        elif field.name == "latent_dims":
            flags.DEFINE_list(field.name, [str(d) for d in default], meta["help"], flag_values=flag_values)
        else:
            kind = {"int": "integer", "float": "float", "str": "string", "data_spec.DataSpec": "string"}[
                field.type.split(" ")[0]]
            getattr(flags, f"DEFINE_{kind}")(field.name, default, meta["help"], flag_values=flag_values)
    for name, (kind, help_text) in IMAGE_FLAGS.items():
        getattr(flags, f"DEFINE_{kind}")(name, image_folder.DEFAULTS[name], help_text, flag_values=flag_values)
    for name, (kind, default, help_text) in TRAIN_FLAGS.items():
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)


def define_seed_flag(what: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The --seed flag of a command (evaluate, inpaint, disentangle): the seed of `what`, in the range
    of every --seed (`check_seed`)."""
    flags.DEFINE_integer("seed", 0, f"Seed of {what} (0..{SEED_MAX}).", flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> RunConfig:
    """The RunConfig of parsed flags (a ConfigError naming the flag if a value is unusable)."""
    try:
        latent_dims = tuple(int(d) for d in flag_values.latent_dims)
    except ValueError:
        raise ConfigError(
            f"--latent_dims={','.join(flag_values.latent_dims)} must be a comma-separated list of integers.") from None
    values = {f.name: getattr(flag_values, f.name) for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{**values, "latent_dims": latent_dims, "dataset": _dataset_from_flags(flag_values)})


def _dataset_from_flags(flag_values: flags.FlagValues) -> data_spec.DataSpec:
    """--dataset parsed, an images:DIR folder with the IMAGE_FLAGS given among its settings."""
    given = {name: flag_values[name].value for name in IMAGE_FLAGS if not flag_values[name].using_default_value}
    try:
        dataset = data_spec.parse(flag_values.dataset, given if str(flag_values.dataset).startswith(
            data_spec.IMAGES_PREFIX) else None)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if given and dataset.kind != "images":
        one = len(given) == 1
        raise ConfigError(f"{', '.join(f'--{name}' for name in given)} only appl{'ies' if one else 'y'} to "
                          f"--dataset=images:DIR, not to --dataset={flag_values.dataset}; remove "
                          f"{'it' if one else 'them'}.")
    return dataset


def train_kwargs_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> dict:
    return {name: getattr(flag_values, name) for name in TRAIN_FLAGS}


# Flags of hiabp_tf.train a flag file may hold that are neither (where the run goes, where the data is).
_PLACE_FLAGS = ("workdir", "data_dir")


def _includes_root(path: str) -> str:
    """The folder a flag file's `--flagfile=flags/...` includes are relative to: the parent of the
    `flags/` folder holding it (the repository root), else the current directory."""
    folder = os.path.dirname(os.path.abspath(path))
    while os.path.basename(folder) and os.path.basename(folder) != "flags":
        folder = os.path.dirname(folder)
    return os.path.dirname(folder) if os.path.basename(folder) == "flags" else os.getcwd()


def _read_flagfile(flag_values: flags.FlagValues, path, parse: bool):
    """absl's reading of `path` (includes followed), from the folder its includes are relative to; a
    list of paths is read in order, a later file's values overriding an earlier one's (as
    `train --flagfile=A --flagfile=B`)."""
    paths = [path] if isinstance(path, str) else list(path)
    for one in paths:
        if not os.path.isfile(one):
            raise ConfigError(f"flagfile {one} not found; the flag files are in flags/.")
    paths = [os.path.abspath(one) for one in paths]
    path = ", ".join(paths)
    args = [f"--flagfile={one}" for one in paths]
    try:
        with contextlib.chdir(_includes_root(paths[0])):
            if parse:
                return flag_values(["load_flagfile", *args])
            return flag_values.read_flags_from_files(args, force_gnu=False)
    except (flags.Error, OSError) as e:
        raise ConfigError(f"{path}: {e} (flag files hold the flags of hiabp_tf.train, one per line).") from None


def load_flagfile(path, **overrides) -> tuple[RunConfig, dict]:
    """(RunConfig, train.train keyword arguments incl. num_steps) of a flags/*.flags file (or a list
    of them, read in order: an experiment and its scale's overlays), read by
    absl (nested --flagfile includes are followed) into flags of their own, so the process's
    FLAGS are untouched; `overrides` (by flag name) replace the file's values. Unknown flags and
    bad values are a ConfigError naming the file."""
    flag_values = flags.FlagValues()
    define_run_flags(flag_values)
    for name in _PLACE_FLAGS:
        flags.DEFINE_string(name, None, "", flag_values=flag_values)
    _read_flagfile(flag_values, path, parse=True)
    for name, value in overrides.items():
        if name not in flag_values or name in _PLACE_FLAGS:
            raise ConfigError(f"--{name} is not a flag of hiabp_tf.train that can be overridden.")
        if name == "latent_dims" and not isinstance(value, str):
            value = [str(d) for d in value]
        if isinstance(value, str):  # as on the command line: parsed by the flag's own type
            flag_values[name].parse(value)
        else:
            setattr(flag_values, name, value)
    return config_from_flags(flag_values), train_kwargs_from_flags(flag_values)


def flagfile_values(path: str) -> dict:
    """{flag name: value string} of a flag file as absl expands it (includes followed, a later
    line overriding an earlier one), without defining or parsing any flag."""
    values = {}
    for arg in _read_flagfile(flags.FlagValues(), path, parse=False):
        name, _, value = arg[2:].partition("=")
        values[name] = value
    return values
