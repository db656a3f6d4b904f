r"""Writes results/performance.md: every speed lever of the training step, measured by the benchmark.

    python -m hiabp_tf.tools.performance --out=results/performance.md

Each lever is one `python -m hiabp_tf.benchmark` process (thread and oneDNN settings only take
effect in a fresh process), on the reference pair unless stated; the figures in the file are the
JSON those processes print. The default path is measured first and last, so the spread between
the two shows the machine's noise. With PyTorch installed (`pip install torch==2.13.0`, done by
`./run.sh performance`) the plain eager PyTorch peer is timed interleaved with the default path.
The bfloat16 lever's effect on quality is measured by training flags/mnist5k_iabp.flags with
--precision=bfloat16 and comparing its test MSE with the float32 run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from absl import flags
from absl import logging

from hiabp_tf.checks import cli
from hiabp_tf.core import hardware

# The eager PyTorch peer's source, as the page names it (a path from the repository root).
TORCH_PEER_SOURCE = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py"),
                                    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Speed target of issue 5: the default path at least this much faster than the eager peer.
TARGET_SPEEDUP_OVER_PEER = 2.2
TARGET_FRACTION_OF_MATMUL = 0.8


@dataclasses.dataclass(frozen=True)
class Lever:
    name: str
    args: tuple = ()
    env: tuple = ()  # (name, value) pairs
    decision: str = ""


# Each lever's decision is the engineer's reading of its measured figure (in the same file).
# Process-level levers: each in its own benchmark process (thread pools, oneDNN and the policy are
# fixed when TensorFlow starts).
LEVERS = (
    Lever("inter-op threads = 1", ("--inter_op_threads=1",),
          decision="rejected unless beyond the noise band: the Langevin chain is sequential, so "
                   "inter-op parallelism has little to overlap either way; TensorFlow's default kept"),
    Lever("grappler remapper (op fusion) off", ("--noremapping",),
          decision="rejected unless beyond the noise band: the remapper's fusions inside the loop "
                   "(MatMul + bias) are kept; it logs one failed fusion outside the loop, in the encoder"),
    Lever("oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", (), (("TF_ENABLE_ONEDNN_OPTS", "0"),),
          decision="rejected: oneDNN's convolutions are what makes the CPU path fast"),
    Lever("bfloat16 networks (--precision=bfloat16, AVX512_BF16)", ("--precision=bfloat16",),
          decision="adopted for the mnist_5k experiments (quick and cpu scales: every method alike), "
                   "opt-in elsewhere: not exact (see its test-MSE effect below); the library default "
                   "and the paper-scale flag files stay float32"),
)
# Code-path levers: the default step and its counterfactual (`benchmark.STEPS`) timed in alternation
# in one process (`benchmark --against`), so the machine's drift falls on both alike.
COUNTERFACTUALS = {
    "naive": ("repeated forward passes (naive step: encoder twice, extra generator pass for E(z_T))",
              "rejected: the default step shares the encoder pass between z_0 and eq. 5 and reads "
              "E(z_T) off the generator update's forward pass"),
    "unrolled": ("T Langevin steps unrolled into the graph instead of one while-loop",
                 "rejected: no gain beyond the noise on these networks, for a graph T times larger "
                 "(`langevin_dynamics(unroll=True)` stays available)"),
    "keras_output_layer": ("output block r by Keras' Conv2DTranspose kernel (the previous default) "
                           "instead of `models.OutputDeconv`'s depthwise form",
                           "adopted: `models.OutputDeconv` (the same weights and function) is the default "
                           "since this measurement; the row times the old kernel against it"),
}
COUNTERFACTUAL_ARCHS = ("reference", "mnist5k_iabp", "mnist5k_hiabp_l3")
# Trainings side by side (run.sh's pool): this flag file trained twice, both ways.
PARALLEL_FLAGFILE = "flags/mnist5k_hiabp_l3.flags"

# CelebA L = 4 (width 128) takes about a minute per iteration on 2 cores (results/memory.md): L = 1
# stands for the 64-pixel networks here.
FLAG_ARCHS = ("mnist5k_hiabp_l3", "mnist_hiabp_l1", "mnist_hiabp_l2", "mnist_hiabp_l3", "mnist_hiabp_l4",
              "svhn_hiabp_l1", "svhn_hiabp_l4", "celeba_hiabp_l1")


# The supported image shapes side by side, on the cpu scale's networks (width 32, one thread each as
# two trainings side by side run): HiABP L = 4 on MNIST's 28x28x1 (the gray workhorse), and the CelebA
# experiment's networks (latent size 192) at 32x32x3 (the cpu scale's faces) and 64x64x3 (the
# paper's); random images of each shape (`--arch_set=dataset=...` gives the shape without its data).
SHAPES = (
    ("28x28x1 (MNIST)", ("flags/mnist_hiabp_l4.flags", "flags/cpu.flags"), ()),
    ("32x32x3 (CelebA, cpu scale)", ("flags/celeba_hiabp_l4.flags", "flags/cpu.flags"), ("dataset=svhn_cropped",)),
    ("64x64x3 (CelebA, paper size)", ("flags/celeba_hiabp_l4.flags", "flags/cpu.flags"), ()),
)
SHAPE_PRECISIONS = ("bfloat16", "float32")
# Issue 21's bar: every supported shape at >= this fraction of the gray workhorse's GFLOP/s.
TARGET_FRACTION_OF_GRAY = 0.7


OUTPUT_LAYERS_SCRIPT = (
    "import json; from hiabp_tf.tools import benchmark; print(json.dumps({"
    "f\"{'x'.join(map(str, shape))} {p}\": benchmark.output_layer_variants(shape=shape, precision=p) "
    "for shape in benchmark.OUTPUT_SHAPES for p in ('float32', 'bfloat16')}))")


def measure_output_layers() -> dict:
    """The output block r's formulations at every supported shape (`benchmark.output_layer_variants`),
    in a fresh process with one intra-op thread."""
    done = subprocess.run([sys.executable, "-c", OUTPUT_LAYERS_SCRIPT], capture_output=True, text=True,
                          env=dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3"),
                          timeout=3600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_shapes(iterations: int) -> dict:
    """{precision: {shape label: benchmark result}} of SHAPES, one intra-op thread each."""
    return {precision: {label: run_benchmark(
        ("--arch=flags", f"--arch_flagfile={','.join(files)}", *((f"--arch_set={','.join(sets)}",) if sets else ()),
         "--modes=function", f"--iterations={max(3, iterations // 3)}", "--warmup=1", "--input_pipeline_iterations=0",
         f"--precision={precision}", "--intra_op_threads=1"))
        for label, files, sets in SHAPES} for precision in SHAPE_PRECISIONS}


def run_benchmark(args, env=(), timeout=3600) -> dict:
    """Runs `python -m hiabp_tf.benchmark ARGS` in a fresh process; returns its JSON."""
    command = [sys.executable, "-m", "hiabp_tf.benchmark", *args]
    environment = dict(os.environ, **dict(env))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.info("benchmark: %s%s", " ".join(f"{k}={v} " for k, v in env), " ".join(command[1:]))
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _percent(x):
    return f"{100 * x:.0f}%"


def _row(name, figs, reference_ms, decision=""):
    change = (reference_ms / figs["ms_per_iter"] - 1) if reference_ms else 0.0
    return (f"| {name} | {figs['ms_per_iter']:.0f} | {figs['images_per_s']:.0f} | "
            f"{figs['gflops_per_s']:.1f} | {_percent(figs['fraction_of_matmul'])} | "
            f"{'' if reference_ms is None else f'{change:+.0%}'} | {decision} |")


def train_and_score(flagfile, workdir, extra_args=(), num_steps=None) -> dict:
    """Trains (or resumes) a flagfile's run and returns evaluate.py's JSON."""
    train = [sys.executable, "-m", "hiabp_tf.train", f"--flagfile={flagfile}", f"--workdir={workdir}", *extra_args]
    if num_steps is not None:
        train.append(f"--num_steps={num_steps}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    subprocess.run(train, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    done = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}"], env=env,
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["train_wall_s"] = round(seconds, 1)
    return result


def measure_parallel(flagfile: str, num_steps: int, runs_dir: str) -> dict:
    """Wall time of two trainings of `flagfile` (`num_steps` updates each, start-up and the final
    evaluation included): one after the other with TensorFlow's default threads, and side by side
    with one intra-op thread each (how run.sh trains), also with one inter-op thread each."""
    import shutil

    def start(name, env):
        workdir = os.path.join(runs_dir, "parallel", name)
        shutil.rmtree(workdir, ignore_errors=True)
        command = [sys.executable, "-m", "hiabp_tf.train", f"--flagfile={flagfile}", f"--workdir={workdir}",
                   f"--num_steps={num_steps}", f"--eval_every={num_steps}", f"--checkpoint_every={num_steps}"]
        return subprocess.Popen(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finish(process):
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"training for the parallel measurement failed:\n{err[-3000:]}")

    ways = {
        "one after the other, default threads": ({}, False),
        "side by side, TF_NUM_INTRAOP_THREADS=1": ({"TF_NUM_INTRAOP_THREADS": "1"}, True),
        "side by side, TF_NUM_INTRAOP_THREADS=1 and TF_NUM_INTEROP_THREADS=1":
            ({"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}, True),
    }
    result = {"flagfile": flagfile, "num_steps": num_steps, "ways": {}}
    for i, (way, (env, together)) in enumerate(ways.items()):
        begin = time.perf_counter()
        if together:
            processes = [start(f"{i}_{k}", env) for k in range(2)]
            for process in processes:
                finish(process)
        else:
            for k in range(2):
                finish(start(f"{i}_{k}", env))
        result["ways"][way] = round(time.perf_counter() - begin, 1)
    return result


def measure(iterations: int, runs_dir: str, bf16_steps: int | None, flag_archs=FLAG_ARCHS,
            levers=LEVERS, parallel_steps: int | None = None) -> dict:
    common = (f"--iterations={iterations}",)
    measured = {"started": datetime.datetime.now().isoformat(timespec="seconds")}
    main_args = ("--arch=reference", "--modes=eager,function,xla", *common,
                 f"--profile_dir={os.path.join(runs_dir, 'profile')}")
    try:
        import torch  # noqa: F401  (only to know whether the peer can run)
        main_args += ("--peer=torch",)
    except ImportError:
        logging.warning("PyTorch is not installed: the eager peer is skipped (pip install torch==2.13.0).")
    measured["default"] = run_benchmark(main_args)
    measured["counterfactuals"] = {}
    for arch in COUNTERFACTUAL_ARCHS:
        arch_args = (("--arch=reference",) if arch == "reference"
                     else ("--arch=flags", f"--arch_flagfile=flags/{arch}.flags"))
        measured["counterfactuals"][arch] = run_benchmark(
            (*arch_args, "--modes=function", "--input_pipeline_iterations=0", f"--iterations={2 * iterations}",
             f"--against={','.join(COUNTERFACTUALS)}"))
    measured["levers"] = []
    for lever in levers:
        result = run_benchmark(("--arch=reference", "--modes=function", "--input_pipeline_iterations=0",
                                *common, *lever.args), lever.env)
        measured["levers"].append(dict(name=lever.name, decision=lever.decision, result=result))
    measured["default_again"] = run_benchmark(("--arch=reference", "--modes=function", *common))
    measured["flag_archs"] = {}
    for name in flag_archs:
        measured["flag_archs"][name] = run_benchmark(
            ("--arch=flags", f"--arch_flagfile=flags/{name}.flags", "--modes=function",
             f"--iterations={max(2, iterations // 4)}", "--warmup=1", "--input_pipeline_iterations=0"))
    measured["shapes"] = measure_shapes(iterations)
    measured["output_layers"] = measure_output_layers()
    if parallel_steps:
        measured["parallel"] = measure_parallel(PARALLEL_FLAGFILE, parallel_steps, runs_dir)
    if bf16_steps:
        measured["bf16_quality"] = {
            precision: train_and_score("flags/mnist5k_iabp.flags",
                                       os.path.join(runs_dir, f"mnist5k_iabp_{precision}"),
                                       (f"--precision={precision}",), bf16_steps)
            for precision in ("float32", "bfloat16")}
    measured["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    return measured


def render(measured: dict, command: str) -> str:
    default = measured["default"]
    ms = default["ms_per_iter"]
    matmul = default["machine_matmul_gflops_per_s"]
    config = default["config"]
    lines = [
        "# Performance of the training step",
        "",
        f"Produced by `{command}` ({measured['started']} to {measured['finished']}), TensorFlow "
        f"{config['tensorflow']}, Python {config['python']}, {os.cpu_count()} CPU cores "
        f"({platform.machine()}, {platform.processor() or 'cpu'}), no GPU. Every figure is the median of "
        f"{config['iterations']} timed iterations after {config['warmup']} warm-up ones "
        "(`python -m hiabp_tf.benchmark`), each lever in its own process.",
        "",
        "Reference pair (`--arch=reference`): generator z(64) -> Dense(7*7*64) -> ConvT(64,4,2) -> "
        "ConvT(32,4,2) -> ConvT(1,3,1)+sigmoid, encoder Conv(32,4,2) -> Conv(64,4,2) -> Dense(2*64); "
        f"batch {config['batch_size']}, T = {config['langevin_steps']}, s = {config['step_size']}, "
        f"sigma = {config['sigma']}, Adamax {config['learning_rate']}, 28x28x1 (mnist_5k). One iteration "
        f"(initialize, T Langevin steps, both updates) is "
        f"{default['flops_per_iteration']['per_iteration'] / 1e9:.1f} GFLOP by the analytic count "
        "(`benchmark.iteration_flops`: matmuls and convolutions, a backward pass = 2 forwards).",
        "",
        f"Machine ceiling: a 2048x2048 float32 matmul ran at {matmul:.1f} GFLOP/s (median of the samples "
        f"taken between the modes of the same run: {default['matmul_samples_gflops_per_s']}).",
        "",
        "## Modes and the speed target",
        "",
        "| path | ms / iteration | images / s | GFLOP/s | of matmul | vs default | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    names = {"eager": "eager (tf.config.run_functions_eagerly)",
             "function": "**tf.function (the default training path)**",
             "xla": "tf.function(jit_compile=True) (XLA)",
             "function_interleaved": "tf.function, interleaved with the PyTorch peer"}
    for mode, figs in default["modes"].items():
        lines.append(_row(names.get(mode, mode), figs, ms))
    again = measured["default_again"]["modes"]["function"]
    lines.append(_row("tf.function again, at the end of the session (noise)", again, ms))
    lines.append("")
    if "peer" in default:
        peer = default["peer"]
        speedup = peer["speedup_of_default_over_peer"]
        ours = peer["ours_interleaved_ms_per_iter"]
        interleaved_speedup = peer["ms_per_iter"] / ours
        fraction = default["fraction_of_matmul"]
        met = speedup >= TARGET_SPEEDUP_OVER_PEER and interleaved_speedup >= TARGET_SPEEDUP_OVER_PEER
        peer_fraction = (default["flops_per_iteration"]["per_iteration"] / (peer["ms_per_iter"] / 1000) / 1e9) / matmul
        lines += [
            f"Plain eager PyTorch peer ({peer['framework']}, {peer['threads']} threads, "
            f"`{TORCH_PEER_SOURCE}`, same networks, batch and iteration): {peer['ms_per_iter']:.0f} ms / "
            f"iteration, timed in rounds interleaved with our default path ({ours:.0f} ms in those rounds).",
            "",
            f"**Speed target** (default path >= {TARGET_SPEEDUP_OVER_PEER}x faster than the eager peer, "
            f">= {_percent(TARGET_FRACTION_OF_MATMUL)} of the matmul rate, float32): "
            f"{speedup:.2f}x the peer (median of the separate default timing), {interleaved_speedup:.2f}x "
            f"(interleaved rounds); {_percent(fraction)} of the matmul rate. "
            + ("Met." if met and fraction >= TARGET_FRACTION_OF_MATMUL else
               ("Met against the peer; not against the matmul rate." if met else "Not met.")),
            "",
            f"The peer itself runs at {_percent(peer_fraction)} of the matmul rate here, so "
            f"{TARGET_SPEEDUP_OVER_PEER}x the peer would take {_percent(TARGET_SPEEDUP_OVER_PEER * peer_fraction)} "
            "of it" + (": more than the float32 ceiling, out of reach of any float32 implementation on this "
                       "machine; only bfloat16 (below) comes near." if TARGET_SPEEDUP_OVER_PEER * peer_fraction > 1
                       else "."),
            "",
        ]
    else:
        lines += ["The PyTorch peer was not timed (PyTorch not installed).", ""]
    pipeline = default.get("input_pipeline")
    if pipeline:
        lines += [f"Input pipeline (`input_pipeline.make_train_dataset`: cache, shuffle, map, batch, "
                  f"prefetch): waiting for a batch took {pipeline['input_wait_ms_per_iter']:.2f} ms per "
                  f"iteration, {100 * pipeline['input_share']:.1f}% of the step time.", ""]
    profile = default.get("profile")
    if profile:
        lines += [
            "## Where the time goes",
            "",
            f"TensorFlow profiler on the default path (`benchmark.profile_breakdown`; the trace is in "
            f"`{profile['logdir']}` for TensorBoard's trace viewer): a profiled step took "
            f"{profile['step_ms']:.0f} ms; op time summed over the executor threads was {profile['op_ms']:.0f} ms "
            f"per iteration, {_percent(profile['langevin_loop_share_of_op_time'])} of it inside the Langevin "
            "while-loop. The ops that take the time (per iteration, summed over the T steps for ops in the loop):",
            "",
            "| op (layer, kernel) | ms / iteration | share of op time |",
            "|---|---:|---:|",
        ]
        lines += [f"| {op['op']} | {op['ms_per_iter']:.1f} | {_percent(op['share'])} |" for op in profile["top_ops"]]
        lines.append("")
    variants = default.get("output_layer_ms")
    if variants:
        keras_ms = variants.get("keras", variants.get("keras_conv2d_transpose"))  # (its name until issue 21)
        best = min(variants, key=variants.get)
        saving = 15 * (keras_ms - variants[best])
        lines += [
            "The output layer ConvT(32 -> 1, 3x3, stride 1) does 2% of the FLOPs but oneDNN's backward-data "
            "kernel with one channel is slow. Forward + input gradient of that layer alone, three exact "
            "formulations (checked equal, `benchmark.output_layer_variants`), ms per call:",
            "",
            "| formulation | ms |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {ms:.2f} |" for name, ms in variants.items()]
        lines += ["",
                  f"The fastest, {best}, saves about {saving:.0f} ms per iteration (T = 15 calls) "
                  f"against {keras_ms:.2f} ms each"
                  + (": adopted as `models.OutputDeconv` (a Conv2DTranspose with the same weights, so "
                     "checkpoints load either way; stride-1 output blocks only), in the reference pair and "
                     "the ladder generator; the whole step's gain is in the table below."
                     if best == "depthwise_then_sum" else "."), ""]
    repeats = [again["ms_per_iter"]] + ([default["modes"]["function_interleaved"]["ms_per_iter"]]
                                        if "function_interleaved" in default["modes"] else [])
    noise = max(abs(ms / r - 1) for r in repeats)
    lines += [
        "## Levers",
        "",
        "Each row changes one thing against the default path (tf.function, float32, TensorFlow's "
        "thread defaults, oneDNN on); `vs default` is the speed change against the first default "
        f"timing above (positive: faster). Noise band: the default path's repeats in this session differ "
        f"from it by up to {noise:.0%}; a change within that is no effect.",
        "",
        "| lever | ms / iteration | images / s | GFLOP/s | of matmul | vs default | decision |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    if "xla" in default["modes"]:
        lines.append(_row("XLA (jit_compile=True)", default["modes"]["xla"], ms, XLA_DECISION))
    decisions = {lever.name: lever.decision for lever in LEVERS}  # the current reading, also on --rerender
    for lever in measured["levers"]:
        lines.append(_row(lever["name"], lever["result"]["modes"]["function"], ms,
                          decisions.get(lever["name"], lever["decision"])))
    lines.append("")
    counterfactuals = measured.get("counterfactuals")
    if counterfactuals:
        lines += [
            "### Code-path levers, timed in alternation",
            "",
            "The default step and one counterfactual step, called in alternation in one process "
            "(`python -m hiabp_tf.benchmark --against=...`, "
            f"{2 * config['iterations']} calls each), so that the machine's drift falls on both alike. "
            "*Slower by*: the median over the pairs of counterfactual / default time, minus one "
            "(positive: the default is faster), with the quartiles of that ratio.",
            "",
            "| lever | network | default ms | counterfactual ms | slower by (quartiles) | decision |",
            "|---|---|---:|---:|---|---|",
        ]
        for name, (label, decision) in COUNTERFACTUALS.items():
            for arch, result in counterfactuals.items():
                figs = result.get("against", {}).get(name)
                if figs is None:
                    continue
                low, _, high = figs["ratio_quartiles"]
                lines.append(f"| {label} | {arch} | {figs['default_ms']:.0f} | {figs['counterfactual_ms']:.0f} | "
                             f"{figs['ratio'] - 1:+.1%} ({low - 1:+.1%} .. {high - 1:+.1%}) | {decision} |")
                label, decision = "", ""  # once per lever
        lines.append("")
    parallel = measured.get("parallel")
    if parallel:
        ways = parallel["ways"]
        base = next(iter(ways.values()))
        fastest = min(ways, key=ways.get)
        lines += [
            "### Two trainings at a time",
            "",
            f"`{parallel['flagfile']}` trained twice, {parallel['num_steps']} updates each (start-up and the "
            "final evaluation included): the wall time until both are done.",
            "",
            "| how | wall time (s) | vs one after the other |",
            "|---|---:|---:|",
        ]
        lines += [f"| {way} | {sec:.0f} | {base / sec - 1:+.0%} |" for way, sec in ways.items()]
        lines += ["", f"Fastest: {fastest}. `run.sh` trains two runs at a time with one intra-op thread "
                  "each on a 2-core machine (`HIABP_JOBS`, `TF_NUM_INTRAOP_THREADS` override it).", ""]
    quality = measured.get("bf16_quality")
    if quality:
        f32, b16 = quality["float32"], quality["bfloat16"]
        lines += [
            "### bfloat16: effect on quality",
            "",
            "flags/mnist5k_iabp.flags trained and evaluated (`python -m hiabp_tf.evaluate`, whole test "
            "split) once per precision, same seed and steps:",
            "",
            "| precision | test MSE [E+L] | test MSE [E] | training wall time (s) |",
            "|---|---:|---:|---:|",
            f"| float32 | {f32['mse_EL']:.5f} | {f32['mse_E']:.5f} | {f32['train_wall_s']} |",
            f"| bfloat16 | {b16['mse_EL']:.5f} | {b16['mse_E']:.5f} | {b16['train_wall_s']} |",
            "",
            f"Relative change of test MSE [E+L] in bfloat16: {(b16['mse_EL'] / f32['mse_EL'] - 1):+.1%}; "
            f"training wall time {(b16['train_wall_s'] / f32['train_wall_s'] - 1):+.0%} (including start-up "
            "and evaluations during training).",
            "",
        ]
    lines += [
        "## The project's networks (`--arch=flags`)",
        "",
        "The default path on the paper-scale flag files' networks (random images of the dataset's shape: "
        "the tensorflow-datasets data cannot be downloaded here; speed does not depend on pixel values).",
        "",
        "| flag file | image | L | width | batch | T | GFLOP / iteration | ms / iteration | images / s | GFLOP/s "
        "| of matmul |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in measured["flag_archs"].items():
        c, figs = result["config"], result["modes"]["function"]
        lines.append(
            f"| {name} | {'x'.join(map(str, c['image_shape']))} | {c['num_layers']} | {c['width']} | "
            f"{c['batch_size']} | {c['langevin_steps']} | {result['flops_per_iteration']['per_iteration'] / 1e9:.1f} | "
            f"{figs['ms_per_iter']:.0f} | {figs['images_per_s']:.0f} | {figs['gflops_per_s']:.1f} | "
            f"{_percent(figs['fraction_of_matmul'])} |")
    lines += render_shapes(measured.get("shapes"), measured.get("output_layers"),
                           measured.get("shapes_measured"))
    lines += ["", "Raw JSON of every benchmark process: `performance.json` beside this file.", ""]
    return "\n".join(lines)


def render_shapes(shapes: dict | None, output_layers: dict | None, when: str | None = None) -> list[str]:
    """The image shapes side by side: each shape's speed against the gray workhorse's, and the output
    block r's formulations at each shape (how `models.OUTPUT_FORMULATION_BY_CHANNELS` was chosen)."""
    if not shapes:
        return []
    from hiabp_tf.core import models  # the formulations each channel count uses

    lines = ["## Image shapes side by side", "",
             (f"Measured {when} (`--only_shapes`), with nothing else running. " if when else "")
             + "HiABP L = 4 with the cpu scale's networks (width 32), one intra-op thread (as each of two "
             "trainings side by side), the default path, per precision; *of gray*: the GFLOP/s against "
             f"28x28x1's in the same precision (issue 21's bar: >= {_percent(TARGET_FRACTION_OF_GRAY)} for every "
             "shape). The output block r computes as `models.OUTPUT_FORMULATION_BY_CHANNELS` says: "
             + ", ".join(f"{c} channel{'s' * (c > 1)}: {f}" for c, f in models.OUTPUT_FORMULATION_BY_CHANNELS.items())
             + ".", "",
             "| precision | image | GFLOP / iteration | ms / iteration | GFLOP/s | of gray | of matmul |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for precision, results in shapes.items():
        gray = next(iter(results.values()))["modes"]["function"]["gflops_per_s"]
        for label, result in results.items():
            figs = result["modes"]["function"]
            lines.append(f"| {precision} | {label} | {result['flops_per_iteration']['per_iteration'] / 1e9:.1f} | "
                         f"{figs['ms_per_iter']:.0f} | {figs['gflops_per_s']:.1f} | "
                         f"{_percent(figs['gflops_per_s'] / gray)} | {_percent(figs['fraction_of_matmul'])} |")
    lines.append("")
    if output_layers:
        names = list(next(iter(output_layers.values())))
        lines += ["The output block r alone at each shape (its input channels, 4x4 kernel, stride 1, batch 100): "
                  "forward + input gradient (what every Langevin step computes), ms per call, by formulation "
                  "(`benchmark.output_layer_variants`, checked equal):", "",
                  "| shape (side x channels in x channels out x kernel), precision | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        lines += [f"| {shape} | " + " | ".join(f"{ms[n]:.2f}" for n in names) + " |"
                  for shape, ms in output_layers.items()]
        lines.append("")
    return lines


XLA_DECISION = ("rejected: XLA:CPU compiles the convolutions itself instead of calling oneDNN's; compare "
                "the oneDNN-off row, which is also without oneDNN convolutions")


def define_flags():
    flags.DEFINE_string("out", "results/performance.md", "The Markdown file to write (JSON beside it).")
    flags.DEFINE_integer("iterations", 10, "Timed iterations per benchmark.")
    flags.DEFINE_string("runs_dir", "runs/performance", "Workdirs of the bfloat16 quality runs.")
    flags.DEFINE_integer("bf16_steps", 300, "Training steps of the bfloat16 quality runs (0: skip).")
    flags.DEFINE_integer("parallel_steps", 150,
                         "Training steps of each run of the two-at-a-time measurement (0: skip).")
    flags.DEFINE_list("flag_archs", list(FLAG_ARCHS), "flags/NAME.flags files to benchmark.")
    flags.DEFINE_bool("rerender", False, "Only rewrite --out from the JSON of the last measurement beside it.")
    flags.DEFINE_bool("only_shapes", False, "Only measure the image shapes side by side (and the output block's "
                      "formulations at each), into the JSON of the last measurement, and rewrite --out.")


FLAGS = flags.FLAGS


def main():
    command = "python -m hiabp_tf.tools.performance " + " ".join(
        f"--{name}={','.join(value) if isinstance(value, list) else value}"
        for name, value in (("out", FLAGS.out), ("iterations", FLAGS.iterations), ("bf16_steps", FLAGS.bf16_steps),
                            ("parallel_steps", FLAGS.parallel_steps)))
    json_path = os.path.splitext(FLAGS.out)[0] + ".json"
    if FLAGS.rerender or FLAGS.only_shapes:
        with open(json_path) as f:
            measured = json.load(f)
        command = measured.get("command", command)
        if FLAGS.only_shapes:
            measured.update(shapes=measure_shapes(FLAGS.iterations), output_layers=measure_output_layers(),
                            shapes_measured=f"{datetime.datetime.now().isoformat(timespec='minutes')} on "
                                            f"{hardware.describe()}")
            with open(json_path + ".tmp", "w") as f:
                json.dump(measured, f, indent=1)
            os.replace(json_path + ".tmp", json_path)
    else:
        measured = measure(FLAGS.iterations, FLAGS.runs_dir, FLAGS.bf16_steps, tuple(FLAGS.flag_archs),
                           parallel_steps=FLAGS.parallel_steps)
        measured["command"] = command
        os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
        with open(json_path + ".tmp", "w") as f:
            json.dump(measured, f, indent=1)
        os.replace(json_path + ".tmp", json_path)
    with open(FLAGS.out + ".tmp", "w") as f:
        f.write(render(measured, command))
    os.replace(FLAGS.out + ".tmp", FLAGS.out)
    logging.info("Wrote %s and %s", FLAGS.out, json_path)


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)
