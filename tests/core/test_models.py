"""Tests for hiabp_tf.core.models: the ladder generator (eq. 6), the ladder encoder (eq. 7) and their plan."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf.core import models

SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 3)]
DOUBLINGS = {28: 2, 32: 3, 64: 4}  # documented: 7 -> 28, 4 -> 32, 4 -> 64
BASE_SIDE = {28: 7, 32: 4, 64: 4}
CASES = [pytest.param(shape, num_layers, id=f"{shape[0]}x{shape[1]}x{shape[2]}-L{num_layers}")
         for shape, num_layers in itertools.product(SHAPES, [1, 2, 3, 4])]
BATCH = 2


def _arch(shape, num_layers):
    """Width 4 and distinct latent sizes (3, 4, 5, 6)[:L], so swapped layers would show."""
    return models.Architecture(shape, (3, 4, 5, 6)[:num_layers], width=4)


def _latents(arch, seed=0):
    return [tf.random.stateless_normal((BATCH, d), [seed, l]) for l, d in enumerate(arch.latent_dims)]


@pytest.mark.parametrize("shape,num_layers", CASES)
def test_resolution_plan_reaches_the_image_side(shape, num_layers):
    """strides()/resolutions(): each block halves/keeps sides consistently and the doublings rebuild the image side."""
    arch = _arch(shape, num_layers)
    blocks, r_stride = arch.strides()
    sides = arch.resolutions()
    side = shape[0]
    assert len(blocks) == num_layers and len(sides) == num_layers + 1
    strides = [s for block in blocks for s in block] + [r_stride]
    assert set(strides) <= {1, 2}
    # As many stride-2 layers as doublings, unless the network has fewer deconvs (2L + 1) than that.
    assert strides.count(2) == min(DOUBLINGS[side], 2 * num_layers + 1)
    # Each stage multiplies its input side by its strides; the top side times all strides is the image.
    assert sides[0] * r_stride == side
    for l, (first, second) in enumerate(blocks, start=1):
        assert sides[l] * first * second == sides[l - 1]
    assert sides[-1] * int(np.prod(strides)) == side
    # The top map is the documented base (7 for 28, 4 for 32 and 64), larger only when deconvs run out.
    missing = max(0, DOUBLINGS[side] - (2 * num_layers + 1))
    assert sides[-1] == BASE_SIDE[side] * 2**missing


@pytest.mark.slow
@pytest.mark.parametrize("shape,num_layers", CASES)
def test_generator_and_encoder_shapes(shape, num_layers):
    """Generator: L latents -> (B, H, W, C) in [0, 1]; Encoder: image -> L mus and L log sigmas of sizes d_l."""
    arch = _arch(shape, num_layers)
    generator, encoder = models.build_networks(arch)
    x = generator(_latents(arch))
    assert x.shape == (BATCH,) + shape
    assert float(tf.reduce_min(x)) >= 0.0 and float(tf.reduce_max(x)) <= 1.0
    mus, log_sigmas = encoder(x)
    assert len(mus) == len(log_sigmas) == num_layers
    for mu, log_sigma, d in zip(mus, log_sigmas, arch.latent_dims):
        assert mu.shape == log_sigma.shape == (BATCH, d)
        assert np.all(np.isfinite(mu.numpy())) and np.all(np.isfinite(log_sigma.numpy()))
    # Every layer's z^l enters the ladder as a map at the planned resolution sides[l] ...
    sides = arch.resolutions()
    for l, (projection, z) in enumerate(zip(generator.projections, _latents(arch)), start=1):
        assert projection(z).shape[1:3] == (sides[l], sides[l])
    # ... and the encoder's h^l has that same side (mirror image of the generator).
    h = encoder.stem(x)
    assert h.shape[1] == sides[0]
    for l, g in enumerate(encoder.ladder, start=1):
        h = g(h)
        assert h.shape[1:3] == (sides[l], sides[l])


@pytest.mark.slow
@pytest.mark.parametrize("shape,num_layers", CASES)
def test_every_latent_layer_influences_the_output(shape, num_layers):
    """Changing z^l alone (for each l) changes the generated image."""
    arch = _arch(shape, num_layers)
    generator, _ = models.build_networks(arch)
    z = _latents(arch)
    x = generator(z).numpy()
    for l in range(num_layers):
        z_changed = list(z)
        z_changed[l] = z[l] + 2.0
        # Pixels are O(0.5) and change by ~1e-2 for a shift of 2 in z^l; 1e-5 is well above float32 noise
        # (and a latent that were ignored would give exactly 0).
        assert np.max(np.abs(generator(z_changed).numpy() - x)) > 1e-5, f"z^{l + 1} has no effect"


@pytest.mark.parametrize("shape", [(30, 30, 1), (28, 32, 1), (16, 16, 3), (128, 128, 3), (28, 28)])
def test_architecture_rejects_unsupported_image_shapes(shape):
    """Non-square, unsupported sides or non-3-D shapes raise a ValueError about the image shape."""
    with pytest.raises(ValueError, match="image shape"):
        models.Architecture(shape, (4,))


@pytest.mark.parametrize("latent_dims", [(), (2, 2, 2, 2, 2)])
def test_architecture_rejects_num_layers_outside_1_to_4(latent_dims):
    """L = 0 or L = 5 raises a ValueError naming --num_layers."""
    with pytest.raises(ValueError, match="--num_layers"):
        models.Architecture((28, 28, 1), latent_dims)


def test_architecture_rejects_non_positive_latent_dims():
    """A latent size of 0 raises a ValueError naming --latent_dims."""
    with pytest.raises(ValueError, match="--latent_dims"):
        models.Architecture((28, 28, 1), (4, 0))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(28, 28, 3), (32, 32, 1), (64, 64, 1)])
def test_networks_accept_any_channel_count_on_supported_sides(shape):
    """Only the side is checked: e.g. a grayscale 32x32 npz data set gets networks of the right shape."""
    arch = models.Architecture(shape, (2, 2), width=4)
    generator, encoder = models.build_networks(arch)
    x = generator(_latents(arch))
    assert x.shape == (BATCH,) + shape
    assert [m.shape for m in encoder(x)[0]] == [(BATCH, 2), (BATCH, 2)]


@pytest.mark.slow
def test_bfloat16_networks_compute_in_bfloat16_with_float32_interfaces():
    """--precision=bfloat16: bfloat16 arithmetic, float32 weights, float32 inputs and outputs, and
    results close to the float32 networks with the same weights."""
    exact = models.Architecture((28, 28, 1), (6, 4), width=8)
    fast = models.Architecture((28, 28, 1), (6, 4), width=8, precision="bfloat16")
    (g32, e32), (g16, e16) = models.build_networks(exact), models.build_networks(fast)
    g16.set_weights(g32.get_weights())
    e16.set_weights(e32.get_weights())
    assert all(v.dtype == tf.float32 for v in g16.weights + e16.weights)
    assert g16.output_block.compute_dtype == "bfloat16" and g32.output_block.compute_dtype == "float32"
    z = [tf.random.stateless_normal((5, d), [0, d]) for d in exact.latent_dims]
    x16, x32 = g16(z), g32(z)
    assert x16.dtype == tf.float32
    np.testing.assert_allclose(x16.numpy(), x32.numpy(), atol=0.02)  # bfloat16 keeps ~3 digits
    assert float(tf.reduce_max(tf.abs(x16 - x32))) > 0  # and is really not float32
    (mu16, _), (mu32, _) = e16(x32)[0], e32(x32)[0]
    assert mu16.dtype == tf.float32
    np.testing.assert_allclose(mu16.numpy(), mu32.numpy(), atol=0.05)
    assert keras_policy_name() == "float32"  # the global policy is restored


def keras_policy_name():
    import keras
    return keras.config.dtype_policy().name


def test_architecture_rejects_unknown_precision():
    with pytest.raises(ValueError, match="--precision"):
        models.Architecture((28, 28, 1), (4,), precision="float16")


@pytest.mark.slow
@pytest.mark.parametrize("formulation", models.OUTPUT_FORMULATIONS)
@pytest.mark.parametrize("kernel,out_channels,in_channels,stride", [
    (4, 1, 8, 1), (4, 3, 8, 1), (3, 1, 5, 1), (5, 3, 4, 1), (4, 3, 8, 2)])
def test_output_block_equals_keras_conv2d_transpose(kernel, out_channels, in_channels, stride, formulation):
    """OutputDeconv computes Keras' Conv2DTranspose with the same weights in every formulation,
    under the same names (so checkpoints of either load into the other, whatever the formulation),
    and its input gradient too; strides above 1 use Keras' kernel itself."""
    import keras
    ours = models.OutputDeconv(out_channels, kernel, strides=stride, padding="same", activation="sigmoid",
                               formulation=formulation)
    theirs = keras.layers.Conv2DTranspose(out_channels, kernel, strides=stride, padding="same", activation="sigmoid")
    h = tf.random.stateless_normal((3, 7, 9, in_channels), [1, 2])
    ours(h), theirs(h)
    theirs.set_weights([w.numpy() for w in ours.weights])
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights] == ["kernel", "bias"]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(h)
        a, b = ours(h), theirs(h)
        sa, sb = tf.reduce_sum(tf.square(a)), tf.reduce_sum(tf.square(b))
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(sa, h).numpy(), tape.gradient(sb, h).numpy(), atol=1e-5)
    for wa, wb in zip(tape.gradient(sa, ours.weights), tape.gradient(sb, theirs.weights)):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-4, atol=1e-5)
    ours.formulation = "keras"  # the benchmark's counterfactual: Keras' kernel on the same weights
    np.testing.assert_allclose(ours(h).numpy(), b.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="formulation"):
        models.OutputDeconv(1, 4, formulation="fft")


@pytest.mark.slow
def test_generator_output_block_takes_the_formulation_of_its_channel_count():
    """The depthwise form for gray images, Keras' kernel for RGB (the measured fastest for each)."""
    for shape, formulation in (((28, 28, 1), "depthwise_then_sum"), ((32, 32, 3), "keras")):
        generator, _ = models.build_networks(models.Architecture(shape, (6, 4), width=8))
        assert isinstance(generator.output_block, models.OutputDeconv) and generator.output_block.strides == (1, 1)
        assert generator.output_block.formulation == formulation == models.OUTPUT_FORMULATION_BY_CHANNELS[shape[-1]]
