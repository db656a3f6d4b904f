"""The paper's figures from trained models (PNG files).

Knows the images and models it is given; knows nothing of workdirs, the plan or the records.

    Figure 1  `save_langevin_curve`: test MSE against the training T of IABP and ABP, each scored at
              its own T, and beside it, for one IABP model, against the test-time T, one line per
              initialisation (the encoder's z_0, or N(0, I) noise, as in ABP).
    Figure 4  `save_reconstruction_comparison`: test images over the headline reconstruction of
              each model (VAE [E], ABP [L], HiABP [E+L]).
    Figure 5  `save_samples`: unconditional samples, every layer z^l ~ N(0, I).
    Figure 7  `save_disentanglement`: hierarchical latent disentanglement. One panel per latent layer
              l: in every row all layers but l are fixed (one N(0, I) draw per row), and z^l is
              redrawn from N(0, I) in every column, so a row shows what layer l alone varies.
              Panels run from the bottom layer (left) to the top layer (right), as in the paper.

The panel latents come from `layer_resampled_latents`, a pure numpy function of the seed: the fixed
draw of row r of layer k is the same in every panel, so row r of all panels starts from the same
base code. Models are anything with HiABP's interface (`arch.latent_dims`, `generator` taking
[z^1, ..., z^L] bottom first, `reconstructions`, `reconstruct`, `sample`); for the LVAE, whose prior
is hierarchical, the panels still draw each layer from N(0, I) and feed the generator directly.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from hiabp_tf.data import images

# Key of the fixed (per-row) and resampled (per-image) draws in the seed sequence of a layer.
_FIXED, _RESAMPLED = 0, 1
# White columns between the panels of the combined disentanglement figure.
PANEL_GAP = 6


def _check_positive(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def layer_resampled_latents(latent_dims, layer: int, num_rows: int, num_cols: int, seed: int) -> list[np.ndarray]:
    """Latents of one Figure 7 panel, row-major: [z^1, ..., z^L], each (num_rows * num_cols, d_l) float32.

    Layer `layer` (1-based, 1 = bottom) is drawn from N(0, I) for every image; every other layer k
    has one N(0, I) draw per row, repeated over the row's columns. Deterministic in `seed`; the
    fixed draws of a layer do not depend on which layer is resampled.
    """
    latent_dims = [int(d) for d in latent_dims]
    if not latent_dims or any(d < 1 for d in latent_dims):
        raise ValueError(f"latent_dims must be positive sizes, one per layer, got {latent_dims}.")
    if not 1 <= layer <= len(latent_dims):
        raise ValueError(f"layer must be between 1 and L = {len(latent_dims)} (1 = bottom), got {layer}.")
    _check_positive("num_rows", num_rows)
    _check_positive("num_cols", num_cols)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    z = []
    for k, d in enumerate(latent_dims, start=1):
        if k == layer:
            rng = np.random.default_rng([seed, _RESAMPLED, k])
            z.append(rng.standard_normal((num_rows * num_cols, d)).astype(np.float32))
        else:
            rng = np.random.default_rng([seed, _FIXED, k])
            z.append(np.repeat(rng.standard_normal((num_rows, d)).astype(np.float32), num_cols, axis=0))
    return z


def disentanglement_panels(model, num_rows: int = 8, num_cols: int = 8, seed: int = 0) -> list[np.ndarray]:
    """One image grid (rows x cols images) per latent layer l = 1..L: g(z) with layer l resampled."""
    latent_dims = model.arch.latent_dims
    panels = []
    for layer in range(1, len(latent_dims) + 1):
        z = layer_resampled_latents(latent_dims, layer, num_rows, num_cols, seed)
        x = model.generator([tf.constant(z_l) for z_l in z])
        panels.append(images.grid(np.asarray(x), num_cols))
    return panels


def _side_by_side(panels, gap: int = PANEL_GAP) -> np.ndarray:
    height, _, channels = panels[0].shape
    spacer = np.ones((height, gap, channels), np.float32)
    parts = []
    for i, panel in enumerate(panels):
        if i:
            parts.append(spacer)
        parts.append(panel)
    return np.concatenate(parts, axis=1)


def save_disentanglement(model, out_prefix: str, num_rows: int = 8, num_cols: int = 8, seed: int = 0,
                         step=None) -> list[str]:
    """Figure 7: `{out_prefix}_layer{l}.png` for l = 1..L, then `{out_prefix}.png` with the panels
    side by side (bottom layer left). Returns the paths in that order."""
    panels = disentanglement_panels(model, num_rows, num_cols, seed)
    num_layers = len(panels)
    at = "" if step is None else f"step {step}: "
    paths = []
    for layer, panel in enumerate(panels, start=1):
        path = f"{out_prefix}_layer{layer}.png"
        images.save_png(path, panel, f"{at}layer {layer} of {num_layers} resampled (rows: other layers fixed)")
        paths.append(path)
    path = f"{out_prefix}.png"
    if num_layers == 1:
        title = f"{at}layer 1 of 1 resampled"
    else:
        title = (f"{at}left to right: layer 1 (bottom) .. {num_layers} (top) resampled; "
                 "rows: other layers fixed")
    images.save_png(path, _side_by_side(panels), title)
    paths.append(path)
    return paths


def save_samples(model, path: str, num: int = 64, columns: int = 8, seed: int = 0, title=None) -> str:
    """Figure 5: `num` unconditional samples (every layer z^l ~ N(0, I), `model.sample`) as a grid."""
    _check_positive("num", num)
    _check_positive("columns", columns)
    samples = model.sample(tf.constant(num), tf.constant([seed, 3], tf.int32))
    if title is None:
        title = f"samples, every z^l ~ N(0, I) (L = {len(model.arch.latent_dims)})"
    images.save_png(path, images.grid(np.asarray(samples), columns), title)
    return path


def headline_reconstruction(model) -> str:
    """The reconstruction a method is shown by: the last of `model.reconstructions`
    ("E" for the VAEs, "L" for ABP, "E+L" for IABP / HiABP)."""
    return model.reconstructions[-1]


def save_reconstruction_comparison(models, originals, path: str, seed: int = 0) -> str:
    """Figure 4: a row of test images, then one row per (label, model): its headline reconstruction.

    Every model reconstructs the same `originals` (N, H, W, C) in [0, 1] with the test noise seeded
    by `seed` and its default test-time T. The title lists the rows in order."""
    models = list(models)
    if not models:
        raise ValueError("save_reconstruction_comparison needs at least one (label, model) pair.")
    originals = np.asarray(originals, dtype=np.float32)
    if originals.ndim != 4 or originals.shape[0] < 1:
        raise ValueError(f"originals must be a non-empty batch (N, H, W, C), got shape {originals.shape}.")
    rows, labels = [originals], ["test images"]
    for label, model in models:
        if tuple(model.arch.image_shape) != originals.shape[1:]:
            raise ValueError(f"{label}: the model makes images of shape {tuple(model.arch.image_shape)}, "
                             f"but the originals have shape {originals.shape[1:]}.")
        key = headline_reconstruction(model)
        recon = model.reconstruct(tf.constant(originals), tf.constant([seed, 2], tf.int32))
        rows.append(np.asarray(recon[key]))
        labels.append(label if f"[{key}]" in label else f"{label} [{key}]")
    images.save_png(path, images.grid(np.concatenate(rows), originals.shape[0]), "rows: " + " / ".join(labels))
    return path


def save_langevin_curve(rows, path: str, title: str, training=None, training_title: str = "") -> str:
    """Figure 1: test MSE against the number of test-time Langevin steps T, one line per
    initialisation. `rows`: dicts {"init": label, "langevin_steps": T, "mse": value}. The x axis is
    symmetric-log (linear below T = 1), so T = 0 (the initialisation alone) is shown; every T has a
    tick. With `training` (dicts {"method", "training_steps", "mse", optional "mse_std"}), a first
    panel shows the test MSE against the training T, one line per method (error bars: the seeds'
    standard deviation), titled `training_title`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise ValueError("save_langevin_curve needs at least one row.")
    curves: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        missing = {"init", "langevin_steps", "mse"} - set(row)
        if missing:
            raise ValueError(f"row {row} lacks {sorted(missing)}; each row needs init, langevin_steps and mse.")
        if row["langevin_steps"] < 0:
            raise ValueError(f"langevin_steps must be >= 0, got {row['langevin_steps']} in {row}.")
        curves.setdefault(str(row["init"]), []).append((int(row["langevin_steps"]), float(row["mse"])))
    methods: dict[str, list[tuple[int, float, float]]] = {}
    for row in training or ():
        if row["training_steps"] < 1:
            raise ValueError(f"training_steps must be >= 1 on a log axis, got {row['training_steps']} in {row}.")
        methods.setdefault(str(row["method"]), []).append(
            (int(row["training_steps"]), float(row["mse"]), float(row.get("mse_std") or 0.0)))

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    panels = 2 if methods else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), dpi=100, squeeze=False)
    markers = "osD^v<>"

    def ticks(ax, steps):
        ax.set_xticks(steps)
        ax.set_xticklabels([str(t) for t in steps])
        ax.minorticks_off()

    if methods:
        ax = axes[0][0]
        for i, (method, points) in enumerate(methods.items()):
            points.sort()
            ax.errorbar([t for t, _, _ in points], [m for _, m, _ in points], yerr=[e for _, _, e in points],
                        marker=markers[i % len(markers)], capsize=3, label=method)
        ax.set_xscale("log")
        ticks(ax, sorted({t for points in methods.values() for t, _, _ in points}))
        ax.set_xlabel("training Langevin steps T (each run scored at its own T)")
        ax.set_ylabel("test MSE")
        ax.set_title(training_title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0][panels - 1]
    for i, (init, points) in enumerate(curves.items()):
        points.sort()
        ax.plot([t for t, _ in points], [m for _, m in points], marker=markers[i % len(markers)], label=init)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ticks(ax, sorted({t for points in curves.values() for t, _ in points}))
    ax.set_xlabel("test-time Langevin steps T")
    ax.set_ylabel("test MSE")
    ax.set_title(title, fontsize=9 if methods else 10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8 if methods else None)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_budget_curves(rows, path: str, title: str) -> str:
    """Quality per unit of compute: test MSE against Langevin gradient evaluations per training
    iteration (= T, log axis; left) and against training wall time (log axis; right), one line per
    method. `rows`: dicts {"method", "langevin_steps" (T >= 1), "train_seconds" (None if unknown:
    left out of the right panel), "mse"}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = list(rows)
    if not rows:
        raise ValueError("save_budget_curves needs at least one row.")
    curves: dict[str, list[tuple[int, float, float | None]]] = {}
    for row in rows:
        missing = {"method", "langevin_steps", "train_seconds", "mse"} - set(row)
        if missing:
            raise ValueError(f"row {row} lacks {sorted(missing)}.")
        if row["langevin_steps"] < 1:
            raise ValueError(f"langevin_steps must be >= 1 on a log axis, got {row['langevin_steps']} in {row}.")
        curves.setdefault(str(row["method"]), []).append(
            (int(row["langevin_steps"]), float(row["mse"]), row["train_seconds"]))

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100, sharey=True)
    markers = "osD^v<>"
    for i, (method, points) in enumerate(curves.items()):
        points.sort()
        marker = markers[i % len(markers)]
        left.plot([t for t, _, _ in points], [m for _, m, _ in points], marker=marker, label=method)
        timed = [(s, m, t) for t, m, s in points if s is not None]  # in T order, like the left panel
        line, = right.plot([s for s, _, _ in timed], [m for _, m, _ in timed], marker=marker, label=method)
        for s, m, t in timed:
            right.annotate(f"T={t}", (s, m), textcoords="offset points", xytext=(3, 3), fontsize=7,
                           color=line.get_color())
    left.set_xscale("log")
    steps = sorted({t for points in curves.values() for t, _, _ in points})
    left.set_xticks(steps)
    left.set_xticklabels([str(t) for t in steps])
    left.minorticks_off()
    left.set_xlabel("Langevin gradient evaluations per iteration (= T, train and test)")
    left.set_ylabel("test MSE")
    right.set_xscale("log")
    right.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded 3x10^1-style labels
    right.set_xlabel("training wall time (s)")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# One colour per method (Table 1's row key, plan.TABLE1), the same in both panels and on every dataset's page.
ROW_COLOURS = {
    "vae": "tab:blue", "lvae": "tab:orange", "vlae": "tab:green", "abp": "tab:red", "abp_persistent": "tab:purple",
    "iabp": "tab:brown", "hiabp_l2": "tab:pink", "hiabp_l3": "tab:gray", "hiabp_l4": "tab:cyan",
    "lvae_equal": "goldenrod", "lvae_no_warmup": "tab:olive", "lvae_all_layers": "black",
}
# Curves of rows outside ROW_COLOURS, in order: colours no row takes.
_OTHER_COLOURS = ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94")


def learning_curve_styles(curves) -> list[dict]:
    """Matplotlib style of each learning curve: its method's colour (`ROW_COLOURS[curve["row"]]`); a solid
    line, dotted for a method's other score (IABP [E] beside its headline [E+L]: of a row with several
    scores, all but the last given), dashed for a run trained longer (dash-dotted: its other score)."""
    scores = {}
    for curve in curves:
        scores.setdefault(curve.get("row"), [])
        if curve.get("score") not in scores[curve.get("row")]:
            scores[curve.get("row")].append(curve.get("score"))
    others = {}
    styles = []
    for curve in curves:
        row = curve.get("row")
        colour = ROW_COLOURS.get(row) or others.setdefault(row or curve["label"],
                                                           _OTHER_COLOURS[len(others) % len(_OTHER_COLOURS)])
        secondary = row is not None and curve.get("score") != scores[row][-1]
        linestyle = {(False, False): "-", (False, True): ":", (True, False): "--", (True, True): "-."}[
            (bool(curve.get("long")), secondary)]
        styles.append(dict(color=colour, linestyle=linestyle, secondary=secondary))
    return styles


def usual_seeds(curves) -> int | None:
    """The number of training seeds ("num_seeds") most of `curves` average (of two as common, the larger)."""
    counts = [c.get("num_seeds") for c in curves if c.get("num_seeds")]
    return max(counts, key=lambda n: (counts.count(n), n)) if counts else None


def save_learning_curves(curves, path: str, title: str, paper_label: str = "the paper (3e5 updates)") -> str:
    """Test MSE (log axis) against parameter updates, one line per curve in its method's colour
    (`learning_curve_styles`), with a band from "low" to "high" if given (e.g. the lowest and highest
    seed); a curve's paper number, if it has one, is a star of the same colour right of the last update
    (open for a dotted curve), labelled `paper_label` in the legend. Curves with "long" set go to a
    second panel (training continued), over the band of their own method's curve. A curve that averages
    another number of seeds ("num_seeds") than most (`usual_seeds`) has its number in the legend. `curves`: dicts
    {"label", "steps", "mse", optional "low", "high", "paper" (float or None), "long", "row", "score",
    "num_seeds"}."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.lines import Line2D
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curves = list(curves)
    if not curves:
        raise ValueError("save_learning_curves needs at least one curve.")
    for curve in curves:
        if len(curve["steps"]) != len(curve["mse"]) or not curve["steps"]:
            raise ValueError(f"curve {curve['label']!r} needs as many MSE values as steps, at least one.")
    styles = {id(curve): style for curve, style in zip(curves, learning_curve_styles(curves))}
    short = [c for c in curves if not c.get("long")]
    long = [c for c in curves if c.get("long")]
    usual = usual_seeds(short)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    panels = 2 if long and short else 1
    fig, axes = plt.subplots(1, panels, figsize=(8 * panels, 5), dpi=100, squeeze=False)

    def draw(ax, group, with_paper):
        last = max(max(c["steps"]) for c in group)
        papers = [c for c in group if with_paper and c.get("paper") is not None]
        for curve in group:
            style = styles[id(curve)]
            label = curve["label"]
            if not curve.get("long") and curve.get("num_seeds") not in (None, usual):
                label += f" ({curve['num_seeds']} seed{'s' * (curve['num_seeds'] != 1)})"
            ax.plot(curve["steps"], curve["mse"], style["linestyle"], marker=".", label=label, color=style["color"])
            if curve.get("low") is not None and len(curve["steps"]) > 1:
                ax.fill_between(curve["steps"], curve["low"], curve["high"], color=style["color"], alpha=0.2,
                                linewidth=0)
        # The paper's numbers beyond the last update, side by side so that close values stay apart.
        for i, curve in enumerate(papers):
            style = styles[id(curve)]
            ax.plot([last * (1.04 + 0.12 * i / max(len(papers), 1))], [curve["paper"]], linestyle="none",
                    marker="*", markersize=10, color=style["color"],
                    markerfacecolor="none" if style["secondary"] else style["color"])
        handles, _ = ax.get_legend_handles_labels()
        if papers:
            handles.append(Line2D([], [], linestyle="none", marker="*", markersize=10, color="0.35",
                                  label=f"{paper_label}, in the method's colour"))
        if any(styles[id(c)]["secondary"] for c in papers):
            handles.append(Line2D([], [], linestyle="none", marker="*", markersize=10, color="0.35",
                                  markerfacecolor="none", label=f"{paper_label}, of a dotted curve"))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3f"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3f"))
        ax.set_xlim(0, last * (1.2 if papers else 1.05))
        ax.set_xlabel("parameter updates (batch 100)")
        ax.set_ylabel("test MSE (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles=handles, fontsize=8, ncol=2)

    draw(axes[0][0], short or long, True)
    axes[0][0].set_title(title, fontsize=9, wrap=True)
    if panels == 2:
        keys = {(c.get("row"), c.get("score")) for c in long}
        draw(axes[0][1], [c for c in short if (c.get("row"), c.get("score")) in keys] + long, False)
        axes[0][1].set_title("trained longer (dashed, one seed) over their Table 1 curves", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
