r"""Times one full training iteration of Algorithm 1 (initialize, T Langevin steps, both updates).

    python -m hiabp_tf.benchmark --arch=reference
    python -m hiabp_tf.benchmark --arch=flags --arch_flagfile=flags/svhn_hiabp_l4.flags
    python -m hiabp_tf.benchmark --arch=reference --modes=function --peer=torch

For each mode (eager, `tf.function`, `tf.function(jit_compile=True)`) it runs warm-up iterations,
then times `--iterations` iterations one by one and reports the median. In the same run it measures
the machine's practical float32 ceiling (a large matmul) and the input pipeline's share of a step.
The last line of stdout is one JSON object with, per mode, ms_per_iter, images_per_s,
langevin_steps_per_s, gflops_per_s (from the analytic FLOP count of `iteration_flops`) and the
fraction of machine_matmul_gflops_per_s, plus the config.

`--arch=reference` is a fixed one-layer pair (see `reference_networks`), so the figure can be set
beside any other framework's implementation of the same iteration; `--peer=torch` times a plain
eager PyTorch implementation of it (`hiabp_tf.tools.torch_peer`) interleaved with ours in the same run.
Timing belongs here, never in a test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time

from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.checks import errors
from hiabp_tf.core import algorithm
from hiabp_tf.core import langevin
from hiabp_tf.core import models
from hiabp_tf.data import input_pipeline

MODES = ("eager", "function", "xla")
LEAK = 0.1


# ------------------------------------------------------------------------ the reference pair

REFERENCE = dict(image_shape=(28, 28, 1), latent_dim=64, batch_size=100, langevin_steps=15,
                 step_size=0.15, sigma=0.3, learning_rate=3e-4)


class ReferenceGenerator(keras.Model):
    """z(64) -> Dense(7*7*64) -> 7x7x64 -> ConvT(64, 4, 2) -> ConvT(32, 4, 2) -> ConvT(1, 3, 1) + sigmoid.

    Takes a one-element list of latents, like `models.Generator` with L = 1."""

    def __init__(self):
        super().__init__(name="reference_generator")
        self.output_block = models.OutputDeconv(1, 3, strides=1, padding="same", activation="sigmoid")
        self.net = keras.Sequential([
            keras.layers.Dense(7 * 7 * 64), keras.layers.LeakyReLU(LEAK),
            keras.layers.Reshape((7, 7, 64)),
            keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same"), keras.layers.LeakyReLU(LEAK),
            keras.layers.Conv2DTranspose(32, 4, strides=2, padding="same"), keras.layers.LeakyReLU(LEAK),
            self.output_block,
        ])

    def call(self, latents):
        (z,) = latents
        return tf.cast(self.net(z), tf.float32)  # float32 out under a bfloat16 policy too


class ReferenceEncoder(keras.Model):
    """Conv(32, 4, 2) -> Conv(64, 4, 2) -> Flatten -> Dense(2*64) split into (mu, log sigma).

    Returns ([mu], [log_sigma]), like `models.Encoder` with L = 1."""

    def __init__(self, latent_dim=64):
        super().__init__(name="reference_encoder")
        self.latent_dim = latent_dim
        self.net = keras.Sequential([
            keras.layers.Conv2D(32, 4, strides=2, padding="same"), keras.layers.LeakyReLU(LEAK),
            keras.layers.Conv2D(64, 4, strides=2, padding="same"), keras.layers.LeakyReLU(LEAK),
            keras.layers.Flatten(), keras.layers.Dense(2 * latent_dim),
        ])

    def call(self, images):
        mu, log_sigma = tf.split(tf.cast(self.net(images), tf.float32), 2, axis=-1)
        return [mu], [log_sigma]


def reference_networks():
    generator, encoder = ReferenceGenerator(), ReferenceEncoder(REFERENCE["latent_dim"])
    generator([tf.zeros((1, REFERENCE["latent_dim"]))])
    encoder(tf.zeros((1,) + REFERENCE["image_shape"]))
    return generator, encoder


# ------------------------------------------------------------------------------- FLOP count

def _op_flops(op) -> int:
    """Multiply-adds x 2 of the matmul / convolution ops (elementwise ops are not counted)."""
    def shape(tensor):
        return tensor.shape.as_list()
    if op.type == "MatMul":
        a, b = shape(op.inputs[0]), shape(op.inputs[1])
        m = a[1] if op.get_attr("transpose_a") else a[0]
        k = a[0] if op.get_attr("transpose_a") else a[1]
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2 * m * k * n
    if op.type == "Conv2D":  # every output element is a kh*kw*C_in dot product
        kh, kw, c_in, _ = shape(op.inputs[1])
        return 2 * int(np.prod(shape(op.outputs[0]))) * kh * kw * c_in
    if op.type == "Conv2DBackpropInput":  # a transposed conv: every input element fans out to kh*kw*C_out
        kh, kw, c_out, _ = shape(op.inputs[1])
        return 2 * int(np.prod(shape(op.inputs[2]))) * kh * kw * c_out
    if op.type == "DepthwiseConv2dNative":  # every output element is a kh*kw dot product (block r)
        kh, kw, _, _ = shape(op.inputs[1])
        return 2 * int(np.prod(shape(op.outputs[0]))) * kh * kw
    return 0


def forward_flops(fn, *specs) -> int:
    """FLOPs of one call of `fn` on inputs of the given TensorSpecs, read off its traced graph."""
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return sum(_op_flops(op) for op in graph.get_operations())


def iteration_flops(generator, encoder, latent_dims, image_shape, batch_size, langevin_steps,
                    method="hiabp") -> dict:
    """Analytic FLOPs of one training iteration, counting a backward pass as two forwards (input
    and weight gradients; the unneeded input gradient of a network's first layer is counted: under
    2% here). Elementwise ops (activations, noise, the optimiser) are not counted.

        hiabp:  encoder forward (shared by z_0 and eq. 5) + backward      3 F_enc
                T x (generator forward + input gradient)                  2 T F_gen
                generator update: forward at z_T + backward               3 F_gen
        abp, abp_persistent: the last two;  vae, vlae, lvae: 3 F_enc + 3 F_gen (one sample).
    """
    z_specs = [tf.TensorSpec((batch_size, d), tf.float32) for d in latent_dims]
    f_gen = forward_flops(lambda *z: generator(list(z)), *z_specs)
    f_enc = 0
    if encoder is not None:
        f_enc = forward_flops(encoder, tf.TensorSpec((batch_size,) + tuple(image_shape), tf.float32))
    if method in ("hiabp", "abp", "abp_persistent"):
        total = 3 * f_enc + 2 * langevin_steps * f_gen + 3 * f_gen
    else:  # the variational baselines (LVAE's prior networks are not counted)
        total = 3 * f_enc + 3 * f_gen
    return dict(generator_forward=f_gen, encoder_forward=f_enc, per_iteration=total)


# ------------------------------------------------------------------------------- measurement

def matmul_gflops_per_s(n=2048, repeats=10) -> float:
    """The practical float32 ceiling: a large matmul, median of `repeats` timed calls."""
    a = tf.random.stateless_normal((n, n), [1, 2])
    b = tf.random.stateless_normal((n, n), [3, 4])
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def time_calls(fn, iterations, warmup) -> list[float]:
    """Seconds of each of `iterations` calls of `fn` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(fn_a, fn_b, iterations, warmup) -> tuple[list[float], list[float]]:
    """Seconds of `iterations` calls of each of fn_a and fn_b, called in alternation (a, b, b, a,
    a, b, ...), so that the machine's drift and its neighbours' load fall on both alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times = ([], [])
    for i in range(iterations):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            start = time.perf_counter()
            (fn_a, fn_b)[which]()
            times[which].append(time.perf_counter() - start)
    return times


def _block(outputs) -> float:
    """Fetches one scalar of a step's results to the host, so a timed call includes all its work."""
    return float(outputs["generator_loss"])


def read_flagfile(path, overrides=()) -> config_lib.RunConfig:
    """The RunConfig of a train.py flagfile, or of several read in order (an experiment, then its
    scale's overlays), with `overrides` ("NAME=VALUE" strings, --arch_set) after them; its
    bookkeeping flags are not needed here."""
    paths = [path] if isinstance(path, str) else list(path)
    for one in paths:
        if not os.path.isfile(one):
            raise errors.ConfigError(f"--arch_flagfile={one}: file not found (try one of flags/*.flags).")
    settings = dict(item.split("=", 1) for item in overrides if "=" in item)
    if len(settings) != len(overrides):
        raise errors.ConfigError(f"--arch_set={','.join(overrides)}: give NAME=VALUE items.")
    return config_lib.load_flagfile(paths, **settings)[0]


def _image_shape(dataset: str) -> tuple:
    known = {"mnist_5k": (28, 28, 1), "mnist": (28, 28, 1), "svhn_cropped": (32, 32, 3), "celeb_a": (64, 64, 3)}
    if dataset in known:
        return known[dataset]
    _, info = input_pipeline.make_train_dataset(dataset, 1)
    return info.image_shape


@dataclasses.dataclass
class Setup:
    """A model ready to time, one batch for it, and a dataset to time the input pipeline on."""
    model: tf.Module
    batch: dict
    flops: dict
    dataset: tf.data.Dataset
    config: dict


def _train_dataset(image_shape, batch_size, tmpdir):
    """The real training pipeline: mnist_5k for 28x28x1, else an npz of random images (the tfds
    datasets cannot be downloaded here; the pipeline is the same)."""
    if tuple(image_shape) == (28, 28, 1):
        return input_pipeline.make_train_dataset("mnist_5k", batch_size, seed=0)[0]
    path = os.path.join(tmpdir, "random_images.npz")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(max(batch_size, 1000),) + tuple(image_shape), dtype=np.uint8)
    np.savez(path, x_train=images, x_test=images[:10])
    return input_pipeline.make_train_dataset(f"npz:{path}", batch_size, seed=0)[0]


def make_setup(arch: str, arch_flagfile: str | None, tmpdir: str, precision: str = "float32",
               arch_set=()) -> Setup:
    keras.utils.set_random_seed(0)
    if arch == "reference":
        hparams = algorithm.Hyperparameters(
            langevin_steps=REFERENCE["langevin_steps"], step_size=REFERENCE["step_size"],
            sigma=REFERENCE["sigma"], learning_rate=REFERENCE["learning_rate"])
        image_shape, latent_dims = REFERENCE["image_shape"], (REFERENCE["latent_dim"],)
        with models.precision_policy(precision):
            networks = reference_networks()
        model = methods.HiABP(models.Architecture(image_shape, latent_dims), hparams, networks=networks)
        batch_size, method, steps = REFERENCE["batch_size"], "hiabp", REFERENCE["langevin_steps"]
        config = dict(arch="reference", **{k: v for k, v in REFERENCE.items() if k != "image_shape"},
                      image_shape=list(image_shape), method=method)
    elif arch == "flags":
        if not arch_flagfile:
            raise errors.ConfigError("--arch=flags needs --arch_flagfile=flags/NAME.flags.")
        run = dataclasses.replace(read_flagfile(arch_flagfile, arch_set), precision=precision)
        image_shape = _image_shape(run.dataset)
        model = methods.build_model(run, image_shape, 60000)
        batch_size, method, steps, latent_dims = run.batch_size, run.method, run.langevin_steps, run.latent_dims
        config = dict(arch="flags", arch_flagfile=arch_flagfile, arch_set=list(arch_set), **run.to_json(),
                      image_shape=list(image_shape))
    else:
        raise errors.ConfigError(f"--arch={arch!r}: use reference or flags.")
    config["precision"] = precision
    dataset = _train_dataset(image_shape, batch_size, tmpdir)
    batch = next(iter(dataset))
    flops = iteration_flops(model.generator, getattr(model, "encoder", None), latent_dims, image_shape,
                            batch_size, steps, method)
    return Setup(model, batch, flops, dataset, config)


def _learn(model, x, z_t, encoder_tape, loss_phi):
    """Learning (eq. 4 and 5) of the counterfactual steps: both Adamax updates; returns eq. 4's loss."""
    with tf.GradientTape() as generator_tape:
        loss_theta, _ = algorithm.generator_loss(model.generator, x, z_t, model.hparams.sigma)
    generator_vars, encoder_vars = model.generator.trainable_variables, model.encoder.trainable_variables
    model.generator_optimizer.apply_gradients(zip(generator_tape.gradient(loss_theta, generator_vars), generator_vars))
    model.encoder_optimizer.apply_gradients(zip(encoder_tape.gradient(loss_phi, encoder_vars), encoder_vars))
    return loss_theta


def naive_train_step(model, batch, seed, mask=None):
    """Algorithm 1 as a straightforward implementation writes it, for the lever table only: the
    encoder runs twice (once for z_0, once under the tape for eq. 5) and the generator once more
    for the energy at z_T (the default step shares these passes)."""
    del mask
    x = batch["image"]
    init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z0, _, _ = algorithm.initializing(model.encoder, x, init_seed)
    z_t, _ = algorithm.improving(model.generator, x, z0, model.hparams, langevin_seed)
    energy_t = langevin.gaussian_generator_energy(model.generator, x, model.hparams.sigma)(z_t)
    with tf.GradientTape() as encoder_tape:
        mus, log_sigmas = model.encoder(x)
        loss_phi = algorithm.encoder_loss(mus, log_sigmas, z_t)
    loss_theta = _learn(model, x, z_t, encoder_tape, loss_phi)
    return {"generator_loss": loss_theta, "encoder_loss": loss_phi, "energy_zT": energy_t}


def unrolled_train_step(model, batch, seed, mask=None):
    """The default step with the T Langevin steps unrolled into the graph (straight-line code)
    instead of one graph while-loop, for the lever table only."""
    del mask
    x = batch["image"]
    init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    with tf.GradientTape() as encoder_tape:
        z0, mus, log_sigmas = algorithm.initializing(model.encoder, x, init_seed)
        with encoder_tape.stop_recording():
            energy_fn = langevin.gaussian_generator_energy(model.generator, x, model.hparams.sigma)
            z_t, _ = langevin.langevin_dynamics(energy_fn, z0, model.hparams.langevin_steps,
                                                model.hparams.step_size, langevin_seed, unroll=True)
        loss_phi = algorithm.encoder_loss(mus, log_sigmas, z_t)
    return {"generator_loss": _learn(model, x, z_t, encoder_tape, loss_phi), "encoder_loss": loss_phi}


class _output_formulation:
    """While a step is traced, the generator's output block r computes with `formulation`."""

    def __init__(self, model, formulation):
        self.layer, self.formulation = model.generator.output_block, formulation

    def __enter__(self):
        self.previous, self.layer.formulation = self.layer.formulation, self.formulation

    def __exit__(self, *exc):
        self.layer.formulation = self.previous


def keras_output_layer_train_step(model, batch, seed, mask=None):
    """The default step with the output block r computed by Keras' Conv2DTranspose kernel instead
    of `models.OutputDeconv`'s depthwise form (the same weights and function), for the lever table."""
    with _output_formulation(model, "keras"):
        return type(model).train_step.python_function(model, batch, seed, mask)


STEPS = {"default": None, "naive": naive_train_step, "unrolled": unrolled_train_step,
         "keras_output_layer": keras_output_layer_train_step}
COUNTERFACTUALS = tuple(name for name in STEPS if name != "default")


def step_function(model, mode: str, step: str = "default"):
    """The training step to time in `mode`: eager (run_functions_eagerly), function (the
    project's default path: the model's own tf.function) or xla (the same, jit_compile=True).
    `step` picks a counterfactual step for the lever table (naive, unrolled)."""
    python_step = type(model).train_step.python_function
    if step != "default":
        if not isinstance(model, methods.HiABP) and step != "keras_output_layer":
            raise errors.ConfigError(f"--step={step} exists for method hiabp only.")
        python_step = STEPS[step]
        if mode == "function":
            return tf.function(lambda batch, seed: python_step(model, batch, seed))
    if mode == "function":
        return model.train_step
    if mode == "xla":
        return tf.function(lambda batch, seed: python_step(model, batch, seed), jit_compile=True)
    if mode == "eager":
        return lambda batch, seed: python_step(model, batch, seed)
    raise errors.ConfigError(f"--modes: unknown mode {mode!r}; use {', '.join(MODES)}.")


def figures(seconds: float, setup: Setup, matmul: float) -> dict:
    batch_size = int(setup.batch["image"].shape[0])
    steps = setup.config["langevin_steps"]
    gflops = setup.flops["per_iteration"] / seconds / 1e9
    return dict(ms_per_iter=round(1000 * seconds, 2), images_per_s=round(batch_size / seconds, 1),
                langevin_steps_per_s=round(steps / seconds, 2), gflops_per_s=round(gflops, 3),
                fraction_of_matmul=round(gflops / matmul, 3))


def time_input_pipeline(setup: Setup, step, iterations: int, seed) -> dict:
    """Trains `iterations` steps reading batches from the real pipeline, timing the wait for each
    batch separately: the pipeline's share of the step (it should be ~0: cache + prefetch)."""
    iterator = iter(setup.dataset)
    _block(step(next(iterator), seed))
    waits, totals = [], []
    for _ in range(iterations):
        start = time.perf_counter()
        batch = next(iterator)
        waited = time.perf_counter() - start
        _block(step(batch, seed))
        waits.append(waited)
        totals.append(time.perf_counter() - start)
    return dict(input_wait_ms_per_iter=round(1000 * statistics.median(waits), 3),
                input_share=round(sum(waits) / sum(totals), 4))


def run(arch="reference", arch_flagfile=None, modes=("eager", "function", "xla"), iterations=10,
        eager_iterations=3, warmup=2, precision="float32", peer="none", matmul_size=2048,
        input_pipeline_iterations=5, step="default", profile_dir=None, tmpdir=None, against=(), arch_set=()) -> dict:
    """Runs the benchmark and returns the result dict (what main prints as JSON).

    `against`: counterfactual steps (COUNTERFACTUALS), each timed in alternation with the default
    `tf.function` step in the same process (`time_interleaved`): result["against"][name] holds both
    medians and the median of the per-pair ratios counterfactual / default (> 1: the default is
    faster), which the machine's noise affects far less than separate timings."""
    import tempfile
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        setup = make_setup(arch, arch_flagfile, tmp, precision, arch_set)
        seed = tf.constant([0, 1], tf.int32)
        matmul_samples = [matmul_gflops_per_s(matmul_size)]
        result = dict(config=dict(setup.config, step=step, iterations=iterations, warmup=warmup,
                                  eager_iterations=eager_iterations, threads=_thread_settings()),
                      flops_per_iteration=setup.flops, modes={})
        timings = {}
        for mode in modes:
            step_fn = step_function(setup.model, mode, step)
            count = eager_iterations if mode == "eager" else iterations
            timings[mode] = time_calls(lambda: _block(step_fn(setup.batch, seed)), count, warmup)
            matmul_samples.append(matmul_gflops_per_s(matmul_size))
        for name in against:
            if name not in COUNTERFACTUALS:
                raise errors.ConfigError(f"--against: unknown step {name!r}; use {', '.join(COUNTERFACTUALS)}.")
            default_step = step_function(setup.model, "function")
            other_step = step_function(setup.model, "function", name)
            default_times, other_times = time_interleaved(
                lambda: _block(default_step(setup.batch, seed)), lambda: _block(other_step(setup.batch, seed)),
                iterations, warmup)
            result.setdefault("against", {})[name] = dict(
                default_ms=round(1000 * statistics.median(default_times), 2),
                counterfactual_ms=round(1000 * statistics.median(other_times), 2),
                ratio=round(statistics.median(o / d for o, d in zip(other_times, default_times)), 4),
                ratio_quartiles=[round(q, 4) for q in statistics.quantiles(
                    [o / d for o, d in zip(other_times, default_times)], n=4)])
            matmul_samples.append(matmul_gflops_per_s(matmul_size))
        if peer == "torch":
            result["peer"] = time_torch_peer(setup, iterations, warmup, timings, seed)
            matmul_samples.append(matmul_gflops_per_s(matmul_size))
        matmul = statistics.median(matmul_samples)
        for mode, times in timings.items():
            result["modes"][mode] = figures(statistics.median(times), setup, matmul)
        if profile_dir:
            result["profile"] = profile_breakdown(step_function(setup.model, "function", step),
                                                  setup.batch, seed, profile_dir)
        if profile_dir and arch == "reference":
            result["output_layer_ms"] = output_layer_variants()
            # The ladder generator's r at every supported image shape, by formulation.
            result["output_layer_ms_by_shape"] = {
                f"{'x'.join(map(str, shape))} {p}": output_layer_variants(shape=shape, precision=p)
                for shape in OUTPUT_SHAPES for p in ("float32", "bfloat16")}
        if input_pipeline_iterations:
            result["input_pipeline"] = time_input_pipeline(
                setup, step_function(setup.model, "function"), input_pipeline_iterations, seed)
    default = "function" if "function" in result["modes"] else next(iter(result["modes"]))
    result.update(result["modes"][default], default_mode=default,
                  machine_matmul_gflops_per_s=round(matmul, 1),
                  matmul_samples_gflops_per_s=[round(m, 1) for m in matmul_samples])
    if "peer" in result:
        peer_ms = result["peer"]["ms_per_iter"]
        result["peer"]["speedup_of_default_over_peer"] = round(peer_ms / result["ms_per_iter"], 3)
    return result


# The output blocks r of the supported image shapes: (side, input channels of r at width 32, image
# channels) with the ladder generator's 4x4 stride-1 kernel; and the reference pair's 3x3 one.
OUTPUT_SHAPES = ((28, 32, 1, 4), (32, 32, 3, 4), (64, 32, 3, 4))
REFERENCE_OUTPUT = (28, 32, 1, 3)


def output_layer_variants(batch_size=100, repeats=20, shape=REFERENCE_OUTPUT, precision="float32") -> dict:
    """Forward + input gradient (what each Langevin step computes) of an output block r,
    `models.OutputDeconv` at `shape` = (side, input channels, image channels, kernel), stride 1,
    computed by each of its formulations (`models.OUTPUT_FORMULATIONS`, checked equal): Keras'
    Conv2DTranspose (oneDNN's transposed kernel, slow with few channels), a convolution with the
    flipped kernel, and a depthwise convolution followed by a sum over channels. Milliseconds per
    call, in `precision` (the layer's compute dtype)."""
    side, in_channels, out_channels, kernel = shape
    with models.precision_policy(precision):
        layers = {name: models.OutputDeconv(out_channels, kernel, strides=1, padding="same", formulation=name)
                  for name in models.OUTPUT_FORMULATIONS}
    h = tf.cast(tf.random.stateless_normal((batch_size, side, side, in_channels), [5, 6]),
                layers["keras"].compute_dtype)
    reference = layers["keras"](h)
    for layer in layers.values():
        layer(h)
        layer.set_weights(layers["keras"].get_weights())
    result = {}
    for name, layer in layers.items():
        np.testing.assert_allclose(tf.cast(layer(h), tf.float32).numpy(), tf.cast(reference, tf.float32).numpy(),
                                   atol=1e-4 if precision == "float32" else 0.1)  # bfloat16: 8 bits of mantissa

        @tf.function
        def forward_and_input_gradient(h, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(h)
                out = tf.reduce_sum(tf.square(layer(h)))
            return tape.gradient(out, h)
        times = time_calls(lambda: forward_and_input_gradient(h).numpy(), repeats, 2)
        result[name] = round(1000 * statistics.median(times), 2)
    return result


def profile_breakdown(step, batch, seed, logdir, iterations=3, top=15) -> dict:
    """Where the time of a step goes: runs `iterations` steps under the TensorFlow profiler (the
    trace is kept in `logdir` for TensorBoard's trace viewer) and sums each op's device time per
    iteration over the executor threads. Returns the `top` ops and the Langevin loop's share."""
    import collections
    import glob
    import re

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    _block(step(batch, seed))
    tf.profiler.experimental.start(logdir)
    for _ in range(iterations):
        _block(step(batch, seed))
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1], "rb") as f:
        space.ParseFromString(f.read())
    per_op, step_ps = collections.Counter(), 0
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if name.startswith("EagerLocalExecute"):  # the whole step, on the calling thread
                    step_ps += event.duration_ps
                elif (line.name.startswith("tf_Compute") and ":" in name
                      and not name.startswith("ExecutorState")):  # "op name:kernel"
                    per_op[name] += event.duration_ps
    # Name ops by layer and direction: drop loop-body prefixes and Keras' numeric suffixes.
    def layer_op(name):
        op, kernel = name.rsplit(":", 1)
        in_loop = "while/body" in op
        op = re.sub(r"^.*?while/body/_\d+/", "", op)
        op = re.sub(r"(while/)+", "", op)
        op = re.sub(r"_\d+(?=/|$)", "", op)
        return ("Langevin loop: " if in_loop else "outside the loop: ") + f"{op} ({kernel})"
    grouped = collections.Counter()
    for name, ps in per_op.items():
        grouped[layer_op(name)] += ps
    step_ms = step_ps / 1e9 / iterations
    total = sum(grouped.values()) or 1
    loop = sum(ps for name, ps in grouped.items() if name.startswith("Langevin"))
    return dict(step_ms=round(step_ms, 1), op_ms=round(total / 1e9 / iterations, 1),
                langevin_loop_share_of_op_time=round(loop / total, 3), logdir=logdir,
                top_ops=[dict(op=name, ms_per_iter=round(ps / 1e9 / iterations, 2), share=round(ps / total, 3))
                         for name, ps in grouped.most_common(top)])


def _thread_settings() -> dict:
    return dict(intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
                inter_op=tf.config.threading.get_inter_op_parallelism_threads(),
                cpu_count=os.cpu_count(),
                onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"))


def time_torch_peer(setup: Setup, iterations, warmup, timings, seed, rounds=3) -> dict:
    """Times the plain eager PyTorch iteration interleaved with our default path: `rounds` rounds
    of (ours x n, peer x n), so both see the same machine state."""
    if setup.config["arch"] != "reference":
        raise errors.ConfigError("--peer=torch needs --arch=reference (the peer implements that pair).")
    try:
        import torch
    except ImportError:
        raise errors.ConfigError(
            "--peer=torch needs PyTorch, which is not in requirements.txt: `pip install torch==2.13.0` "
            "into the same environment (./run.sh performance does it).") from None
    from hiabp_tf.tools import torch_peer
    iteration = torch_peer.Iteration(torch, setup.batch["image"].numpy(), REFERENCE["langevin_steps"],
                                     REFERENCE["step_size"], REFERENCE["sigma"], REFERENCE["learning_rate"],
                                     REFERENCE["latent_dim"], threads=os.cpu_count())
    ours = setup.model.train_step
    per_round = max(1, iterations // rounds)
    peer_times, our_times = [], []
    time_calls(iteration, 0, warmup)
    for _ in range(rounds):
        our_times += time_calls(lambda: _block(ours(setup.batch, seed)), per_round, 1)
        peer_times += time_calls(iteration, per_round, 1)
    timings["function_interleaved"] = our_times
    return dict(framework=f"torch {torch.__version__} eager", threads=torch.get_num_threads(),
                ms_per_iter=round(1000 * statistics.median(peer_times), 2),
                ours_interleaved_ms_per_iter=round(1000 * statistics.median(our_times), 2))


def define_flags():
    flags.DEFINE_enum("arch", "reference", ["reference", "flags"],
                      "reference: the fixed pair of the module docstring; flags: --arch_flagfile's networks.")
    flags.DEFINE_list("arch_flagfile", None, "A train.py flagfile (flags/NAME.flags) for --arch=flags, or several "
                      "read in order, e.g. flags/celeba_hiabp_l4.flags,flags/cpu.flags,flags/cpu_celeba.flags.")
    flags.DEFINE_list("arch_set", [], "NAME=VALUE flags of hiabp_tf.train set after --arch_flagfile, e.g. "
                      "dataset=svhn_cropped (a 32x32x3 shape without its data: the benchmark times random images).")
    flags.DEFINE_list("modes", list(MODES), "Which of eager, function, xla to time.")
    flags.DEFINE_integer("iterations", 10, "Timed iterations per mode (the median is reported).")
    flags.DEFINE_integer("eager_iterations", 3, "Timed iterations in eager mode (slow).")
    flags.DEFINE_integer("warmup", 2, "Untimed iterations first (tracing, compilation, caches).")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                      "bfloat16: Keras mixed_bfloat16 networks (fast on CPUs with AVX512_BF16).")
    flags.DEFINE_enum("peer", "none", ["none", "torch"], "Also time a plain eager PyTorch peer, interleaved.")
    flags.DEFINE_integer("matmul_size", 2048, "Side of the float32 matmul that measures the ceiling.")
    flags.DEFINE_integer("input_pipeline_iterations", 5, "Steps fed from the real pipeline (0: skip).")
    flags.DEFINE_integer("inter_op_threads", None, "tf.config inter-op threads (default: TensorFlow's).")
    flags.DEFINE_integer("intra_op_threads", None, "tf.config intra-op threads (default: TensorFlow's).")
    flags.DEFINE_enum("step", "default", list(STEPS),
                      "default: the project's training step; naive / unrolled / keras_output_layer: counterfactuals "
                      "for the lever table.")
    flags.DEFINE_list("against", [], "Counterfactual steps (naive, unrolled, keras_output_layer) to time "
                      "in alternation with the default tf.function step, in this process.")
    flags.DEFINE_string("profile_dir", None, "Also profile the default mode here (TensorBoard trace viewer) "
                        "and report the ops that take the time.")
    flags.DEFINE_bool("remapping", True, "Grappler's remapper (op fusion); off to measure its effect.")


FLAGS = flags.FLAGS


def main():
    # Thread settings must precede any TensorFlow op.
    if FLAGS.inter_op_threads is not None:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    if FLAGS.intra_op_threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
    if not FLAGS.remapping:
        tf.config.optimizer.set_experimental_options({"remapping": False})
    result = run(arch=FLAGS.arch, arch_flagfile=FLAGS.arch_flagfile, modes=tuple(FLAGS.modes),
                 iterations=FLAGS.iterations, eager_iterations=FLAGS.eager_iterations,
                 warmup=FLAGS.warmup, precision=FLAGS.precision, peer=FLAGS.peer,
                 matmul_size=FLAGS.matmul_size, input_pipeline_iterations=FLAGS.input_pipeline_iterations,
                 step=FLAGS.step, profile_dir=FLAGS.profile_dir, against=tuple(FLAGS.against),
                 arch_set=tuple(FLAGS.arch_set))
    result["config"].update(remapping=FLAGS.remapping, tensorflow=tf.__version__,
                            machine=platform.machine(), python=platform.python_version())
    for mode, figs in result["modes"].items():
        logging.info("%-9s %8.1f ms/iter  %7.1f images/s  %6.1f GFLOP/s (%.0f%% of matmul %.1f)", mode,
                     figs["ms_per_iter"], figs["images_per_s"], figs["gflops_per_s"],
                     100 * figs["fraction_of_matmul"], result["machine_matmul_gflops_per_s"])
    print(json.dumps(result), flush=True)
