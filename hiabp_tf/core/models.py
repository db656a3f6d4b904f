"""The two networks of HiABP as Keras models.

Generator p_theta (eq. 6), a top-down ladder:
    h^L = f^L(z^L);   h^l = f^l(h^{l+1}, z^l) for l = L-1..1;   x_hat = r(h^1)
f^l is two deconv2d layers with LeakyReLU(0.1); z^l enters f^l as a feature map (a linear projection
of z^l reshaped to h^{l+1}'s resolution) concatenated channel-wise to h^{l+1} (the paper's
"channel-wise noise adding"); r is one deconv2d with a sigmoid, so pixels are in [0, 1].

Encoder q_phi (eq. 7), the bottom-up ladder of VLAE:
    h^0 = x;   h^l = g^l(h^{l-1});   mu^l = Linear(h^l),  log sigma^l = Linear(h^l)
g^l mirrors f^l (two conv2d layers with LeakyReLU(0.1)); g^1 is preceded by a stem conv that mirrors r.

Where the resolution doubles (the paper's "stride 2 everywhere" cannot hold for every L and image
size): an image of side 28 is built from 7x7 by 2 doublings, 32 from 4x4 by 3 and 64 from 4x4 by 4.
The doublings go to stride-2 deconvs from the image upwards: first the second (output) deconv of
f^1, f^2, ..., then the first deconv of f^1, f^2, ..., then r; so each block works at its input's
resolution and doubles at its end, which keeps the work at full resolution small. \
When the network has fewer deconvs than doublings
(L = 1 at 64x64) the top projection starts from a larger map. The encoder uses the same strides in
mirror image, so layer l of both networks works at the same resolution.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from hiabp_tf.core import hardware

# Side of the smallest feature map and number of doublings to reach each supported image side.
_DOUBLINGS = {28: 2, 32: 3, 64: 4}
SUPPORTED_IMAGE_SHAPES = ((28, 28, 1), (32, 32, 3), (64, 64, 3))
PRECISIONS = ("float32", "bfloat16")
_KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
# --precision=auto: bfloat16 where the CPU computes it natively (`hardware.native_bfloat16`), float32
# elsewhere, where Keras' bfloat16 is emulated and several times slower than float32.
AUTO_PRECISION = "auto"
PRECISION_CHOICES = PRECISIONS + (AUTO_PRECISION,)  # what --precision accepts
LEAK = 0.1
# He initialisation keeps the signal (and d x / d z) from shrinking through the deep ladder.
INIT = "he_normal"
# How the output block r computes a stride-1 transposed convolution (OutputDeconv), all the same
# function with the same weights: a depthwise convolution with the flipped kernel then a sum over
# the input channels, a plain convolution with the flipped kernel, or Keras' Conv2DTranspose kernel.
OUTPUT_FORMULATIONS = ("depthwise_then_sum", "conv2d_flipped_kernel", "keras")
# The formulation each image channel count computes with, chosen by measurement
# (`benchmark.output_layer_variants`, results/performance.md): oneDNN's transposed-convolution
# kernel is slow with one output channel, where the depthwise form wins; with three, the depthwise
# form (a channel multiplier of 3, then a reshaped sum) is 10x slower than Keras' own kernel, in
# bfloat16 above all.
OUTPUT_FORMULATION_BY_CHANNELS = {1: "depthwise_then_sum", 3: "keras"}
# The features the LVAE's linear prior heads read from the top-down map d^{l+1}: its spatial mean
# (one value per channel) or the whole map flattened (thousands of inputs: the first published-LVAE
# runs, whose prior moved by ~1 per Adamax update and collapsed the chain; docs/method.md).
LVAE_TOP_DOWN = ("pooled", "flattened")


def resolve_precision(precision: str, flags_=None) -> str:
    """--precision as the networks will compute: `auto` becomes bfloat16 on a CPU with native
    bfloat16 and float32 elsewhere; float32 and bfloat16 stay as they are."""
    if precision != AUTO_PRECISION:
        return precision
    return "bfloat16" if hardware.native_bfloat16(flags_) else "float32"


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything needed to build the generator and encoder; saved with each run."""

    image_shape: tuple[int, int, int]
    latent_dims: tuple[int, ...]  # (dim z^1, ..., dim z^L), bottom layer first
    width: int = 64  # channels of every (de)conv layer of the ladder blocks
    # float32 (exact, the default) or bfloat16: the networks compute in bfloat16 with float32
    # weights (Keras' mixed_bfloat16 policy), fast on CPUs with AVX512_BF16; inputs and outputs
    # of both networks, the Langevin dynamics and the losses stay float32.
    precision: str = "float32"
    # The LVAE's prior heads (methods.variational.ChainGenerator): what they read of d^{l+1}.
    lvae_top_down: str = "pooled"

    def __post_init__(self):
        if self.lvae_top_down not in LVAE_TOP_DOWN:
            raise ValueError(f"--lvae_top_down={self.lvae_top_down!r} is unknown: use one of "
                             f"{', '.join(LVAE_TOP_DOWN)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision={self.precision!r} is unknown: use one of {', '.join(PRECISIONS)}.")
        shape = tuple(int(s) for s in self.image_shape)
        # Any side with either channel count: the networks are built from the side and the channels alone
        # (the paper's shapes, 28x28x1, 32x32x3 and 64x64x3, are three of these six; docs/data.md).
        if len(shape) != 3 or shape[0] != shape[1] or shape[0] not in _DOUBLINGS or shape[2] not in (1, 3):
            raise ValueError(
                f"image shape {shape} is not supported by the HiABP networks: use square images of "
                f"side {', '.join(map(str, sorted(_DOUBLINGS)))}, grayscale (C = 1) or RGB (C = 3) "
                "(MNIST is 28x28x1, SVHN 32x32x3, CelebA 64x64x3); resize your data (e.g. an npz: dataset) "
                "to one of these.")
        if not 1 <= len(self.latent_dims) <= 4:
            raise ValueError(f"--num_layers must be between 1 and 4, got L={len(self.latent_dims)}.")
        if any(int(d) < 1 for d in self.latent_dims):
            raise ValueError(f"--latent_dims must be positive integers, got {list(self.latent_dims)}.")
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "latent_dims", tuple(int(d) for d in self.latent_dims))

    @property
    def num_layers(self) -> int:
        return len(self.latent_dims)

    def block_channels(self, layer: int) -> int:
        """Channels of ladder block `layer` (1-based, 1 = bottom).

        The same for every layer: the upper blocks work on small maps, so wider ones would add
        parameters (and CPU time) without helping the comparison between L = 1..4."""
        del layer
        return self.width

    def strides(self) -> tuple[list[tuple[int, int]], int]:
        """Strides of the generator: [(first, second) deconv of f^l for l=1..L], stride of r."""
        num_layers = self.num_layers
        order = [(l, 1) for l in range(num_layers)] + [(l, 0) for l in range(num_layers)] + [("r", 0)]
        doubled = set(order[:_DOUBLINGS[self.image_shape[0]]])
        blocks = [tuple(2 if (l, i) in doubled else 1 for i in range(2)) for l in range(num_layers)]
        return blocks, 2 if ("r", 0) in doubled else 1

    def resolutions(self) -> list[int]:
        """sides[l] = side of the map entering f^l (l = 1..L) and of the map f^1 hands to r (l = 0).

        In the encoder, sides[l] is also the side of h^l, the output of g^l (sides[0]: the stem's)."""
        blocks, r_stride = self.strides()
        sides = [self.image_shape[0] // r_stride]
        for first, second in blocks:
            sides.append(sides[-1] // (first * second))
        return sides

    @property
    def total_latent_dim(self) -> int:
        return sum(self.latent_dims)


class OutputDeconv(keras.layers.Conv2DTranspose):
    """The output block r: Keras' Conv2DTranspose (same weights, same checkpoint names), computed
    at stride 1 as a correlation with the flipped kernel, by the formulation that is fastest for its
    number of output channels (OUTPUT_FORMULATION_BY_CHANNELS; `formulation` overrides it).

    A stride-1 'same' transposed convolution with a k x k kernel W (k, k, C_out, C_in) is the
    correlation of its input with W flipped in space, padded by k-1-p before and p after each
    spatial axis, where p = (k-1)//2 is the padding a 'same' convolution puts before. oneDNN's
    transposed kernel is slow with one or three output channels (the image), and r runs on every
    Langevin step; the correlation gives the same values (up to float round-off) faster
    (results/performance.md). Strides above 1 keep Keras' kernel.
    """

    def __init__(self, filters, *args, formulation=None, **kwargs):
        super().__init__(filters, *args, **kwargs)
        self.formulation = formulation or OUTPUT_FORMULATION_BY_CHANNELS.get(filters, "keras")
        if self.formulation not in OUTPUT_FORMULATIONS:
            raise ValueError(f"unknown output-layer formulation {self.formulation!r}: use one of "
                             f"{', '.join(OUTPUT_FORMULATIONS)}.")

    def call(self, inputs):
        if self.formulation == "keras" or tuple(self.strides) != (1, 1) or self.padding != "same":
            return super().call(inputs)
        k_h, k_w = self.kernel_size
        in_channels, out_channels = self.kernel.shape[-1], self.filters
        kernel = tf.convert_to_tensor(self.kernel)  # the compute dtype under mixed precision
        # (k, k, C_out, C_in) -> flipped in space, (k, k, C_in, C_out): a depthwise filter with
        # channel multiplier C_out.
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        before_h, before_w = (k_h - 1) // 2, (k_w - 1) // 2
        padded = tf.pad(inputs, [[0, 0], [k_h - 1 - before_h, before_h], [k_w - 1 - before_w, before_w], [0, 0]])
        if self.formulation == "conv2d_flipped_kernel":  # (k, k, C_in, C_out): a plain correlation
            outputs = tf.nn.conv2d(padded, flipped, 1, "VALID")
        else:
            outputs = self._depthwise_then_sum(padded, flipped, in_channels, out_channels)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.convert_to_tensor(self.bias))
        return self.activation(outputs) if self.activation is not None else outputs

    @staticmethod
    def _depthwise_then_sum(padded, flipped, in_channels, out_channels):
        per_channel = tf.nn.depthwise_conv2d(padded, flipped, [1, 1, 1, 1], "VALID")
        if out_channels == 1:
            outputs = tf.reduce_sum(per_channel, axis=-1, keepdims=True)
        else:  # depthwise output channel c_in * C_out + c_out
            shape = tf.shape(per_channel)
            outputs = tf.reduce_sum(tf.reshape(
                per_channel, tf.concat([shape[:3], [in_channels, out_channels]], 0)), axis=-2)
        return outputs


def projection(arch: Architecture, layer: int) -> keras.Sequential:
    """The projection of z^layer (1-based) to a feature map at the resolution where it joins the
    ladder: z^L starts it (f^L's input map), z^l (l < L) joins h^{l+1} (f^l's input)."""
    side, channels = arch.resolutions()[layer], arch.block_channels(layer)
    return keras.Sequential([
        keras.layers.Dense(side * side * channels, kernel_initializer=INIT),
        keras.layers.LeakyReLU(LEAK),
        keras.layers.Reshape((side, side, channels)),
    ], name=f"project_z{layer}")


def ladder_block(arch: Architecture, layer: int) -> keras.Sequential:
    """f^layer (1-based): two deconv2d + LeakyReLU; its output channels feed f^{layer-1} (or r)."""
    first, second = arch.strides()[0][layer - 1]
    return keras.Sequential([
        keras.layers.Conv2DTranspose(arch.block_channels(layer), 4, strides=first, padding="same",
                                     kernel_initializer=INIT),
        keras.layers.LeakyReLU(LEAK),
        keras.layers.Conv2DTranspose(arch.block_channels(max(layer - 1, 1)), 4, strides=second, padding="same",
                                     kernel_initializer=INIT),
        keras.layers.LeakyReLU(LEAK),
    ], name=f"f{layer}")


def output_block(arch: Architecture) -> OutputDeconv:
    """r: one deconv2d with a sigmoid, so pixels are in [0, 1]."""
    return OutputDeconv(arch.image_shape[-1], 4, strides=arch.strides()[1], padding="same", activation="sigmoid",
                        name="r")


class Generator(keras.Model):
    """g_theta: list of latents [z^1 (B, d_1), ..., z^L (B, d_L)] -> images (B, H, W, C) in [0, 1]."""

    def __init__(self, arch: Architecture, name="generator"):
        super().__init__(name=name)
        self.arch = arch
        layers = range(1, arch.num_layers + 1)
        self.projections = [projection(arch, l) for l in layers]
        self.ladder = [ladder_block(arch, l) for l in layers]
        self.output_block = output_block(arch)

    def call(self, latents):
        latents = list(latents)
        num_layers = self.arch.num_layers
        h = self.ladder[num_layers - 1](self.projections[num_layers - 1](latents[num_layers - 1]))
        for l in range(num_layers - 1, 0, -1):  # l = L-1 .. 1 (1-based)
            z_map = self.projections[l - 1](latents[l - 1])
            h = self.ladder[l - 1](tf.concat([h, z_map], axis=-1))
        return tf.cast(self.output_block(h), tf.float32)  # a no-op in float32


class Encoder(keras.Model):
    """q_phi: images (B, H, W, C) -> (mus, log_sigmas), each a list over layers l = 1..L of (B, d_l)."""

    def __init__(self, arch: Architecture, name="encoder"):
        super().__init__(name=name)
        self.arch = arch
        blocks, r_stride = arch.strides()
        self.stem = keras.Sequential([
            keras.layers.Conv2D(arch.block_channels(1), 4, strides=r_stride, padding="same", kernel_initializer=INIT),
            keras.layers.LeakyReLU(LEAK),
        ], name="stem")
        self.ladder, self.mu_heads, self.log_sigma_heads = [], [], []
        for l in range(1, arch.num_layers + 1):
            first, second = blocks[l - 1]
            channels = arch.block_channels(l)
            # Mirror of f^l: its second deconv is undone first.
            self.ladder.append(keras.Sequential([
                keras.layers.Conv2D(channels, 4, strides=second, padding="same", kernel_initializer=INIT),
                keras.layers.LeakyReLU(LEAK),
                keras.layers.Conv2D(channels, 4, strides=first, padding="same", kernel_initializer=INIT),
                keras.layers.LeakyReLU(LEAK),
            ], name=f"g{l}"))
            self.mu_heads.append(keras.layers.Dense(arch.latent_dims[l - 1], name=f"mu{l}"))
            self.log_sigma_heads.append(keras.layers.Dense(arch.latent_dims[l - 1], name=f"log_sigma{l}"))
        self.flatten = keras.layers.Flatten()

    def call(self, images):
        h = self.stem(images)
        mus, log_sigmas = [], []
        for g, mu_head, log_sigma_head in zip(self.ladder, self.mu_heads, self.log_sigma_heads):
            h = g(h)
            flat = self.flatten(h)
            mus.append(tf.cast(mu_head(flat), tf.float32))  # casts are no-ops in float32
            log_sigmas.append(tf.cast(log_sigma_head(flat), tf.float32))
        return mus, log_sigmas


class precision_policy:
    """Context in which new Keras layers take the dtype policy of `precision` (float32 or
    bfloat16 = mixed_bfloat16: bfloat16 compute, float32 weights)."""

    def __init__(self, precision: str):
        self.policy = _KERAS_POLICY[precision]

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.policy)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)


def build_networks(arch: Architecture, generator_class=Generator) -> tuple[keras.Model, Encoder]:
    """Builds both networks and creates their weights (so checkpoints restore eagerly); the
    generator is `generator_class(arch)` (the ladder Generator unless a method has its own)."""
    with precision_policy(arch.precision):
        generator, encoder = generator_class(arch), Encoder(arch)
        generator([tf.zeros((1, d)) for d in arch.latent_dims])
        encoder(tf.zeros((1,) + arch.image_shape))
    return generator, encoder
