"""Figure 7 in numbers: what resampling one latent layer of HiABP changes in the image, counted.

Knows the trained models it is given and the image factors; knows nothing of the plan, the runs or
the records.

For each of `num_images` test images x (spread evenly over the test split), the latents
z = [z^1, ..., z^L] are inferred as the [E+L] reconstruction infers them (the encoder's sample, then the
run's T Langevin steps, seeded) and x_0 = g(z). For each layer l and each of `num_resamples`
resamples, z^l is redrawn from N(0, I) with the other layers fixed (`TrainedModel.resample_layer`, as
the figure does), x' = g(z'), and the change of every factor between x_0 and x' is recorded. An
image's value is the mean over its resamples; a layer's is the mean over images, with a 95%
confidence interval (t, across images).

Factors (`hiabp_tf.evaluation.image_factors`; ink is a pixel above 0.5):

    digits  identity        the class the MNIST classifier of the FID predicts changes (a rate, 0..1)
            digit width     |change| of the ink's bounding-box width (pixels); also its second moment
            stroke width    |change| of the stroke width (pixels; distance transform on the ridge)
            pixels          mean |x' - x_0| over pixels: how much the image changes at all
    faces   brightness, mean colour (distance between mean RGBs), left-right asymmetry, pixels

The paper's claim (Figure 7, HiABP L = 3 on MNIST): the bottom layer encodes stroke width, the middle
one digit width, the top one digit identity. It is decided factor by factor (`decide`): a factor
holds if its change under its own layer's resampling is larger than under each other layer, by a
paired t-test across the test images (`scipy.stats.ttest_rel`, two-sided, p < ALPHA; the same images
and base codes for every layer), in every training seed measured. It does not hold if another layer
changes it significantly more in a seed, and is inconclusive otherwise (also when the seeds disagree).
The claim holds if all three factors hold, does not hold if one does not, and is inconclusive
otherwise. The faces have no claim of the paper: their table describes.
"""

from __future__ import annotations

import datetime
import json
import os
import platform

import numpy as np
from scipy import stats

from hiabp_tf.evaluation import image_factors
from hiabp_tf.evaluation import metrics
from hiabp_tf.runtime import workdir as workdir_lib

ALPHA = 0.05
NUM_IMAGES = 500
NUM_RESAMPLES = 8
SIZES = {"quick": (200, 4)}  # (images, resamples) where a scale takes other than these, to stay cheap
BATCH = 500
SEED = 0
# {factor: (label, unit)} in table order; "width_moment" and "pixels" are shown but claim nothing.
DIGIT_FACTORS = {
    "identity": ("digit identity: class changes", "rate"),
    "width": ("digit width, bounding box", "px"),
    "width_moment": ("digit width, second moment", "px"),
    "stroke": ("stroke width", "px"),
    "pixels": ("pixels: mean abs change", ""),
}
FACE_FACTORS = {  # pixels in [0, 1]
    "brightness": ("brightness (mean luminance)", ""),
    "colour": ("mean colour (RGB distance)", ""),
    "asymmetry": ("left-right asymmetry", ""),
    "pixels": ("pixels: mean abs change", ""),
}
# The paper's Figure 7: which layer (1 = bottom) encodes which factor, HiABP L = 3 on MNIST.
PAPER_LAYERS = {"stroke": 1, "width": 2, "identity": 3}
CLAIM = ("Figure 7: HiABP L = 3 on MNIST disentangles: resampling the bottom layer changes stroke width, "
         "the middle layer digit width, the top layer digit identity")
# Where the change of a factor is also counted among the resamples that keep the digit's class.
SAME_CLASS_FACTORS = ("width", "width_moment", "stroke", "pixels")


# ----------------------------------------------------------------------------------- measuring

def _digit_values(images: np.ndarray, classify) -> dict:
    """{factor: per-image value} of digits (identity: the predicted class)."""
    values = {"width": image_factors.digit_width_bbox(images),
              "width_moment": image_factors.digit_width_moment(images),
              "stroke": image_factors.stroke_width(images)}
    if classify is not None:
        values["identity"] = np.asarray(classify(images))
    return values


def _face_values(images: np.ndarray, classify=None) -> dict:
    del classify
    return {"brightness": image_factors.brightness(images), "colour": image_factors.mean_colour(images),
            "asymmetry": image_factors.asymmetry(images)}


def _changes(before: dict, after: dict, x_before: np.ndarray, x_after: np.ndarray) -> dict:
    """{factor: per-pair change} between two aligned batches' values."""
    out = {"pixels": np.abs(x_after.astype(np.float64) - x_before).mean(axis=tuple(range(1, x_before.ndim)))}
    for name, value in before.items():
        if name == "identity":
            out[name] = (after[name] != value).astype(np.float64)
        elif name == "colour":
            out[name] = image_factors.colour_change(value, after[name])
        else:
            out[name] = np.abs(after[name] - value)
    return out


def _batched(fn, array, batch: int = BATCH):
    return np.concatenate([np.asarray(fn(array[i:i + batch])) for i in range(0, len(array), batch)])


def measure(model, images: np.ndarray, num_resamples: int = NUM_RESAMPLES, seed: int = SEED,
            classify=None, kind: str = "digits") -> dict:
    """Per-image changes of every factor when each layer is resampled.

    `model`: a `hiabp_tf.load`ed HiABP (encode, decode, resample_layer); `images` (N, H, W, C) in
    [0, 1]; `classify`: images -> predicted classes (digits' identity; None: no identity).
    Returns {"layers": {l: {factor: (N,) mean change over the resamples}}, "same_class": {l: {factor:
    (N,) mean over the resamples that keep the class, NaN where none does}} (digits with a classifier),
    "agreement": the share of images whose reconstruction the classifier puts in the image's class}."""
    values_of = _digit_values if kind == "digits" else _face_values
    images = np.asarray(images, np.float32)
    n = len(images)
    z = [np.concatenate(parts) for parts in zip(*[model.encode(images[i:i + BATCH], seed=[seed, 1 + i])
                                                  for i in range(0, n, BATCH)])]
    base = _batched(model.decode, _stack(z))
    base_values = values_of(base, classify)
    out = {"layers": {}, "same_class": {}}
    if classify is not None:
        out["agreement"] = float(np.mean(_batched(classify, images) == base_values["identity"]))
    repeated = [np.repeat(z_l, num_resamples, axis=0) for z_l in z]  # image i's resamples are rows i*K .. i*K+K-1
    base_repeated = {name: np.repeat(value, num_resamples, axis=0) for name, value in base_values.items()}
    x_base = np.repeat(base, num_resamples, axis=0)
    for layer in range(1, len(z) + 1):
        resampled = model.resample_layer(repeated, layer, seed=[seed, 100 + layer])
        x = _batched(model.decode, _stack(resampled))
        changes = _changes(base_repeated, values_of(x, classify), x_base, x)
        out["layers"][layer] = {name: _per_image(change, num_resamples) for name, change in changes.items()}
        if classify is not None:
            kept = changes["identity"] == 0
            out["same_class"][layer] = {name: _per_image(np.where(kept, changes[name], np.nan), num_resamples)
                                        for name in SAME_CLASS_FACTORS}
    return out


def _stack(z):
    """Latents as one (N, sum d) array, so `_batched` can cut them; `decode` gets them split back."""
    return _Latents(z)


class _Latents:
    """A list of latent layers sliced together along the batch (what `_batched` cuts)."""

    def __init__(self, z):
        self.z = z

    def __len__(self):
        return len(self.z[0])

    def __getitem__(self, index):
        return [z_l[index] for z_l in self.z]


def _per_image(change: np.ndarray, num_resamples: int) -> np.ndarray:
    """(N * K,) changes, image-major, to the (N,) mean over each image's resamples (NaN-aware)."""
    grouped = change.reshape(-1, num_resamples)
    with np.errstate(invalid="ignore"), _quiet():
        return np.nanmean(grouped, axis=1)


class _quiet:
    """Silences numpy's "mean of empty slice" (an image none of whose resamples count is NaN)."""

    def __enter__(self):
        import warnings
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


# ------------------------------------------------------------------------------------ statistics

def summary(values) -> dict:
    """{"mean", "ci" [low, high] (95%, t across images), "n"} of per-image values (NaNs left out)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return {"mean": None, "ci": [None, None], "n": 0}
    mean = float(values.mean())
    if n < 2:
        return {"mean": mean, "ci": [None, None], "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": n}


def paired(a, b) -> dict:
    """Is a larger than b, image by image? {"difference" (mean of a - b), "ci" (95%), "p" (two-sided
    paired t-test, scipy.stats.ttest_rel), "n", "direction": "larger" / "smaller" / "not significant" at ALPHA}."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 2:
        return {"difference": float(np.mean(a - b)) if n else None, "ci": [None, None], "p": None, "n": n,
                "direction": "not significant"}
    difference = a - b
    if np.all(difference == difference[0]):  # no spread: the sign alone decides
        p = 0.0 if difference[0] != 0 else 1.0
        ci = [float(difference[0])] * 2
    else:
        result = stats.ttest_rel(a, b)
        p = float(result.pvalue)
        low, high = result.confidence_interval(0.95)
        ci = [float(low), float(high)]
    mean = float(difference.mean())
    direction = "not significant" if p >= ALPHA or mean == 0 else ("larger" if mean > 0 else "smaller")
    return {"difference": mean, "ci": ci, "p": p, "n": n, "direction": direction}


def _pooled(per_seed: list[dict], layer: int, factor: str, key: str = "layers") -> np.ndarray:
    return np.concatenate([seed[key][layer][factor] for seed in per_seed])


def decide(per_seed: list[dict], claims: dict = PAPER_LAYERS) -> list[dict]:
    """The verdict on each factor's layer (`claims`: {factor: layer}) from `measure`s of one or more
    training seeds (see the module docstring). Each verdict has the factor, its layer, the layer
    that changes it most (pooled means), every comparison against another layer (pooled over the
    seeds' images: difference, 95% CI, p; and each seed's direction) and the verdict."""
    layers = sorted(per_seed[0]["layers"])
    verdicts = []
    for factor, own in claims.items():
        means = {layer: summary(_pooled(per_seed, layer, factor))["mean"] for layer in layers}
        largest = max(layers, key=lambda layer: -np.inf if means[layer] is None else means[layer])
        comparisons, seed_verdicts = [], []
        for other in layers:
            if other == own:
                continue
            comparison = paired(_pooled(per_seed, own, factor), _pooled(per_seed, other, factor))
            comparison["against"] = other
            comparison["per_seed"] = [paired(seed["layers"][own][factor], seed["layers"][other][factor])["direction"]
                                      for seed in per_seed]
            comparisons.append(comparison)
        for s in range(len(per_seed)):
            directions = [c["per_seed"][s] for c in comparisons]
            seed_verdicts.append("holds" if all(d == "larger" for d in directions) else
                                 "does not hold" if "smaller" in directions else "inconclusive")
        if len(set(seed_verdicts)) == 1:
            verdict, note = seed_verdicts[0], ""
        else:
            verdict, note = "inconclusive", f"the seeds disagree: {', '.join(seed_verdicts)}"
        verdicts.append(dict(factor=factor, layer=own, largest_layer=largest, means=means, verdict=verdict,
                             per_seed=seed_verdicts, comparisons=comparisons, note=note))
    return verdicts


def overall(verdicts: list[dict]) -> str:
    """The claim over its factors: holds if every one holds, does not hold if one does not, else
    inconclusive."""
    outcomes = [v["verdict"] for v in verdicts]
    if all(o == "holds" for o in outcomes):
        return "holds"
    return "does not hold" if "does not hold" in outcomes else "inconclusive"


def describe(per_seed: list[dict], factors) -> list[dict]:
    """For every factor (no claim): the layer that changes it most, and its paired comparison with
    the layer that changes it second most."""
    layers = sorted(per_seed[0]["layers"])
    out = []
    for factor in factors:
        means = {layer: summary(_pooled(per_seed, layer, factor))["mean"] for layer in layers}
        ranked = sorted(layers, key=lambda layer: -means[layer])
        entry = dict(factor=factor, largest_layer=ranked[0], means=means)
        if len(ranked) > 1:
            entry["against_second"] = dict(paired(_pooled(per_seed, ranked[0], factor),
                                                  _pooled(per_seed, ranked[1], factor)), against=ranked[1])
        out.append(entry)
    return out


# -------------------------------------------------------------------------------------- writing

def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_p(p) -> str:
    return "p = —" if p is None else (f"p = {p:.2g}" if p >= 1e-300 else "p < 1e-300")


def _cell(s: dict, bold: bool = False) -> str:
    if s["mean"] is None:
        return "—"
    text = f"{s['mean']:.3f} [{_fmt(s['ci'][0])}, {_fmt(s['ci'][1])}]"
    return f"**{text}**" if bold else text


def _table(per_seed: list[dict], factors: dict, key: str = "layers", names=None) -> tuple[list[str], dict]:
    """Markdown rows (layer by layer, the largest change of each factor in bold) and the numbers."""
    layers = sorted(per_seed[0][key])
    names = list(names or factors)
    numbers = {layer: {name: summary(_pooled(per_seed, layer, name, key)) for name in names} for layer in layers}
    largest = {name: max(layers, key=lambda layer: -np.inf if numbers[layer][name]["mean"] is None
                         else numbers[layer][name]["mean"]) for name in names}
    top = len(layers)
    headings = [factors[name][0] + (f" ({factors[name][1]})" if factors[name][1] else "") for name in names]
    lines = ["| layer resampled | " + " | ".join(headings) + " |",
             "|---|" + "---:|" * len(names)]
    for layer in layers:
        where = " (bottom)" if layer == 1 else " (top)" if layer == top else ""
        lines.append(f"| {layer}{where} | " + " | ".join(_cell(numbers[layer][name], largest[name] == layer)
                                                         for name in names) + " |")
    return lines, {str(layer): row for layer, row in numbers.items()}


def _comparison_text(c: dict, unit: str) -> str:
    return (f"layer {c['against']}: {c['difference']:+.3f}{' ' + unit if unit else ''} [{_fmt(c['ci'][0])}, "
            f"{_fmt(c['ci'][1])}], "
            f"{_fmt_p(c['p'])}")


def _models_line(models: list[dict]) -> str:
    return "; ".join(f"training seed {m['seed']}: `{m['workdir']}` (step {m['step']})" for m in models)


def load_models(candidates) -> tuple[list[tuple[dict, object]], list[str]]:
    """The models of `candidates` ([(label, workdir)]) that can be loaded, each with {"label",
    "workdir", "seed", "step"}, and a line for each that cannot (a seed not trained, or whose
    checkpoints and shipped weights are gone)."""
    import hiabp_tf  # pylint: disable=import-outside-toplevel
    from hiabp_tf.checks import errors  # pylint: disable=import-outside-toplevel
    loaded, missing = [], []
    for label, workdir in candidates:
        try:
            model = hiabp_tf.load(workdir)
        except (errors.WorkdirError, OSError, ValueError) as e:
            reason = str(e).split(": retrain", 1)[0].split("\n", 1)[0].replace(f"--workdir={workdir} ", "")
            missing.append(f"{label} (`{workdir}`): not loadable ({reason})")
            continue
        loaded.append(({"label": label, "workdir": workdir, "seed": int(model.config.seed), "step": model.step},
                       model))
    return loaded, missing


def write_figure7(out_dir: str, digits, classifier, command: str | None, faces=None,
                  num_images: int = NUM_IMAGES, num_resamples: int = NUM_RESAMPLES, picture: str | None = None,
                  planned_seeds: int | None = None) -> str:
    """results/<scale>/figure7.md and figure7.json: the per-layer table and the verdict on the paper's
    claim from every loadable model of `digits` ([(label, workdir)], one per training seed of HiABP
    L = 3 on MNIST), and the same measurement described on `faces` ([(label, workdir)], may be
    empty). `classifier`: a `fid.ClassifierFeatures` (its model's argmax is the class). Returns the
    Markdown's path."""
    loaded, missing = load_models(digits)
    if not loaded:
        from hiabp_tf.checks import errors  # pylint: disable=import-outside-toplevel
        raise errors.WorkdirError("Figure 7: no model of " + ", ".join(w for _, w in digits) + " can be loaded: "
                                  + "; ".join(missing))

    def classify(images):
        return _batched(lambda b: np.argmax(classifier.model(b, training=False), axis=-1), np.asarray(images))

    per_seed, models = [], []
    for info, model in loaded:
        images = metrics.spread_images(model.config.dataset, num_images)
        per_seed.append(measure(model, images, num_resamples, SEED, classify, "digits"))
        models.append(dict(info, dataset=str(model.config.dataset), num_layers=model.num_layers))
    verdicts = decide(per_seed)
    verdict = overall(verdicts)
    table, numbers = _table(per_seed, DIGIT_FACTORS)
    same_table, same_numbers = _table(per_seed, DIGIT_FACTORS, "same_class", SAME_CLASS_FACTORS)
    seeds = len(models)
    lines = ["# Figure 7: what resampling one latent layer of HiABP changes", ""]
    if picture:
        lines += [f"![figure 7]({picture})", "",
                  "The picture (samples, one row per fixed draw of the other layers) shows what a layer varies; "
                  "the numbers below count it on test digits.", ""]
    lines += [f"HiABP L = {models[0]['num_layers']} on {models[0]['dataset']}, {len(loaded)} training "
              f"seed{'s' * (seeds > 1)}{f' of the {planned_seeds} planned' if planned_seeds else ''}: "
              f"{num_images} test digits (spread evenly over the test split), each inferred as [E+L] does "
              f"(encoder, then T Langevin steps), then each layer resampled from N(0, I) {num_resamples} times "
              "with the others fixed. A cell: the mean change per resample between the digit's reconstruction "
              "and the resampled image, mean over digits [95% CI across digits]; the largest of each column in "
              "bold.", ""] + table
    lines += ["", "Among the resamples that keep the digit's class (the change of shape without a change of "
              "identity; digits none of whose resamples keep the class are left out):", ""] + same_table
    lines += ["", f"## The paper's claim: **{verdict}**", "", CLAIM + ".", ""]
    for v in verdicts:
        unit = DIGIT_FACTORS[v["factor"]][1]
        lines.append(f"- **{DIGIT_FACTORS[v['factor']][0]}**, claimed for layer {v['layer']}: **{v['verdict']}**; "
                     f"changes most when layer {v['largest_layer']} is resampled. Layer {v['layer']} against "
                     + "; against ".join(_comparison_text(c, unit) for c in v["comparisons"])
                     + (f" ({v['note']})" if v["note"] else "") + ".")
    lines += ["", f"Decided factor by factor: the change under the claimed layer against each other layer, "
              "paired over the same digits and base codes (`scipy.stats.ttest_rel`, two-sided, p < "
              f"{ALPHA}; the difference is the claimed layer's minus the other's, with its 95% CI). A factor "
              "holds if its layer changes it significantly more than each other layer does in every seed; it "
              "does not hold if another layer changes it significantly more in a seed; otherwise it is inconclusive. "
              "The claim holds if all three factors hold. With several seeds the differences and p-values shown "
              "pool their digits; each seed is also tested on its own."]
    if seeds < (planned_seeds or seeds) or missing:
        lines += ["", f"This page rests on {seeds} training seed{'s' * (seeds > 1)}"
                  + (f"; not measured: {'; '.join(missing)}" if missing else "") + "."]
    face_json = None
    if faces:
        face_json, face_lines = _faces(faces, num_images, num_resamples)
        lines += face_lines
    agreement = [s["agreement"] for s in per_seed]
    lines += ["", "## How these numbers were made", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"- Models: {_models_line(models)}.",
              f"- Identity: the class predicted by the classifier of the FID ({classifier.description}); it puts "
              f"the reconstruction of a test digit in the class it gives the digit itself for "
              + ", ".join(f"{a:.1%}" for a in agreement) + " of the digits (by seed).",
              f"- Ink: pixels above {image_factors.INK_THRESHOLD}. Digit width: the ink's bounding box, and "
              "sqrt(12) x the standard deviation of its x (intensity-weighted). Stroke width: twice the distance "
              f"to the background along the ridge of the ink upsampled {image_factors.UPSAMPLE} x "
              "(`scipy.ndimage.distance_transform_edt`). A change where an image has no ink is left out.",
              f"- Seeds of the measurement: inference seed [{SEED}, 1 + batch start], resampling seed "
              f"[{SEED}, 100 + layer] (`TrainedModel.encode`, `resample_layer`).",
              "", f"Produced by `hiabp_tf.experiments.layer_factors` on {datetime.date.today().isoformat()} "
              f"(Python {platform.python_version()}, {platform.machine()})."]
    data = dict(command=command, claim=CLAIM, verdict=verdict, num_images=num_images, num_resamples=num_resamples,
                models=models, not_measured=missing, planned_seeds=planned_seeds,
                classifier=classifier.description, agreement=agreement, test="paired t-test across test digits "
                "(scipy.stats.ttest_rel, two-sided), p < 0.05, in every seed; differences pooled over seeds",
                layers=numbers, same_class=same_numbers, verdicts=_jsonable(verdicts), faces=face_json)
    workdir_lib.write_json_atomic(os.path.join(out_dir, "figure7.json"), data)
    path = os.path.join(out_dir, "figure7.md")
    os.makedirs(out_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def _faces(faces, num_images: int, num_resamples: int) -> tuple[dict | None, list[str]]:
    """The faces' section (description, no claim of the paper) and its numbers."""
    loaded, missing = load_models(faces)
    if not loaded:
        return None, ["", "## Faces", "", "Not measured: " + "; ".join(missing) + "."]
    per_seed, models = [], []
    for info, model in loaded:
        images = metrics.spread_images(model.config.dataset, num_images)
        per_seed.append(measure(model, images, num_resamples, SEED, None, "faces"))
        models.append(dict(info, dataset=str(model.config.dataset), num_layers=model.num_layers))
    table, numbers = _table(per_seed, FACE_FACTORS)
    described = describe(per_seed, FACE_FACTORS)
    lines = ["", f"## Faces (HiABP L = {models[0]['num_layers']}; a description, the paper claims nothing here)", "",
             f"The same measurement on {num_images} test faces, {num_resamples} resamples per layer "
             f"({_models_line(models)}):", ""] + table + [""]
    for d in described:
        second = d.get("against_second")
        lines.append(f"- **{FACE_FACTORS[d['factor']][0]}** changes most when layer {d['largest_layer']} is "
                     "resampled" + (f" (against {_comparison_text(second, FACE_FACTORS[d['factor']][1])})"
                                    if second else "") + ".")
    return dict(models=models, layers=numbers, described=_jsonable(described), not_measured=missing), lines


def _jsonable(value):
    """Numbers and keys JSON can hold (layer keys as strings, numpy scalars as floats)."""
    return json.loads(json.dumps(value, default=float), object_pairs_hook=lambda pairs: {str(k): v for k, v in pairs})
