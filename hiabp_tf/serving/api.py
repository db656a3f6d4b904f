r"""Use a trained model from Python: encode, decode, reconstruct, sample, resample a layer, inpaint.

    import hiabp_tf
    model = hiabp_tf.load("runs/quick/mnist5k_hiabp_l3")      # latest checkpoint of a workdir
    z = model.encode(x)                   # [z^1 (N, d_1), ..., z^L (N, d_L)], bottom layer first
    x_hat = model.decode(z)               # (N, H, W, C) in [0, 1]
    x_hat = model.reconstruct(x)          # "E+L": encoder, then T Langevin steps, then the generator
    samples = model.sample(16, seed=0)
    z2 = model.resample_layer(z, layer=2, seed=0)   # layer 2 (1-based) redrawn from its prior
    recovered = model.inpaint(x, mask)    # mask: 1 = observed, 0 = missing

Images are numpy arrays or tensors of floats in [0, 1] with the training image shape (N, H, W, C)
(one image (H, W, C), or (H, W) / (N, H, W) for a grayscale model, is promoted to a batch; the
outputs are always batched). Every output is a numpy array. `seed` arguments: None draws a fresh
seed, an int s is the stateless seed [s, 0] (the `seed` input of the exported SavedModel, see
export.py), a pair [a, b] is used as is; the same seed gives the same result. Seed values are
int32 (-2**31..2**31 - 1); others are a ValueError.

The computations are the graph functions of `Inference`, the very functions `hiabp_tf.export` saves
as the SavedModel's serving signatures, so the Python API and the SavedModel agree on the same
inputs and seed. For hiabp (IABP / HiABP), reconstruct(x, "E+L", T, seed) equals the package's
`HiABP.reconstruct(x, seed, T)["E+L"]`.

Methods without an encoder (abp, abp_persistent) start inference from N(0, I) noise (the [L]
reconstruction of Table 1): `encode` needs langevin_steps > 0 and `reconstruct` offers only mode
"L". The variational baselines (vae, vlae, lvae) have an encoder and a generator, so Langevin on
the generator's energy is available to them too ("E+L"); for the LVAE the energy uses its
hierarchical prior, and its encoder mean is the top-down posterior mean.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.checks import limits
from hiabp_tf.core import langevin
from hiabp_tf.data import masks
from hiabp_tf.methods import base
from hiabp_tf.runtime import workdir as workdir_lib

# Tolerance on the [0, 1] range of images and masks (rounding in a user's preprocessing).
_RANGE_TOLERANCE = 1e-6
_INT32_MIN, _INT32_MAX = -2**31, 2**31 - 1


class _Holder:
    """Keeps the method object out of tf.Module's tracking (its optimisers are not exported)."""

    def __init__(self, model):
        self.model = model


class Inference(tf.Module):
    """The graph functions of a trained model, with fixed input signatures (batch dimension None).

    All take float32 images in [0, 1] of the training shape, a stateless int32 seed of shape [2]
    and an int32 scalar number of Langevin steps, and return dicts of tensors. Shared by
    `TrainedModel` (the Python API) and `hiabp_tf.export` (the SavedModel's signatures):

      encode(images, seed, langevin_steps)        -> {"z1": (N, d_1), ..., "zL": (N, d_L)}
      decode(z1, ..., zL)                         -> {"images": (N, H, W, C)}
      reconstruct(images, seed, langevin_steps)   -> {"E", "E+L"} (methods with an encoder) or {"L"}
      inpaint(images, mask, seed, langevin_steps) -> {"recovered", "reconstruction", "z1", ..., "zL"}
      sample(num_samples, seed)                   -> {"images": (num_samples, H, W, C)}

    encode with langevin_steps = 0 is the encoder's mean (deterministic; the LVAE's top-down
    posterior mean); with T > 0, T Langevin steps from a sample of the encoder (from N(0, I) for
    abp / abp_persistent, which need T > 0). The seed is split as in `HiABP.reconstruct`:
    stateless_split(seed, 2) = (initializer noise, Langevin noise).
    """

    def __init__(self, model, config: config_lib.RunConfig, image_shape):
        super().__init__(name="hiabp_inference")
        self.generator = model.generator
        if model.encoder is not None:
            self.encoder = model.encoder
        if getattr(model, "prior", None) is not None:  # LVAE's top-down prior networks
            self.prior = model.prior
        self._holder = _Holder(model)
        self.method = config.method
        self.has_encoder = model.has_encoder
        self.latent_dims = tuple(config.latent_dims)
        self.image_shape = tuple(int(s) for s in image_shape)
        self._hparams = config.hyperparameters()
        self.max_samples = limits.max_samples(self.image_shape)
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="images")
        mask_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="mask")
        seed_spec = tf.TensorSpec([2], tf.int32, name="seed")
        steps_spec = tf.TensorSpec([], tf.int32, name="langevin_steps")
        z_specs = [tf.TensorSpec([None, d], tf.float32, name=f"z{l + 1}") for l, d in enumerate(self.latent_dims)]
        # The inputs each function takes (hiabp_export.json declares them). The graphs are traced for
        # any shape and check it themselves (`_checked`): a signature called with a shape other than
        # the one its graph was traced for is not refused, and a rank-3 batch aborted the process.
        self.input_specs = {
            "encode": [image_spec, seed_spec, steps_spec],
            "decode": z_specs,
            "reconstruct": [image_spec, seed_spec, steps_spec],
            "inpaint": [image_spec, mask_spec, seed_spec, steps_spec],
            "sample": [tf.TensorSpec([], tf.int32, name="num_samples"), seed_spec],
            # Not exported: Langevin from N(0, I) for methods with an encoder (mode "L").
            "encode_from_noise": [image_spec, seed_spec, steps_spec],
        }
        for name, specs in self.input_specs.items():
            setattr(self, name, tf.function(getattr(self, f"_{name}"), input_signature=[
                tf.TensorSpec(None, spec.dtype, spec.name) for spec in specs]))

    def serving_signatures(self) -> dict:
        """The serving signatures of the SavedModel: name -> concrete function."""
        return {name: getattr(self, name).get_concrete_function()
                for name in ("encode", "decode", "reconstruct", "inpaint", "sample")}

    # --------------------------------------------------------------- input checks (in the graph)

    @staticmethod
    def _checked(x, spec, what: str):
        """`x` with the static shape of `spec` once the graph has checked it: its rank, each fixed
        size, at least 1 for a free one (the batch). One assertion, which names the shape received;
        it reads the shape through ops that are safe on any rank (a graph may run them first), and
        ensure_shape makes everything that uses `x` wait for a good shape."""
        expected = spec.shape.as_list()
        rank = len(expected)
        shape = tf.concat([tf.shape(x), tf.zeros([rank], tf.int32)], 0)[:rank]  # padded: never out of bounds
        fixed = [i for i, d in enumerate(expected) if d is not None]
        free = [i for i, d in enumerate(expected) if d is None]
        good = tf.equal(tf.rank(x), rank)
        if fixed:
            good = tf.logical_and(good, tf.reduce_all(tf.equal(tf.gather(shape, fixed), [expected[i] for i in fixed])))
        if free:
            good = tf.logical_and(good, tf.reduce_all(tf.gather(shape, free) > 0))
        check = tf.debugging.Assert(good, [f"{what} (as hiabp_export.json declares); got shape", tf.shape(x)])
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(x), expected)

    def _shape_text(self, *dims) -> str:
        return "(" + ", ".join(str(d) for d in dims) + ")"

    def _unit_interval(self, x, what: str, hint: str = ""):
        """`x` (float32) once it is checked finite and in [0, 1] (within the API's tolerance), clipped."""
        x = tf.debugging.assert_all_finite(x, f"{what} contain NaN or infinite values")
        checks = [tf.debugging.assert_greater_equal(tf.reduce_min(x), -_RANGE_TOLERANCE,
                                                    message=f"{what} must be in [0, 1]{hint}"),
                  tf.debugging.assert_less_equal(tf.reduce_max(x), 1.0 + _RANGE_TOLERANCE,
                                                 message=f"{what} must be in [0, 1]{hint}")]
        with tf.control_dependencies(checks):
            return tf.clip_by_value(x, 0.0, 1.0)

    def _check_images(self, images, name="images"):
        spec = self.input_specs["encode"][0]
        images = self._checked(images, spec, f"{name} must be a float32 batch of shape "
                                             f"{self._shape_text('N', *self.image_shape)} with N >= 1")
        return self._unit_interval(images, name, " (8-bit images, 0..255, must be divided by 255 first)")

    def _check_seed(self, seed):
        return self._checked(seed, self.input_specs["encode"][1], "seed must be an int32 pair of shape [2]")

    def _check_steps(self, steps):
        steps = self._checked(steps, self.input_specs["encode"][2], "langevin_steps must be an int32 scalar")
        if self.has_encoder:
            check = tf.debugging.assert_non_negative(steps, message="langevin_steps must be >= 0")
        else:
            check = tf.debugging.assert_positive(
                steps, message=f"method {self.method} has no encoder: langevin_steps must be > 0")
        with tf.control_dependencies([check]):
            return tf.identity(steps)

    # ------------------------------------------------------------------------------ pieces

    @property
    def _model(self):
        return self._holder.model

    def _z_dict(self, z) -> dict:
        return {f"z{l + 1}": z_l for l, z_l in enumerate(z)}

    def _noise(self, batch_size, seed):
        return base.standard_normal_latents(self.latent_dims, batch_size, seed)

    def _langevin(self, x, z0, seed, steps, mask=None):
        z_t, _ = langevin.langevin_dynamics(self._model.energy_fn(x, mask), z0, steps, self._hparams.step_size, seed,
                                            self._hparams.langevin_clip)
        return z_t

    def _infer(self, x, seed, steps, mask=None, from_noise=False):
        """(z_T, encoder mean or None): T Langevin steps from the encoder's sample or from N(0, I)."""
        init_seed, langevin_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if from_noise or not self.has_encoder:
            return self._langevin(x, self._noise(tf.shape(x)[0], init_seed), langevin_seed, steps, mask), None
        z0, means = self._model.initial_latents(x, init_seed)
        return self._langevin(x, z0, langevin_seed, steps, mask), means

    @staticmethod
    def _mean_if_no_steps(steps, z_t, means):
        if means is None:
            return z_t
        return [tf.where(steps > 0, z, m) for z, m in zip(z_t, means)]

    # ------------------------------------------------------------------------ signatures

    def _encode(self, images, seed, langevin_steps):
        images, seed, langevin_steps = self._check_images(images), self._check_seed(seed), self._check_steps(
            langevin_steps)
        z_t, means = self._infer(images, seed, langevin_steps)
        return self._z_dict(self._mean_if_no_steps(langevin_steps, z_t, means))

    def _encode_from_noise(self, images, seed, langevin_steps):
        images, seed, langevin_steps = self._check_images(images), self._check_seed(seed), self._check_steps(
            langevin_steps)
        z_t, _ = self._infer(images, seed, langevin_steps, from_noise=True)
        return self._z_dict(z_t)

    def _decode(self, *z):
        shapes = ", ".join(self._shape_text("N", d) for d in self.latent_dims)
        what = f"the latents z1..z{len(self.latent_dims)} must be float32 of shapes {shapes}, the same N >= 1"
        z = [self._checked(z_l, spec, what) for z_l, spec in zip(z, self.input_specs["decode"])]
        same_n = [tf.debugging.assert_equal(tf.shape(z_l)[0], tf.shape(z[0])[0], message=what) for z_l in z[1:]]
        with tf.control_dependencies(same_n):
            z = [tf.debugging.assert_all_finite(z_l, f"z{l + 1} contains NaN or infinite values")
                 for l, z_l in enumerate(z)]
        return {"images": self.generator(z)}

    def _reconstruct(self, images, seed, langevin_steps):
        images, seed, langevin_steps = self._check_images(images), self._check_seed(seed), self._check_steps(
            langevin_steps)
        z_t, means = self._infer(images, seed, langevin_steps)
        if means is None:
            return {"L": self.generator(z_t)}
        return {"E": self.generator(means), "E+L": self.generator(z_t)}

    def _inpaint(self, images, mask, seed, langevin_steps):
        images, seed, langevin_steps = self._check_images(images), self._check_seed(seed), self._check_steps(
            langevin_steps)
        mask = self._checked(mask, self.input_specs["inpaint"][1], "mask must be float32 of the images' shape "
                             f"{self._shape_text('N', *self.image_shape)}, 1 = observed, 0 = missing")
        with tf.control_dependencies([tf.debugging.assert_equal(
                tf.shape(mask)[0], tf.shape(images)[0], message="mask must have one mask per image (the same N)")]):
            mask = self._unit_interval(mask, "mask values", " (1 = observed, 0 = missing)")
        occluded = masks.occlude(images, mask)
        z_t, means = self._infer(occluded, seed, langevin_steps, mask)
        z = self._mean_if_no_steps(langevin_steps, z_t, means)
        reconstruction = self.generator(z)
        recovered = occluded + (1.0 - mask) * reconstruction
        return {"recovered": recovered, "reconstruction": reconstruction, **self._z_dict(z)}

    def _sample(self, num_samples, seed):
        """num_samples in 1..max_samples, generated limits.SAMPLE_CHUNK at a time (the networks' memory
        is one chunk's); chunk 0 is drawn from `seed` itself, chunk k > 0 from fold_in(seed, k)."""
        seed = self._check_seed(seed)
        num_samples = self._checked(num_samples, self.input_specs["sample"][0], "num_samples must be an int32 scalar")
        what = f"num_samples must be in 1..{self.max_samples} (at most 2 GiB of images per call)"
        with tf.control_dependencies([tf.debugging.assert_positive(num_samples, message=what),
                                      tf.debugging.assert_less_equal(num_samples, self.max_samples, message=what)]):
            num_samples = tf.identity(num_samples)
        chunk = limits.SAMPLE_CHUNK
        num_chunks = (num_samples + chunk - 1) // chunk

        def draw(k, images):
            chunk_seed = tf.where(k > 0, tf.random.experimental.stateless_fold_in(seed, k), seed)
            x = self._model.sample(tf.minimum(chunk, num_samples - k * chunk), chunk_seed)
            return k + 1, images.write(k, tf.cast(x, tf.float32))

        images = tf.TensorArray(tf.float32, size=num_chunks, infer_shape=False,
                                element_shape=tf.TensorShape([None, *self.image_shape]))
        _, images = tf.while_loop(lambda k, _: k < num_chunks, draw, (tf.constant(0), images))
        return {"images": tf.ensure_shape(images.concat(), [None, *self.image_shape])}


# ---------------------------------------------------------------------------- validation

def as_seed(seed) -> tf.Tensor:
    """A stateless int32 seed of shape [2]: None -> fresh random, int s -> [s, 0], pair -> itself.

    Every value must fit in int32 (-2**31..2**31 - 1), as the `seed` input of the exported
    SavedModel, which takes any int32 pair; anything else is a ValueError naming the range."""
    if seed is None:
        return tf.constant(np.random.default_rng().integers(0, _INT32_MAX, size=2), tf.int32)
    if isinstance(seed, bool):
        raise TypeError(f"seed must be None, an int or a pair of ints, got {seed!r}")
    if isinstance(seed, numbers.Integral):
        values = [int(seed), 0]
    else:
        if isinstance(seed, (tf.Tensor, tf.Variable)):
            seed = seed.numpy()
        if isinstance(seed, (list, tuple)):  # not via numpy: a pair of ints too large for int64 is still one
            items = list(seed)
        else:
            try:
                array = np.asarray(seed)
            except Exception:  # noqa: BLE001 - anything not array-like
                array = None
            items = list(array) if array is not None and array.shape == (2,) else None
        if (items is None or len(items) != 2
                or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items)):
            raise TypeError(f"seed must be None, an int or a pair of ints (a stateless seed of shape [2]), "
                            f"got {seed!r}")
        values = [int(v) for v in items]
    if not all(_INT32_MIN <= v <= _INT32_MAX for v in values):
        raise ValueError(f"seed={seed!r} is out of range: an int seed and each value of a seed pair must be an "
                         f"integer in {_INT32_MIN}..{_INT32_MAX} (int32).")
    return tf.constant(values, tf.int32)


def _to_numpy(value, what: str) -> np.ndarray:
    if isinstance(value, (tf.Tensor, tf.Variable)):
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{what} must be a numpy array or a tensor, got {type(value).__name__} ({e})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{what} must be a numeric numpy array or tensor, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):  # numpy's cast to float32 would drop the imaginary part
        raise ValueError(f"{what} must be real numbers, got dtype {array.dtype}: pass the real part (np.real) if "
                         "that is what you mean.")
    return array


def _check_unit_range(array: np.ndarray, what: str, hint: str) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain NaN or infinite values.")
    if array.size:
        low, high = float(array.min()), float(array.max())
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            raise ValueError(f"{what} must be in [0, 1], got values from {low:g} to {high:g}{hint}")
    return np.clip(array.astype(np.float32), 0.0, 1.0)


class TrainedModel:
    """A trained model restored from a workdir (see the module docstring).

    Attributes: workdir, config (config_lib.RunConfig), method, image_shape (H, W, C), latent_dims
    (d_1, ..., d_L), num_layers (L), step (training step of the checkpoint), langevin_steps (the
    default T: the run's --eval_langevin_steps, else its training T), has_encoder, network (the
    method's object, e.g. methods.HiABP) and inference (the `Inference` graph functions).
    """

    def __init__(self, network, config: config_lib.RunConfig, image_shape, step: int, workdir: str | None = None):
        self.network, self.config, self.step, self.workdir = network, config, int(step), workdir
        self.image_shape = tuple(int(s) for s in image_shape)
        self.inference = Inference(network, config, self.image_shape)

    method = property(lambda self: self.config.method)
    latent_dims = property(lambda self: tuple(self.config.latent_dims))
    num_layers = property(lambda self: len(self.config.latent_dims))
    langevin_steps = property(lambda self: self.config.test_langevin_steps)
    has_encoder = property(lambda self: methods.METHOD_CLASSES[self.config.method].has_encoder)

    def __repr__(self):
        return (f"TrainedModel(method={self.method!r}, L={self.num_layers}, latent_dims={self.latent_dims}, "
                f"image_shape={self.image_shape}, step={self.step}, workdir={self.workdir!r})")

    # ------------------------------------------------------------------------ validation

    def _shape_text(self, batch="N") -> str:
        return str((batch, *self.image_shape)).replace("'", "")

    def _images(self, x, what="images") -> np.ndarray:
        """(N, H, W, C) float32 in [0, 1], promoting one image (or (N, H, W) grayscale) to a batch."""
        array = _to_numpy(x, what)
        h, w, c = self.image_shape
        if array.ndim == 4 and array.shape[1:] == (h, w, c):
            pass
        elif array.ndim == 3 and array.shape == (h, w, c):
            array = array[np.newaxis]
        elif array.ndim == 3 and c == 1 and array.shape[1:] == (h, w):
            array = array[..., np.newaxis]
        elif array.ndim == 2 and c == 1 and array.shape == (h, w):
            array = array[np.newaxis, ..., np.newaxis]
        else:
            single = f"({h}, {w}, {c})" + (f" or ({h}, {w})" if c == 1 else "")
            raise ValueError(f"expected {what} of shape {self._shape_text()} (or one image {single}) as the "
                             f"model was trained on, got shape {array.shape}; resize or convert them first.")
        if array.shape[0] == 0:
            raise ValueError(f"expected at least one image, got shape {array.shape}.")
        hint = ""
        if array.size and float(array.max()) > 1.0 + _RANGE_TOLERANCE:
            hint = "; 8-bit images (0..255) must be divided by 255 first."
        return _check_unit_range(array, what, hint or ".")

    def _mask(self, mask, batch_size: int) -> np.ndarray:
        """(N, H, W, C) float32 in [0, 1] from (N, H, W), (N, H, W, 1|C), or one mask (H, W) /
        (H, W, 1|C) for every image."""
        array = _to_numpy(mask, "mask")
        h, w, c = self.image_shape
        n = batch_size
        if array.ndim == 4 and array.shape[1:3] == (h, w) and array.shape[0] in (n, 1) and array.shape[3] in (1, c):
            pass
        elif array.ndim == 3 and array.shape == (n, h, w):
            array = array[..., np.newaxis]
        elif array.ndim == 3 and array.shape[:2] == (h, w) and array.shape[2] in (1, c):
            array = array[np.newaxis]
        elif array.ndim == 2 and array.shape == (h, w):
            array = array[np.newaxis, ..., np.newaxis]
        else:
            raise ValueError(
                f"expected a mask of shape ({n}, {h}, {w}) or ({n}, {h}, {w}, 1 or {c}) for {n} image(s) of "
                f"shape {(h, w, c)} (or one mask ({h}, {w}) for all), 1 = observed, 0 = missing; "
                f"got shape {array.shape}.")
        array = _check_unit_range(array, "mask values", " (1 = observed, 0 = missing).")
        return np.ascontiguousarray(np.broadcast_to(array, (n, h, w, c)), dtype=np.float32)

    def _steps(self, langevin_steps) -> int:
        if langevin_steps is None:
            return self.langevin_steps
        return limits.check_int(langevin_steps, "langevin_steps", 0, limits.LANGEVIN_STEPS_MAX,
                                f"or None for the run's T = {self.langevin_steps}")

    def _check_encoder_steps(self, steps: int) -> None:
        if not self.has_encoder and steps == 0:
            raise ValueError(f"method {self.method!r} has no encoder: inference starts from N(0, I) noise, so "
                             "langevin_steps must be > 0 (langevin_steps=0 would return the noise itself).")

    def _latents(self, z) -> list[np.ndarray]:
        dims = self.latent_dims
        expected = ", ".join(f"(N, {d})" for d in dims)
        if isinstance(z, dict):
            try:
                z = [z[f"z{l + 1}"] for l in range(len(dims))]
            except KeyError:
                raise ValueError(f"expected latents as a dict with keys {[f'z{l + 1}' for l in range(len(dims))]}, "
                                 f"got keys {sorted(z)}.") from None
        elif not isinstance(z, (list, tuple)):
            if len(dims) == 1:
                z = [z]
            else:
                raise ValueError(f"expected a list of {len(dims)} latent arrays of shapes [{expected}] "
                                 f"(layer 1 = bottom first), got one {type(z).__name__}.")
        if len(z) != len(dims):
            raise ValueError(f"expected {len(dims)} latent arrays of shapes [{expected}] (layer 1 = bottom "
                             f"first), got {len(z)}.")
        arrays = [_to_numpy(z_l, f"latent layer {l + 1}") for l, z_l in enumerate(z)]
        shapes = [a.shape for a in arrays]
        if (any(a.ndim != 2 or a.shape[1] != d for a, d in zip(arrays, dims))
                or len({a.shape[0] for a in arrays}) != 1 or arrays[0].shape[0] == 0):
            raise ValueError(f"expected latent arrays of shapes [{expected}] with the same N >= 1 (layer 1 = "
                             f"bottom first), got shapes {shapes}.")
        arrays = [a.astype(np.float32) for a in arrays]
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("latents contain NaN or infinite values.")
        return arrays

    def _layer(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 1 <= layer <= self.num_layers:
            raise ValueError(f"layer is 1-based (1 = bottom, {self.num_layers} = top) and must be in "
                             f"1..{self.num_layers}, got {layer!r}.")
        return int(layer)

    # ------------------------------------------------------------------------------- API

    def encode(self, x, langevin_steps=None, seed=None) -> list[np.ndarray]:
        """Hierarchical latents of images x (N, H, W, C) in [0, 1].

        Returns [z^1 (N, d_1), ..., z^L (N, d_L)], layer 1 (bottom) first. langevin_steps=0: the
        encoder's mean mu_phi(x) (deterministic, seed unused); None: the run's T
        (`self.langevin_steps`); T > 0: T Langevin steps on the posterior p(z | x) from a sample
        of the encoder (from N(0, I) for abp / abp_persistent, which have no encoder and need T > 0).
        """
        images = self._images(x)
        steps = self._steps(langevin_steps)
        self._check_encoder_steps(steps)
        out = self.inference.encode(tf.constant(images), as_seed(seed), tf.constant(steps, tf.int32))
        return [out[f"z{l + 1}"].numpy() for l in range(self.num_layers)]

    def decode(self, z) -> np.ndarray:
        """Images g(z) (N, H, W, C) in [0, 1] from latents [z^1 (N, d_1), ..., z^L (N, d_L)]
        (a list bottom first, or a dict {"z1": ..., "zL": ...})."""
        arrays = self._latents(z)
        return self.inference.decode(*[tf.constant(a) for a in arrays])["images"].numpy()

    def reconstruct(self, x, mode=None, langevin_steps=None, seed=None) -> np.ndarray:
        """Reconstructions (N, H, W, C) of images x (N, H, W, C) in [0, 1].

        mode "E": g(mu_phi(x)), the encoder's mean decoded; "E+L" (the default for methods with an
        encoder): g(z_T) after langevin_steps (default T) Langevin steps from the encoder's sample;
        "L" (the only mode, and the default, of abp / abp_persistent): g(z_T) after Langevin steps
        from N(0, I) noise.
        """
        modes = ("E", "E+L", "L") if self.has_encoder else ("L",)
        mode = ("E+L" if self.has_encoder else "L") if mode is None else mode
        if mode not in modes:
            extra = "" if self.has_encoder else " (it has no encoder, so inference starts from N(0, I) noise)"
            raise ValueError(f"mode={mode!r} is not available for method {self.method!r}{extra}: use one of "
                             f"{', '.join(repr(m) for m in modes)}.")
        images = tf.constant(self._images(x))
        seed = as_seed(seed)
        if mode == "E":
            z = self.inference.encode(images, seed, tf.constant(0, tf.int32))
        else:
            steps = self._steps(langevin_steps)
            self._check_encoder_steps(steps)
            fn = self.inference.encode_from_noise if mode == "L" and self.has_encoder else self.inference.encode
            z = fn(images, seed, tf.constant(steps, tf.int32))
        return self.inference.decode(*[z[f"z{l + 1}"] for l in range(self.num_layers)])["images"].numpy()

    def sample(self, n: int, seed=None) -> np.ndarray:
        """n unconditional samples (n, H, W, C): every z^l ~ N(0, I) (LVAE: its hierarchical prior)."""
        n = limits.check_num_samples(n, "n", self.image_shape)
        return self.inference.sample(tf.constant(int(n), tf.int32), as_seed(seed))["images"].numpy()

    def resample_layer(self, z, layer: int, seed=None) -> list[np.ndarray]:
        """A copy of latents z ([z^1 (N, d_1), ..., z^L (N, d_L)]) with layer `layer` (1-based:
        1 = bottom, L = top) redrawn from N(0, I) for every example, the other layers unchanged;
        decode the result with `decode`. (LVAE: a layer below the top is redrawn from its prior
        p(z^l | z^{l+1}) given the current layer above.) As in Figure 7 of the paper."""
        arrays = self._latents(z)
        layer = self._layer(layer)
        seed = as_seed(seed)
        new = self.network.resample_layer([tf.constant(a) for a in arrays], layer - 1, seed).numpy()
        out = [a.copy() for a in arrays]
        out[layer - 1] = new.astype(np.float32)
        return out

    def inpaint(self, x, mask, langevin_steps=None, seed=None, return_details=False):
        """Fills the missing pixels of images x (N, H, W, C) in [0, 1].

        mask: (N, H, W) or (N, H, W, 1 or C), or one (H, W) / (H, W, 1 or C) mask for every image;
        1 = observed, 0 = missing (as in hiabp_tf.data.masks). The missing pixels are set to 0
        (masks.occlude), the encoder initialises z from the occluded image, and langevin_steps
        (default T; 0 = the encoder's mean) Langevin steps run on the masked energy, in which only
        observed pixels count. Returns the recovered images (N, H, W, C): observed pixels are
        exactly those of x, missing ones come from the reconstruction g(z_T). With
        return_details=True, returns a dict {"recovered", "reconstruction" (g(z_T) everywhere),
        "occluded" (x with missing pixels 0), "mask" (N, H, W, C), "latents" [z^1, ..., z^L]}.
        """
        images = self._images(x)
        mask_array = self._mask(mask, images.shape[0])
        steps = self._steps(langevin_steps)
        self._check_encoder_steps(steps)
        out = self.inference.inpaint(tf.constant(images), tf.constant(mask_array), as_seed(seed),
                                     tf.constant(steps, tf.int32))
        # Observed pixels exactly as given, whatever the float arithmetic of the graph.
        recovered = np.where(mask_array == 1.0, images, out["recovered"].numpy())
        if not return_details:
            return recovered
        return {"recovered": recovered, "reconstruction": out["reconstruction"].numpy(),
                "occluded": masks.occlude(images, mask_array).numpy(), "mask": mask_array,
                "latents": [out[f"z{l + 1}"].numpy() for l in range(self.num_layers)]}


def load(workdir: str) -> TrainedModel:
    """The model of a training workdir, restored from its latest checkpoint (or, if that one is
    unreadable, the newest readable one, with a warning; `step` says which). Only reads the
    workdir, so it can be used while a training writes it.

    Raises errors.WorkdirError when `workdir` holds no training run or no readable checkpoint."""
    workdir = os.fspath(workdir)
    network, config, image_shape, step = workdir_lib.restore(workdir)
    return TrainedModel(network, config, image_shape, step, workdir)
