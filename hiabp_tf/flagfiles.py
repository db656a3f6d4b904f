"""Reads a flags/*.flags file of hiabp_tf.train into a RunConfig and train()'s bookkeeping arguments,
for modules that run experiments in-process (langevin_budget, memory) instead of shelling out.

    config, train_kwargs = flagfiles.load("flags/mnist5k_iabp.flags", langevin_steps=5)
    train.train(config, workdir, **train_kwargs)

A flagfile holds one `--name=value` per line (`#` starts a comment line), as absl reads it; only the
flags of hiabp_tf.train are accepted, so a typo is an error rather than a silently ignored line.
"""

from __future__ import annotations

import dataclasses
import os

from hiabp_tf import experiment

# RunConfig fields, by how their value is read.
_INT = {"num_layers", "width", "langevin_steps", "batch_size", "seed", "eval_langevin_steps"}
_FLOAT = {"step_size", "sigma", "learning_rate", "langevin_clip"}
_STR = {"method", "dataset", "mask", "precision"}
_LIST = {"latent_dims"}
# train.train() arguments (bookkeeping: they do not change the model).
_TRAIN_INT = {"num_steps", "log_every", "eval_every", "eval_examples", "checkpoint_every", "keep_checkpoints"}
_TRAIN_BOOL = {"deterministic"}
# Flags of hiabp_tf.train that are neither (where the run goes, where the data is).
_IGNORED = {"workdir", "data_dir"}


def parse(path: str) -> dict:
    """{flag name: value string} of a flagfile, in file order (a later line overrides an earlier one)."""
    if not os.path.isfile(path):
        raise experiment.ConfigError(f"flagfile {path} not found; the flag files are in flags/.")
    values = {}
    with open(path) as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("--"):
                raise experiment.ConfigError(f"{path}:{number}: {line!r} is not a --flag=value line.")
            name, sep, value = line[2:].partition("=")
            if not sep:  # absl's boolean forms --flag / --noflag
                if name in _TRAIN_BOOL:
                    name, value = name, "true"
                elif name.startswith("no") and name[2:] in _TRAIN_BOOL:
                    name, value = name[2:], "false"
            values[name] = value
    return values


def _convert(path: str, name: str, value: str):
    try:
        if name in _INT or name in _TRAIN_INT:
            return int(value)
        if name in _FLOAT:
            return float(value)
        if name in _LIST:
            return tuple(int(d) for d in value.split(","))
        if name in _TRAIN_BOOL:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
    except ValueError:
        raise experiment.ConfigError(f"{path}: --{name}={value} is not a valid value for --{name}.") from None
    return value


def load(path: str, **overrides) -> tuple[experiment.RunConfig, dict]:
    """(RunConfig, train.train keyword arguments incl. num_steps) of a flagfile; `overrides`
    (RunConfig fields or train arguments, by flag name) replace the file's values."""
    known = _INT | _FLOAT | _STR | _LIST | _TRAIN_INT | _TRAIN_BOOL | _IGNORED
    config_fields = {f.name for f in dataclasses.fields(experiment.RunConfig)}
    values = {}
    for name, value in parse(path).items():
        if name not in known:
            raise experiment.ConfigError(f"{path}: --{name} is not a flag of hiabp_tf.train.")
        if name not in _IGNORED:
            values[name] = _convert(path, name, value)
    for name, value in overrides.items():
        if name not in known - _IGNORED:
            raise experiment.ConfigError(f"--{name} is not a flag of hiabp_tf.train that can be overridden.")
        values[name] = value
    config = experiment.RunConfig(**{k: v for k, v in values.items() if k in config_fields})
    train_kwargs = {k: v for k, v in values.items() if k not in config_fields}
    train_kwargs.setdefault("num_steps", 300_000)  # hiabp_tf.train's default
    return config, train_kwargs
