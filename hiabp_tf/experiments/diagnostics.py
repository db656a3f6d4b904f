"""The diagnosis of the baselines: results/SCALE/diagnostics.{md,json}, and its block in docs/protocol.md.

Knows the plan (which runs), records (where a finished run is kept) and the measurement
(`hiabp_tf.evaluation.diagnostics`); knows nothing of the claims.

For the first seed of every Table 1 row, and for the diagnostic runs of `plan.DIAGNOSTIC_RUNS`, it
measures each latent layer (active units, KL, the encoder's spread, HiABP's chains) and the training
against the test MSE, at every checkpoint a run kept (the diagnostic runs keep one every 250
updates) or at its end (a record's shipped model). Measurements are cached in diagnostics.json by run
and step, so a rerun measures only what is new, and the committed JSON keeps the measurements of
checkpoints that runs/ no longer has. Beside them: float32 against bfloat16 (`plan.PRECISION_PAIRS`)
and the LVAE's bottleneck both ways.
"""

from __future__ import annotations

import datetime
import json
import os
import re

import numpy as np
import tensorflow as tf

from hiabp_tf import methods
from hiabp_tf.data import input_pipeline
from hiabp_tf.evaluation import diagnostics as measure
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import records
from hiabp_tf.runtime import workdir as workdir_lib

NUM_IMAGES = 500  # training and test images each model is diagnosed on (the first of each split)
JSON = "diagnostics.json"
PAGE = "diagnostics.md"
PROTOCOL_START, PROTOCOL_END = "<!-- diagnostics:start -->", "<!-- diagnostics:end -->"
TITLES = {"mnist5k": "mnist_5k", "mnist": "MNIST", "svhn": "SVHN", "celeba": "CelebA"}


def _images(dataset: str, split: str, n: int = NUM_IMAGES) -> np.ndarray:
    ds, _ = input_pipeline.make_eval_dataset(dataset, split, batch_size=n)
    return next(iter(ds))["image"].numpy()


def checkpoints(workdir: str) -> list[tuple[int, str]]:
    """(step, path) of every checkpoint a workdir keeps, oldest first ([] without any)."""
    state = tf.train.get_checkpoint_state(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    return sorted((int(path.rsplit("-", 1)[1]), path) for path in paths)


def measure_run(workdir: str, done: set[int], every_checkpoint: bool) -> dict[int, dict]:
    """{step: diagnostics} of `workdir`'s checkpoints not in `done` (all it keeps with
    `every_checkpoint`, else the newest), or of its shipped model if it has no checkpoint."""
    found = checkpoints(workdir)
    if not found:
        model, config, _, step = workdir_lib.restore(workdir)
        if step in done:
            return {}
        return {step: measure.diagnose(model, _images(config.dataset, "train"), _images(config.dataset, "test"))}
    wanted = [(step, path) for step, path in (found if every_checkpoint else found[-1:]) if step not in done]
    if not wanted:
        return {}
    config, image_shape, num_train = workdir_lib.load_run(workdir)
    model = methods.build_model(config, image_shape, num_train)
    checkpoint, _ = workdir_lib.make_checkpoint(model)
    train, test = _images(config.dataset, "train"), _images(config.dataset, "test")
    measured = {}
    for step, path in wanted:
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
        measured[step] = measure.diagnose(model, train, test)
    return measured


# Rows whose every seed is measured (where its model is at hand): the LVAE's seeds spread widely.
EVERY_SEED = ("lvae", "lvae_equal")


def table1_runs(scale: str, source_dir) -> dict[str, tuple[str, str, str]]:
    """{run name: (column title, Table 1 row, workdir)} of the first seed of every Table 1 row (every
    seed of the rows in EVERY_SEED)."""
    runs = {}
    for model in plan.table1_models(scale):
        for run in plan.seed_runs(model) if model.row in EVERY_SEED else [model]:
            runs[run.name] = (TITLES[run.column], run.row, source_dir(scale, run.name))
    return runs


def _available(workdir: str) -> bool:
    return bool(checkpoints(workdir)) or records.shipped_model(workdir) is not None or os.path.isfile(
        os.path.join(workdir, workdir_lib.WEIGHTS_FILE))


def collect(scale: str, out_dir: str, source_dir, say=print, finished=lambda name: True) -> dict:
    """Measures what diagnostics.json lacks of every available run that `finished` (saving after each),
    and returns
    {"runs": {name: {"workdir", "row", "column", "method", "latent_dims", "precision", "steps":
    {step: diagnostics}}}}."""
    path = os.path.join(out_dir, JSON)
    data = {"runs": {}}
    if os.path.isfile(path):
        with open(path) as f:
            data = json.load(f)
    wanted = {name: (column, row, workdir, True) for name, (column, row, workdir) in
              table1_runs(scale, source_dir).items()}
    wanted.update({run.name: (TITLES[run.column], None, source_dir(scale, run.name), True)
                   for run in plan.runs("diagnostics", scale)})
    for name, (column, row, workdir, every_checkpoint) in wanted.items():
        if not os.path.isdir(workdir) or not _available(workdir) or not finished(name):
            continue  # (a run not trained to its steps yet is measured once it is)
        entry = data["runs"].setdefault(name, {"steps": {}})
        config, _ = workdir_lib.load_config(workdir)
        entry.update(workdir=workdir, row=row, column=column, method=config.method,
                     latent_dims=list(config.latent_dims), precision=config.precision)
        new = measure_run(workdir, {int(s) for s in entry["steps"]}, every_checkpoint)
        if new:
            say(f"diagnostics: {name} at step{'s' * (len(new) > 1)} {', '.join(map(str, sorted(new)))}")
            entry["steps"].update({str(step): value for step, value in new.items()})
            entry["steps"] = dict(sorted(entry["steps"].items(), key=lambda item: int(item[0])))
            workdir_lib.write_json_atomic(path, data)
    return data


def _final(entry: dict) -> tuple[int, dict]:
    step = max(entry["steps"], key=int)
    return int(step), entry["steps"][step]


def _per_layer(values, fmt="{}") -> str:
    return " / ".join("—" if v is None else fmt.format(v) for v in values)


def active_units_note(entry: dict) -> str:
    """"active units per layer 7/0/0/0 of 12 each, KL per layer 15.4/0.0/0.0/0.0 nats" of a run's
    last measured step (the one-line note under Table 1's cells)."""
    step, diag = _final(entry)
    layers = diag["layers"]
    dims = {layer["dims"] for layer in layers}
    of = f"of {dims.pop()}{' each' * (len(layers) > 1)}" if len(dims) == 1 else "of " + "/".join(
        str(layer["dims"]) for layer in layers)
    per_layer = "per layer " if len(layers) > 1 else ""
    note = f"active units {per_layer}{'/'.join(str(layer['active_units']) for layer in layers)} {of}"
    if layers[0].get("kl") is not None:
        kls = "/".join(f"{layer['kl']:.1f}" for layer in layers)
        note += f", KL {per_layer}{kls} nats"
    return note + f" (update {step})"


def course_note(entry: dict) -> str:
    """A run's course over its measured checkpoints, from the numbers: where its headline test MSE
    was lowest and where it ends, the training MSE at both, and the active units and KL per layer
    at both ("rises ... while the training MSE rises as much" tells instability from over-fitting)."""
    steps = sorted(entry["steps"], key=int)
    key = next(iter(entry["steps"][steps[0]]["mse"]["test"]))
    key = "E+L" if "E+L" in entry["steps"][steps[0]]["mse"]["test"] else key
    test = {s: entry["steps"][s]["mse"]["test"][key] for s in steps}
    best, last = min(steps, key=lambda s: test[s]), steps[-1]

    def at(step):
        diag = entry["steps"][step]
        layers = diag["layers"]
        units = "/".join(str(layer.get("active_units", "—")) for layer in layers)
        kl = "/".join("—" if layer.get("kl") is None else f"{layer['kl']:.1f}" for layer in layers)
        return (f"test {test[step]:.4f}, training {diag['mse']['train'][key]:.4f}, active units {units}"
                + ("" if kl.strip("/—") == "" else f", KL {kl} nats"))
    if best == last:
        return f"[{key}] lowest at its last measured update {int(last):,} ({at(last)})"
    return (f"[{key}] lowest at update {int(best):,} ({at(best)}), then at update {int(last):,} {at(last)}: test "
            f"{test[last] / test[best] - 1:+.1%}, training "
            f"{entry['steps'][last]['mse']['train'][key] / entry['steps'][best]['mse']['train'][key] - 1:+.1%}")


def has_idle_layer(entry: dict) -> bool:
    """Whether a run's last measured step leaves a latent layer with fewer than half its units active."""
    _, diag = _final(entry)
    return any(layer.get("active_units") is not None and layer["active_units"] < layer["dims"] / 2
               for layer in diag["layers"])


def _score(result: dict, row: str | None, method: str) -> tuple[str, float | None]:
    key = {"vae": "mse_E", "vlae": "mse_E", "lvae": "mse_E", "abp": "mse_L", "abp_persistent": "mse_L"}.get(
        method, "mse_EL")
    if row == "iabp" or (row is None and method == "hiabp" and result.get("num_layers") == 1):
        key = "mse_EL"
    return key, result.get(key)


def precision_rows(scale: str, source_dir, load_eval, seed_std) -> list[dict]:
    """float32 against bfloat16 for each of `plan.PRECISION_PAIRS` whose two runs are evaluated:
    {row, score, bfloat16, float32, change (relative), seed_std (Table 1's, bfloat16), beyond}."""
    rows = []
    for float32_name, bf16_name in plan.PRECISION_PAIRS:
        try:
            low, full = load_eval(source_dir(scale, bf16_name)), load_eval(source_dir(scale, float32_name))
        except Exception:  # pylint: disable=broad-except  (a run not trained yet: no row)
            continue
        for key in ("mse_E", "mse_EL") if full.get("mse_EL") is not None and full["num_layers"] == 1 else (
                _score(full, None, full["method"])[0],):
            std = seed_std(bf16_name, key)
            change = full[key] - low[key]
            rows.append(dict(run=bf16_name, float32_run=float32_name, score=key, bfloat16=low[key],
                             float32=full[key], change=change / low[key], seed_std=std,
                             beyond=None if std is None else abs(change) > std))
    return rows


def _fmt(value, digits=4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def layer_table(data: dict, names: list[str]) -> list[str]:
    """Markdown rows: one per (run, layer) at the run's last measured step."""
    lines = ["| run | layer (dims) | active units | KL (nats) | rms mean | mean sigma | chain move | chain spread "
             "| [E+L] MSE, z^l at the mean |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        entry = data["runs"].get(name)
        if not entry:
            continue
        step, diag = _final(entry)
        for layer in diag["layers"]:
            lines.append(f"| `{name}` ({step}) | {layer['layer']} ({layer['dims']}) | {layer.get('active_units', '—')} "
                         f"| {_fmt(layer.get('kl'), 2)} | {_fmt(layer.get('rms_mean'), 3)} | "
                         f"{_fmt(layer.get('mean_sigma'), 3)} | {_fmt(layer.get('chain_move'), 3)} | "
                         f"{_fmt(layer.get('chain_spread'), 3)} | {_fmt(layer.get('mse_EL_layer_at_mean'))} |")
    return lines


def fit_table(data: dict, names: list[str]) -> list[str]:
    """Markdown rows: training against test MSE of each run's reconstructions at its last step."""
    lines = ["| run | update | reconstruction | training MSE | test MSE | test / training |",
             "|---|---:|---|---:|---:|---:|"]
    for name in names:
        entry = data["runs"].get(name)
        if not entry:
            continue
        step, diag = _final(entry)
        for key, test in diag["mse"]["test"].items():
            train = diag["mse"]["train"][key]
            lines.append(f"| `{name}` | {step} | [{key}] | {train:.4f} | {test:.4f} | {test / train:.2f} |")
    return lines


def curve_table(entry: dict) -> list[str]:
    """Markdown rows: a run's diagnostics at every measured step (its course over training)."""
    keys = list(next(iter(entry["steps"].values()))["mse"]["test"])
    lines = ["| update | " + " | ".join(f"training [{k}] | test [{k}]" for k in keys) +
             " | active units per layer | KL per layer (nats) |", "|---:|" + "---:|---:|" * len(keys) + "---|---|"]
    for step, diag in entry["steps"].items():
        layers = diag["layers"]
        lines.append(f"| {step} | " + " | ".join(f"{diag['mse']['train'][k]:.4f} | {diag['mse']['test'][k]:.4f}"
                                                 for k in keys) +
                     f" | {_per_layer([layer.get('active_units') for layer in layers])} | "
                     f"{_per_layer([layer.get('kl') for layer in layers], '{:.1f}')} |")
    return lines


def summary_lines(data: dict, precision: list[dict], bottleneck: list[dict]) -> list[str]:
    """The diagnosis in sentences made from the numbers (the block docs/protocol.md shows)."""
    lines = []
    if precision:
        beyond = [r for r in precision if r["beyond"]]
        cells = "; ".join(f"{r['run']} {r['score']} {r['bfloat16']:.5f} → {r['float32']:.5f} ({r['change']:+.1%}, "
                          f"seed std {_fmt(r['seed_std'], 5)})" for r in precision)
        lines.append(f"* **Precision** (one float32 seed against Table 1's bfloat16 seed 0, MNIST): {cells}. "
                     + (f"{len(beyond)} of {len(precision)} scores move by more than their row's seed standard "
                        "deviation." if any(r["seed_std"] is not None for r in precision) else ""))
    if bottleneck:
        cells = "; ".join(f"{r['label']} {r['mse']:.4f} ({r['seeds']} seed{'s' * (r['seeds'] > 1)}"
                          + (f"; {r['units']}" if r.get("units") else "") + ")" for r in bottleneck)
        lines.append(f"* **The LVAE's bottleneck** (MNIST test MSE [E]): {cells}.")
    for name, entry in data["runs"].items():  # HiABP whose initializer alone is far from its [E+L]
        if entry.get("method") == "hiabp" and entry.get("row") is not None and entry["steps"]:
            _, diag = _final(entry)
            test = diag["mse"]["test"]
            if test.get("E") is not None and test["E"] > 2 * test["E+L"]:
                def per_layer(key, digits=2):
                    return "/".join(f"{layer[key]:.{digits}f}" for layer in diag["layers"])
                units = "/".join(str(layer["active_units"]) for layer in diag["layers"])
                lines.append(
                    f"* {entry['column']} `{name}`: [E] {test['E']:.4f} against [E+L] {test['E+L']:.4f}. Per layer, "
                    f"active units {units}, the encoder's rms mean {per_layer('rms_mean')} and mean sigma "
                    f"{per_layer('mean_sigma')} (the prior: 0 and 1); two chains from independent starts end "
                    f"{per_layer('chain_spread')} apart per dimension (1.41 if they keep their random starts); "
                    f"[E+L] with z^l at the encoder's mean: {per_layer('mse_EL_layer_at_mean', 4)}.")
    for name, entry in data["runs"].items():
        if len(entry["steps"]) > 2:
            lines.append(f"* {entry['column']} `{name}` over training: {course_note(entry)}.")
    for name, entry in data["runs"].items():
        if entry.get("row") is None or not entry["steps"]:
            continue
        _, diag = _final(entry)
        empty = [str(layer["layer"]) for layer in diag["layers"] if layer.get("active_units") == 0]
        if empty:
            lines.append(f"* {entry['column']} `{name}`: {active_units_note(entry)}; "
                         f"layer{'s' * (len(empty) > 1)} {', '.join(empty)} carr{'y' if len(empty) > 1 else 'ies'} "
                         "nothing (no active unit).")
    return lines


def bottleneck_rows(scale: str, source_dir, load_eval, table1_summary, data: dict) -> list[dict]:
    """The LVAE's bottleneck: x is decoded from z^1 alone. The VAE at 48 dimensions and at the 12 of
    the equal-split LVAE's z^1, the LVAE split equally (12/12/12/12) and with its widest layer at the
    bottom (24/12/8/4, Table 1's LVAE): test MSE [E] over the seeds there are, and the units used."""
    column = plan.main_column(scale)
    rows = []
    for label, name in (("VAE, 48 dimensions", plan.Run(scale, column, "vae").name),
                        ("VAE, 12 dimensions", plan.Run(scale, column, "vae", latent_size=12).name),
                        ("LVAE 12/12/12/12", plan.Run(scale, column, "lvae_equal").name),
                        ("LVAE 24/12/8/4", plan.Run(scale, column, "lvae").name)):
        summary = table1_summary(name)
        if summary is None:
            try:
                summary = dict(mean=load_eval(source_dir(scale, name))["mse_E"], std=None, seeds=[None])
            except Exception:  # pylint: disable=broad-except  (not trained yet)
                continue
        entry = data["runs"].get(name)
        rows.append(dict(label=label, run=name, mse=summary["mean"], std=summary["std"], seeds=len(summary["seeds"]),
                         units=active_units_note(entry) if entry and entry["steps"] else None))
    return rows


def write(out_dir: str, data: dict, precision: list[dict], bottleneck: list[dict], command: str,
          protocol: str | None = None) -> str:
    """results/SCALE/diagnostics.md (and the block of `protocol`, docs/protocol.md, if given)."""
    table1 = [name for name, entry in data["runs"].items() if entry.get("row") is not None]
    extra = [name for name, entry in data["runs"].items() if entry.get("row") is None]
    lines = ["# Diagnosing the baselines: latent layers, fit and precision", "",
             "What each trained model does with its latent layers, whether it fits its training images better "
             "than its test images, and what bfloat16 changes. These numbers explain Table 1's scores; they do "
             "not rank the methods. Definitions: `hiabp_tf/evaluation/diagnostics.py` (active units after Burda "
             f"et al. 2016: units whose encoder mean varies over the images with variance > "
             f"{measure.ACTIVE_THRESHOLD}). Every model is measured on the first {NUM_IMAGES} training and "
             f"{NUM_IMAGES} test images of its data; the chains of HiABP use its training T.", "", "## Summary", ""]
    lines += summary_lines(data, precision, bottleneck) or ["Nothing measured yet."]
    if precision:
        lines += ["", "## float32 against bfloat16", "",
                  "One seed of each row trained in float32 (`plan.DIAGNOSTIC_RUNS`) against Table 1's seed 0 "
                  "(bfloat16 networks, the cpu scale's choice for every method), on the whole test split.", "",
                  "| run | score | bfloat16 | float32 | change | Table 1 seed std | beyond the seed spread |",
                  "|---|---|---:|---:|---:|---:|---|"]
        lines += [f"| `{r['run']}` | {r['score']} | {r['bfloat16']:.5f} | {r['float32']:.5f} | {r['change']:+.1%} | "
                  f"{_fmt(r['seed_std'], 5)} | {'—' if r['beyond'] is None else ('yes' if r['beyond'] else 'no')} |"
                  for r in precision]
    if bottleneck:
        lines += ["", "## The LVAE's bottleneck", "",
                  "The LVAE decodes x from z^1 alone: split equally, z^1 has a quarter of the 48 dimensions. Test "
                  "MSE [E] on the whole test split, mean ± std over the seeds there are; units and KL of the first "
                  "seed.", "", "| model | test MSE [E] | seeds | latent units of the first seed |",
                  "|---|---:|---:|---|"]
        lines += [f"| {r['label']} (`{r['run']}`) | {r['mse']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] else "")
                  + f" | {r['seeds']} | {r['units'] or '—'} |" for r in bottleneck]
    lines += ["", "## Per layer, at the end of training (Table 1's first seeds; every seed of the LVAE rows)", ""]
    lines += layer_table(data, table1)
    lines += ["", "## Training against test MSE", ""] + fit_table(data, table1 + extra)
    for name in [name for name, entry in data["runs"].items() if len(entry["steps"]) > 2]:
        lines += ["", f"## Over training: `{name}`", ""] + curve_table(
            data["runs"][name])
    lines += ["", "## How these numbers were made", "", f"Command: `{command}`", "",
              f"Written by `hiabp_tf.experiments.diagnostics` on {datetime.date.today().isoformat()}; the "
              f"measurements are kept in `{JSON}` by run and update."]
    path = os.path.join(out_dir, PAGE)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    workdir_lib.write_json_atomic(os.path.join(out_dir, JSON), {**data, "precision": precision,
                                                                "bottleneck": bottleneck})
    if protocol:
        update_block(protocol, summary_lines(data, precision, bottleneck), os.path.relpath(path, os.path.dirname(
            protocol)))
    return path


def update_block(path: str, lines: list[str], page: str) -> None:
    """Replaces the text between PROTOCOL_START and PROTOCOL_END of `path` with `lines`."""
    with open(path) as f:
        text = f.read()
    if PROTOCOL_START not in text or PROTOCOL_END not in text:
        raise ValueError(f"{path} has no {PROTOCOL_START} ... {PROTOCOL_END} block to write the diagnosis into.")
    block = "\n".join([PROTOCOL_START, f"<!-- written by `./run.sh diagnostics cpu` from {page}; do not edit -->",
                       *lines, f"\nThe tables behind these lines: [{os.path.basename(page)}]({page}).",
                       PROTOCOL_END])
    text = re.sub(re.escape(PROTOCOL_START) + ".*?" + re.escape(PROTOCOL_END), lambda _: block, text, flags=re.S)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
