"""Figure 7 in numbers (hiabp_tf/experiments/layer_factors.py): the paired test and the verdict on
constructed numbers, the measurement end to end on a stub model whose layers each draw one known
factor, and the page it writes."""

import json

import numpy as np
import pytest
from scipy import stats

from hiabp_tf.experiments import layer_factors as lf


def _seed(means, n=50, spread=0.05, rng=None):
    """A measured seed: {"layers": {l: {factor: (n,) values around means[l][factor]}}}."""
    rng = rng or np.random.default_rng(0)
    return {"layers": {layer: {factor: value + spread * rng.standard_normal(n) for factor, value in row.items()}
                       for layer, row in means.items()}}


PAPER_LIKE = {1: {"stroke": 0.5, "width": 0.2, "identity": 0.05},
              2: {"stroke": 0.2, "width": 1.0, "identity": 0.10},
              3: {"stroke": 0.1, "width": 0.3, "identity": 0.60}}


def test_paired_is_scipys_paired_t_test_with_its_interval():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.5, 1.0, 40)
    result = lf.paired(a, b)
    reference = stats.ttest_rel(a, b)
    assert result["p"] == pytest.approx(reference.pvalue) and result["n"] == 40
    assert result["difference"] == pytest.approx(np.mean(a - b))
    assert result["ci"] == pytest.approx(list(reference.confidence_interval(0.95)))
    assert result["direction"] == ("larger" if reference.pvalue < 0.05 else "not significant")
    assert lf.paired(b, a)["direction"] == {"larger": "smaller", "not significant": "not significant"}[
        result["direction"]]
    # NaN pairs are left out; a constant difference decides by its sign.
    assert lf.paired([1.0, np.nan, 2.0], [0.0, 5.0, 1.0]) | {} == {"difference": 1.0, "ci": [1.0, 1.0], "p": 0.0,
                                                                   "n": 2, "direction": "larger"}


def test_summary_is_the_mean_with_a_t_interval_across_images():
    values = np.array([1.0, 2.0, 3.0, np.nan])
    s = lf.summary(values)
    half = stats.t.ppf(0.975, 2) * np.std([1, 2, 3], ddof=1) / np.sqrt(3)
    assert s["mean"] == 2.0 and s["n"] == 3 and s["ci"] == pytest.approx([2 - half, 2 + half])
    assert lf.summary([np.nan])["mean"] is None


def test_each_factor_holds_when_its_layer_changes_it_most():
    verdicts = lf.decide([_seed(PAPER_LIKE)])
    assert {v["factor"]: (v["verdict"], v["largest_layer"]) for v in verdicts} == {
        "stroke": ("holds", 1), "width": ("holds", 2), "identity": ("holds", 3)}
    assert lf.overall(verdicts) == "holds"
    width = next(v for v in verdicts if v["factor"] == "width")
    assert [c["against"] for c in width["comparisons"]] == [1, 3]
    assert width["comparisons"][0]["difference"] == pytest.approx(0.8, abs=0.05)
    assert width["comparisons"][0]["ci"][0] < width["comparisons"][0]["difference"] < width["comparisons"][0]["ci"][1]


def test_a_factor_another_layer_changes_more_does_not_hold_and_a_close_one_is_inconclusive():
    means = {layer: dict(row) for layer, row in PAPER_LIKE.items()}
    means[3]["width"] = 2.0  # the top layer changes the width most (identity drags the width along)
    means[1]["stroke"] = means[2]["stroke"] = 0.3  # the bottom layer no more than the middle one
    verdicts = {v["factor"]: v for v in lf.decide([_seed(means, spread=0.5)])}
    assert verdicts["width"]["verdict"] == "does not hold" and verdicts["width"]["largest_layer"] == 3
    assert verdicts["stroke"]["verdict"] == "inconclusive" and verdicts["identity"]["verdict"] == "holds"
    assert lf.overall(list(verdicts.values())) == "does not hold"


def test_the_seeds_must_agree():
    other = {layer: dict(row) for layer, row in PAPER_LIKE.items()}
    other[1]["stroke"], other[3]["stroke"] = 0.1, 0.5  # in this seed the top layer changes the stroke most
    verdicts = {v["factor"]: v for v in lf.decide([_seed(PAPER_LIKE), _seed(other, rng=np.random.default_rng(2))])}
    assert verdicts["stroke"]["per_seed"] == ["holds", "does not hold"]
    assert verdicts["stroke"]["verdict"] == "inconclusive" and "seeds disagree" in verdicts["stroke"]["note"]
    assert verdicts["width"]["verdict"] == "holds" and len(verdicts["width"]["comparisons"][0]["per_seed"]) == 2


class _StubDigits:
    """Three one-dimensional layers, each drawing one factor of a hollow rectangle: z^1 its stroke (2 or
    4 pixels), z^2 its width (10 or 16), z^3 where it stands (left or right: the stub classifier's class)."""

    latent_dims = (1, 1, 1)

    def encode(self, images, seed=None):
        rng = np.random.default_rng(list(seed))
        return [rng.standard_normal((len(images), 1)).astype(np.float32) for _ in range(3)]

    def decode(self, z):
        out = np.zeros((len(z[0]), 28, 28, 1), np.float32)
        for i, (z1, z2, z3) in enumerate(zip(*[z_l[:, 0] for z_l in z])):
            stroke, width, left = (2 if z1 < 0 else 4), (10 if z2 < 0 else 16), (2 if z3 < 0 else 10)
            out[i, 4:24, left:left + width] = 1.0
            out[i, 4 + stroke:24 - stroke, left + stroke:left + width - stroke] = 0.0
        return out

    def resample_layer(self, z, layer, seed=None):
        out = [np.array(z_l) for z_l in z]
        out[layer - 1] = np.random.default_rng(list(seed)).standard_normal(out[layer - 1].shape).astype(np.float32)
        return out


def _classify(images):
    """Class 1 if the ink's centre is right of the middle."""
    g = np.asarray(images)[..., 0]
    x = np.arange(g.shape[2])
    with np.errstate(invalid="ignore"):  # a blank image: class 0
        return ((g.sum(axis=1) * x).sum(axis=1) / g.sum(axis=(1, 2)) > 13).astype(int)


def test_measure_finds_the_layer_of_each_known_factor():
    images = np.zeros((30, 28, 28, 1), np.float32)
    measured = lf.measure(_StubDigits(), images, num_resamples=6, seed=0, classify=_classify)
    layers = measured["layers"]
    assert set(layers) == {1, 2, 3} and layers[1]["stroke"].shape == (30,)
    for factor, own in lf.PAPER_LAYERS.items():  # (a hollow rectangle's corners move its ridge a little with its width)
        for layer in (1, 2, 3):
            assert np.nanmean(layers[layer][factor]) < 0.05 * np.nanmean(layers[own][factor]) or layer == own
    # 10 <-> 16 pixels: each of an image's 6 resamples that flips the width adds 6 / 6 to its mean change.
    np.testing.assert_array_equal(layers[2]["width"], np.round(layers[2]["width"]))
    assert 1 < np.mean(layers[2]["width"]) < 5
    assert measured["agreement"] == pytest.approx(np.mean(_classify(images) == _classify(_StubDigits().decode(
        lf._Latents(_StubDigits().encode(images, seed=[0, 1]))[0:30]))))  # pylint: disable=protected-access
    same = measured["same_class"][3]["width"]  # the top layer keeps the class in some resamples: no width change there
    assert np.all((same == 0) | np.isnan(same))
    verdicts = lf.decide([measured])
    assert lf.overall(verdicts) == "holds", verdicts


class _StubFaces(_StubDigits):
    """Layer 1 brightens the whole face, layer 2 turns it from green to red at the same luminance; RGB."""

    latent_dims = (1, 1)

    def encode(self, images, seed=None):
        return super().encode(images, seed)[:2]

    def decode(self, z):
        out = np.full((len(z[0]), 8, 8, 3), 0.3, np.float32)
        out += 0.1 * (z[0] > 0)[:, :, None, None]
        out[..., 0] += 0.3 * (z[1][:, 0] > 0)[:, None, None]
        out[..., 1] -= 0.3 * 0.299 / 0.587 * (z[1][:, 0] > 0)[:, None, None]
        return out


def test_write_figure7_states_the_verdict_and_how_many_seeds(tmp_path, monkeypatch):
    class Classifier:
        description = "a stub classifier"

        @staticmethod
        def model(images, training=False):
            del training
            return np.eye(2)[_classify(images)]

    stubs = {"digits0": _StubDigits(), "faces": _StubFaces()}

    def load_models(candidates):
        loaded = [({"label": label, "workdir": w, "seed": 0, "step": 7}, stubs[w])
                  for label, w in candidates if w in stubs]
        return loaded, [f"{label} (`{w}`): not loadable (no model)" for label, w in candidates if w not in stubs]

    for stub in stubs.values():
        stub.config, stub.num_layers = type("C", (), {"dataset": "stub"})(), len(stub.latent_dims)
    monkeypatch.setattr(lf, "load_models", load_models)
    monkeypatch.setattr(lf.metrics, "spread_images", lambda dataset, n: np.zeros((n, 28, 28, 1), np.float32))
    path = lf.write_figure7(str(tmp_path), [("seed 0", "digits0"), ("seed 1", "digits1")], Classifier(), "cmd",
                            faces=[("faces", "faces")], num_images=20, num_resamples=4, picture="figure7.png",
                            planned_seeds=2)
    text = open(path).read()
    assert "## The paper's claim: **holds**" in text and "![figure 7](figure7.png)" in text
    assert "1 training seed of the 2 planned" in text and "not loadable (no model)" in text
    assert "| 3 (top) |" in text and "## Faces" in text
    data = json.load(open(tmp_path / "figure7.json"))
    assert data["verdict"] == "holds" and [v["factor"] for v in data["verdicts"]] == ["stroke", "width", "identity"]
    assert data["layers"]["3"]["identity"]["mean"] > 0 and data["layers"]["1"]["identity"]["mean"] == 0
    described = {d["factor"]: d["largest_layer"] for d in data["faces"]["described"]}
    assert described["brightness"] == 1 and described["colour"] == 2
