"""The latent-size panel (issue 37): the split of a size over the layers, the claims decided per size with
one Holm family, the sentence on whether a verdict depends on the size, and the page."""

import json

import pytest

from hiabp_tf.experiments import latent_size
from hiabp_tf.experiments import pages
from hiabp_tf.experiments import plan


def test_a_size_splits_equally_over_the_layers_or_is_refused():
    assert plan.split_latent(12, 4) == (3, 3, 3, 3)
    assert plan.split_latent(24, 3) == (8, 8, 8)
    assert plan.split_latent(48, 1) == (48,)
    for size in plan.LATENT_SIZES["cpu"] + (latent_size.TABLE1_SIZE,):  # every size divides by every L of the panel
        for row in plan.LATENT_SIZE_ROWS:
            assert sum(plan.split_latent(size, plan.ROW_LAYERS[row])) == size
    with pytest.raises(ValueError, match="multiple of 4"):
        plan.split_latent(10, 4)


def _cells(hiabp_l4, vae, depth=(0.020, 0.019, 0.018)):
    """Three seeds per cell: IABP [E] above [E+L], the depth rows as given, HiABP L = 4 and the VAE as given."""
    jitter = (-0.0001, 0.0, 0.0001)
    cell = lambda mean: [mean + j for j in jitter]  # noqa: E731
    return {("vae", "mse_E"): cell(vae), ("vlae", "mse_E"): cell(0.02), ("iabp", "mse_E"): cell(0.03),
            ("iabp", "mse_EL"): cell(0.021), ("hiabp_l2", "mse_EL"): cell(depth[0]),
            ("hiabp_l3", "mse_EL"): cell(depth[1]), ("hiabp_l4", "mse_EL"): cell(hiabp_l4)}


def test_the_claims_are_decided_at_each_size_with_one_holm_family():
    by_size = {12: _cells(hiabp_l4=0.015, vae=0.025), 48: _cells(hiabp_l4=0.015, vae=0.010)}
    claims = latent_size.decide(by_size, "cpu")
    assert len(claims) == 2 * (len(latent_size.PAIRS) + 1)  # the pairs and the depth trend, at each size
    best = {c["size"]: c for c in claims if c["claim"].endswith("HiABP L = 4 < VAE")}
    assert best[12]["verdict"] == "holds" and best[48]["verdict"] == "does not hold"
    assert best[12]["claim"].startswith(latent_size.column(12))
    tested = [c for c in claims if c.get("p") is not None]
    assert {c["family"] for c in tested} == {len(tested)}  # every size's claims corrected together
    assert all(c["p_holm"] >= c["p"] for c in tested)
    sentence = latent_size.dependence(claims)
    assert sentence.startswith("The verdict depends on the latent size for HiABP L = 4 < VAE")
    assert "holds at 12" in sentence and "does not hold at 48" in sentence


def test_the_same_verdicts_at_every_size_say_so_and_a_missing_size_is_not_a_verdict():
    same = latent_size.decide({12: _cells(0.015, 0.025), 48: _cells(0.015, 0.026)}, "cpu")
    assert latent_size.dependence(same).startswith("No verdict depends on the latent size")
    half = _cells(0.015, 0.025)
    missing = latent_size.decide({12: {k: v for k, v in half.items() if k[0] != "hiabp_l4"}, 48: {}}, "cpu")
    assert all(c["verdict"] not in ("holds", "does not hold") for c in missing if c["size"] == 48)
    assert "cannot be said yet" in latent_size.dependence(missing)


def test_the_page_has_every_size_every_cell_and_the_verdicts(tmp_path, monkeypatch):
    by_size = {12: _cells(0.015, 0.025), 24: _cells(0.015, 0.02), 48: _cells(0.015, 0.010)}
    scores, workdirs = {}, {}
    for size, cells in by_size.items():
        workdirs[size] = {}
        for (row, score), values in cells.items():
            for seed, value in enumerate(values):
                w = f"runs/cpu/{row}_z{size}_seed{seed}"
                scores.setdefault(w, {})[score] = value
                if w not in workdirs[size].setdefault(row, []):
                    workdirs[size][row].append(w)
    monkeypatch.setattr(pages, "load_eval", lambda w, *a, **k: scores[w])
    monkeypatch.setattr(pages, "run_details", lambda label, w, *a: f"- {label}: `{w}`")
    monkeypatch.setattr(pages, "footer", lambda command, details, datasets: ["", f"Command: `{command}`"] + details)
    md, data = latent_size.write(str(tmp_path), workdirs, "cpu", "./run.sh latent_size cpu", pending=["x_z12_seed2"])
    text = open(md).read()
    assert "| total 12 | total 24 | total 48 |" in text
    assert "0.02500 ± 0.00010 (3 seeds)" in text  # the VAE at 12
    assert "HiABP L = 4 < VAE" in text and "**holds**" in text and "**does not hold**" in text
    assert "The verdict depends on the latent size for HiABP L = 4 < VAE" in text
    assert "`x_z12_seed2`" in text and "Table 1 stays at 48" in text
    assert (tmp_path / "latent_size.png").stat().st_size > 0
    assert json.loads((tmp_path / "latent_size.json").read_text())["sizes"] == [12, 24, 48]
    assert len(data["cells"]) == 3 * len(latent_size.CELLS)


def test_the_plan_trains_every_row_at_every_size_with_table1s_seeds():
    panel = plan.runs("latent_size", "cpu")
    sized = [run for run in panel if run.latent_size]
    assert len(sized) == len(plan.LATENT_SIZES["cpu"]) * len(plan.LATENT_SIZE_ROWS) * len(plan.SEEDS["cpu"]) == 36
    by_name = {run.name: run for run in panel}
    l4 = by_name["mnist_hiabp_l4_z12_seed1"]
    assert l4.flagfile == "mnist_hiabp_l4" and l4.train_flags == ("--latent_dims=3,3,3,3", "--seed=1")
    assert by_name["mnist_vlae_l4_z24"].train_flags == ("--latent_dims=6,6,6,6",)
    assert by_name["mnist_hiabp_l1_z24_seed2"].train_flags == ("--latent_dims=24", "--seed=2")
    # The 12-dimensional VAE of seed 0 is the diagnostics' run (its record is reused, not retrained).
    assert "mnist_vae_z12" in {run.name for run in plan.runs("diagnostics", "cpu")}
    # The 48 is Table 1's runs of those rows, the same runs (names and evaluations) as Table 1's.
    table1 = {run.name: run for run in plan.runs("table1", "cpu")}
    own = [run for run in panel if not run.latent_size]
    assert {run.row for run in own} == set(plan.LATENT_SIZE_ROWS) and len(own) == 18
    assert all(table1[run.name] == run for run in own)
    assert plan.runs("latent_size", "quick") == []  # the main job's scale plans no panel


def test_the_report_reads_each_cell_by_size_and_names_what_is_not_trained(monkeypatch, tmp_path):
    from hiabp_tf.experiments import run as runner

    panel = plan.runs("latent_size", "cpu")
    trained = {run.name for run in panel if run.seed == 0}  # seed 0 of every cell is trained, the others not
    monkeypatch.setattr(runner, "run_finished", lambda scale, run: run.name in trained)
    monkeypatch.setattr(runner, "diverged", lambda scale, name: None)
    monkeypatch.setattr(runner, "source_dir", lambda scale, name: f"results/cpu/runs/{name}")
    captured = {}
    monkeypatch.setattr(latent_size, "write", lambda out, workdirs, scale, command, pending: (
        captured.update(workdirs=workdirs, pending=pending, command=command), ("page.md", {}))[1])
    runner.report("latent_size", "cpu", "provenance")
    workdirs = captured["workdirs"]
    assert sorted(workdirs) == [12, 24, 48]
    assert workdirs[12]["hiabp_l4"] == ["results/cpu/runs/mnist_hiabp_l4_z12"]
    assert workdirs[48]["iabp"] == ["results/cpu/runs/mnist_hiabp_l1"]
    assert "mnist_hiabp_l4_z12_seed1" in captured["pending"] and "mnist_vae_seed2" in captured["pending"]
    assert len(captured["pending"]) == 36  # seeds 1 and 2 of the 18 cells
    assert captured["command"].startswith("./run.sh latent_size cpu")
