"""Tests for hiabp_tf.benchmark (and the rendering of hiabp_tf.tools.performance): FLOP counts against a
hand count, the counterfactual steps against the default one, and the command's JSON. No test
asserts a duration: timing belongs to the benchmark itself."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf.tools import benchmark
from hiabp_tf.tools import performance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_FLAGS = """--method=hiabp
--dataset=mnist_5k
--num_layers=2
--latent_dims=4,3
--width=4
--langevin_steps=2
--batch_size=8
--seed=0
"""


def _hand_count_reference():
    """Multiply-adds x 2 of the reference pair at batch 100, layer by layer."""
    b = 100
    generator = (2 * 64 * 7 * 7 * 64                      # Dense 64 -> 3136
                 + 2 * (7 * 7 * 64) * 4 * 4 * 64          # ConvT 64->64, 4x4, from 7x7: per input element
                 + 2 * (14 * 14 * 64) * 4 * 4 * 32        # ConvT 64->32 from 14x14
                 + 2 * (28 * 28 * 32) * 3 * 3 * 1)        # ConvT 32->1, 3x3, stride 1
    encoder = (2 * (14 * 14 * 32) * 4 * 4 * 1             # Conv 1->32 to 14x14: per output element
               + 2 * (7 * 7 * 64) * 4 * 4 * 32            # Conv 32->64 to 7x7
               + 2 * 3136 * 128)                          # Dense 3136 -> 2*64
    return b * generator, b * encoder


def test_reference_flops_match_the_hand_count():
    generator, encoder = benchmark.reference_networks()
    flops = benchmark.iteration_flops(generator, encoder, (64,), (28, 28, 1), 100, 15)
    hand_generator, hand_encoder = _hand_count_reference()
    assert flops["generator_forward"] == hand_generator
    assert flops["encoder_forward"] == hand_encoder
    assert flops["per_iteration"] == 3 * hand_encoder + (2 * 15 + 3) * hand_generator
    assert 67e9 < flops["per_iteration"] < 69e9  # "about 68 GFLOP per iteration" (issue 5)


def test_reference_networks_have_the_specified_shapes():
    generator, encoder = benchmark.reference_networks()
    images = generator([tf.zeros((3, 64))])
    assert images.shape == (3, 28, 28, 1) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 1  # sigmoid
    (mu,), (log_sigma,) = encoder(tf.zeros((3, 28, 28, 1)))
    assert mu.shape == log_sigma.shape == (3, 64)
    # in layer order (the model also tracks the output block as an attribute, which lists it first)
    kernels = [v.shape for v in generator.net.trainable_variables if len(v.shape) == 4]
    assert kernels == [(4, 4, 64, 64), (4, 4, 32, 64), (3, 3, 1, 32)]


def test_read_flagfile_gives_the_run_config(tmp_path):
    path = tmp_path / "tiny.flags"
    path.write_text("# comment\n" + TINY_FLAGS + "--num_steps=10\n")
    config = benchmark.read_flagfile(str(path))
    assert (config.method, config.num_layers, config.latent_dims, config.width) == ("hiabp", 2, (4, 3), 4)
    assert config.langevin_steps == 2 and config.batch_size == 8
    config = benchmark.read_flagfile(os.path.join(ROOT, "flags", "mnist5k_iabp.flags"))
    assert config.latent_dims == (48,) and config.langevin_steps == 15


def test_missing_flagfile_names_the_flag():
    with pytest.raises(ValueError, match="--arch_flagfile"):
        benchmark.read_flagfile("no/such.flags")


@pytest.mark.slow
def test_counterfactual_steps_compute_the_same_iteration(tmp_path):
    """The naive (repeated passes), unrolled and Keras-output-layer steps do the same arithmetic as
    the default step: from the same weights and seed they give the same losses."""
    path = tmp_path / "tiny.flags"
    path.write_text(TINY_FLAGS)
    seed = tf.constant([3, 4], tf.int32)
    losses = {}
    for step in benchmark.STEPS:
        setup = benchmark.make_setup("flags", str(path), str(tmp_path))
        out = benchmark.step_function(setup.model, "function", step)(setup.batch, seed)
        losses[step] = (float(out["generator_loss"]), float(out["encoder_loss"]))
    np.testing.assert_allclose(losses["naive"], losses["default"], rtol=1e-5)
    np.testing.assert_allclose(losses["unrolled"], losses["default"], rtol=1e-5)
    np.testing.assert_allclose(losses["keras_output_layer"], losses["default"], rtol=1e-5)


def test_interleaved_timing_alternates_and_pairs_the_calls():
    calls = []
    times = benchmark.time_interleaved(lambda: calls.append("a"), lambda: calls.append("b"), 4, 1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then a b / b a / ...
    assert [len(t) for t in times] == [4, 4]


@pytest.mark.slow
def test_command_prints_json_for_every_mode(tmp_path):
    path = tmp_path / "tiny.flags"
    path.write_text(TINY_FLAGS)
    done = subprocess.run(
        [sys.executable, "-m", "hiabp_tf.benchmark", "--arch=flags", f"--arch_flagfile={path}",
         "--modes=eager,function,xla", "--iterations=2", "--eager_iterations=1", "--warmup=1",
         "--matmul_size=256", "--input_pipeline_iterations=2", "--against=unrolled,keras_output_layer"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("ms_per_iter", "images_per_s", "langevin_steps_per_s", "gflops_per_s",
                "machine_matmul_gflops_per_s", "config", "input_pipeline"):
        assert key in result
    assert set(result["modes"]) == {"eager", "function", "xla"}
    for figs in result["modes"].values():
        assert figs["ms_per_iter"] > 0 and figs["gflops_per_s"] > 0
        # images/s and Langevin steps/s follow from ms/iteration, batch 8 and T = 2
        np.testing.assert_allclose(figs["images_per_s"], 8000 / figs["ms_per_iter"], rtol=0.01)
        np.testing.assert_allclose(figs["langevin_steps_per_s"], 2000 / figs["ms_per_iter"], rtol=0.01)
    assert result["config"]["num_layers"] == 2 and result["config"]["batch_size"] == 8
    assert 0 <= result["input_pipeline"]["input_share"] <= 1
    for name in ("unrolled", "keras_output_layer"):  # each timed in alternation with the default step
        figs = result["against"][name]
        assert figs["default_ms"] > 0 and figs["counterfactual_ms"] > 0 and len(figs["ratio_quartiles"]) == 3


@pytest.mark.slow
def test_reference_run_reports_the_default_path(tmp_path):
    result = benchmark.run("reference", modes=("function",), iterations=1, warmup=0, matmul_size=128,
                           input_pipeline_iterations=1, profile_dir=str(tmp_path / "profile"))
    profile = result["profile"]
    assert profile["top_ops"] and 0 < profile["langevin_loop_share_of_op_time"] <= 1
    # T = 15 generator passes and their gradients dominate: the top op is in the Langevin loop
    assert profile["top_ops"][0]["op"].startswith("Langevin loop")
    assert result["default_mode"] == "function" and result["config"]["arch"] == "reference"
    assert (result["flops_per_iteration"]["per_iteration"]
            == 3 * _hand_count_reference()[1] + 33 * _hand_count_reference()[0])
    assert result["ms_per_iter"] == result["modes"]["function"]["ms_per_iter"]


@pytest.mark.slow
def test_torch_peer_runs_the_same_iteration():
    torch = pytest.importorskip("torch")
    from hiabp_tf.tools import torch_peer
    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    iteration = torch_peer.Iteration(torch, images, langevin_steps=2)
    generator = iteration.generator
    assert generator(torch.zeros(3, 64)).shape == (3, 1, 28, 28)  # "same" padding as in Keras
    assert np.isfinite(iteration())


def _fake_result(ms, fraction=0.7, peer_ms=None):
    figs = dict(ms_per_iter=ms, images_per_s=100000 / ms, langevin_steps_per_s=15000 / ms,
                gflops_per_s=68000 / ms, fraction_of_matmul=fraction)
    result = dict(modes={"function": figs}, config=dict(
        tensorflow="2.x", python="3.11", iterations=10, warmup=2, batch_size=100, langevin_steps=15,
        step_size=0.15, sigma=0.3, learning_rate=3e-4, image_shape=[28, 28, 1], num_layers=1, width=64),
        flops_per_iteration=dict(per_iteration=68e9), machine_matmul_gflops_per_s=200.0,
        matmul_samples_gflops_per_s=[200.0], **figs)
    if peer_ms:
        result["peer"] = dict(framework="torch eager", threads=2, ms_per_iter=peer_ms,
                              ours_interleaved_ms_per_iter=ms, speedup_of_default_over_peer=peer_ms / ms)
    return result


@pytest.mark.parametrize("peer_ms,fraction,verdict", [(1200, 0.85, "Met."), (900, 0.7, "Not met.")])
def test_performance_report_states_the_target_from_the_figures(peer_ms, fraction, verdict):
    default = _fake_result(500, fraction, peer_ms)
    default["profile"] = dict(step_ms=500, op_ms=600, langevin_loop_share_of_op_time=0.9, logdir="p",
                              top_ops=[dict(op="Langevin loop: conv", ms_per_iter=300.0, share=0.5)])
    default["output_layer_ms"] = {"keras": 8.0, "depthwise_then_sum": 6.0}
    measured = dict(started="t0", finished="t1", default=default,
                    default_again=_fake_result(510),
                    levers=[dict(name="lever A", decision="rejected", result=_fake_result(1000))],
                    flag_archs={"mnist_hiabp_l1": _fake_result(300)},
                    counterfactuals={"reference": dict(against={"unrolled": dict(
                        default_ms=500.0, counterfactual_ms=510.0, ratio=1.02, ratio_quartiles=[0.99, 1.02, 1.05])})},
                    parallel=dict(flagfile="flags/x.flags", num_steps=100, ways={
                        "one after the other, default threads": 200.0,
                        "side by side, TF_NUM_INTRAOP_THREADS=1": 160.0}))
    text = performance.render(measured, "python -m hiabp_tf.tools.performance")
    assert verdict in text
    assert "| lever A | 1000 |" in text and "-50%" in text  # twice as slow as the default
    assert "mnist_hiabp_l1" in text
    assert "| Langevin loop: conv | 300.0 | 50% |" in text
    assert "saves about 30 ms per iteration" in text and "adopted as `models.OutputDeconv`" in text  # 15 x (8 - 6)
    assert "| reference | 500 | 510 | +2.0% (-1.0% .. +5.0%) | rejected: no gain" in text
    assert "| side by side, TF_NUM_INTRAOP_THREADS=1 | 160 | +25% |" in text
    assert "Fastest: side by side, TF_NUM_INTRAOP_THREADS=1." in text
    # The peer's source by its path in the repository (it moved to hiabp_tf/tools/; the page named the old one).
    assert "`hiabp_tf/tools/torch_peer.py`, same networks" in text
    assert os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                       performance.TORCH_PEER_SOURCE))


def test_the_shapes_table_compares_every_shape_with_the_gray_workhorse():
    def result(gflops):
        return dict(flops_per_iteration=dict(per_iteration=10e9),
                    modes=dict(function=dict(ms_per_iter=100.0, gflops_per_s=gflops, fraction_of_matmul=0.5)))
    shapes = {"bfloat16": {label: result(g) for (label, _, _), g in zip(performance.SHAPES, (100.0, 80.0, 60.0))}}
    layers = {"28x32x1x4 bfloat16": {"depthwise_then_sum": 7.8, "conv2d_flipped_kernel": 12.2, "keras": 9.3}}
    text = "\n".join(performance.render_shapes(shapes, layers, "2026-12-02T20:00"))
    assert "| bfloat16 | 32x32x3 (CelebA, cpu scale) | 10.0 | 100 | 80.0 | 80% | 50% |" in text
    assert "| bfloat16 | 64x64x3 (CelebA, paper size) | 10.0 | 100 | 60.0 | 60% |" in text
    assert "| 28x32x1x4 bfloat16 | 7.80 | 12.20 | 9.30 |" in text and "Measured 2026-12-02T20:00" in text
    assert "3 channels: keras" in text


def test_every_output_formulation_at_every_shape_is_checked_equal():
    for shape in benchmark.OUTPUT_SHAPES:
        ms = benchmark.output_layer_variants(batch_size=2, repeats=1, shape=shape, precision="bfloat16")
        assert set(ms) == {"depthwise_then_sum", "conv2d_flipped_kernel", "keras"}
