"""Issue 22, class 4: the SavedModel trusted its callers. Its signatures check their inputs in the
graph (shape, N >= 1, finite values in [0, 1], T >= 0, num_samples in range) with tf.debugging
assertions that name the input; the Python API refuses the same inputs with a ValueError before it
calls TensorFlow. The SavedModel is called in a separate process: a regression (a C++ check
failure) would abort it, not the test run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf import train
from hiabp_tf.checks import limits
from hiabp_tf.serving import api
from hiabp_tf.serving import export

TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=50, langevin_steps=2)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
ENV["TF_CPP_MIN_LOG_LEVEL"] = "2"

# Bad inputs to every signature: name -> (call, what the error must say).
PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    sig = tf.saved_model.load(sys.argv[1]).signatures
    s, T, x = tf.constant([0, 0]), tf.constant(2), tf.zeros([3, 28, 28, 1])
    cases = {
        "rank-3 images": (lambda: sig["encode"](images=tf.zeros([28, 28, 1]), seed=s, langevin_steps=T),
                          "images must be a float32 batch of shape (N, 28, 28, 1) with N >= 1"),
        "other image size": (lambda: sig["reconstruct"](images=tf.zeros([2, 32, 32, 3]), seed=s, langevin_steps=T),
                             "got shape] [2 32 32"),
        "no image": (lambda: sig["encode"](images=tf.zeros([0, 28, 28, 1]), seed=s, langevin_steps=T),
                     "with N >= 1"),
        "NaN images": (lambda: sig["encode"](images=tf.fill([2, 28, 28, 1], np.nan), seed=s, langevin_steps=T),
                       "images contain NaN or infinite values"),
        "0..255 images": (lambda: sig["reconstruct"](images=tf.fill([2, 28, 28, 1], 255.0), seed=s,
                                                     langevin_steps=T), "must be divided by 255 first"),
        "negative T": (lambda: sig["encode"](images=x, seed=s, langevin_steps=tf.constant(-1)),
                       "langevin_steps must be >= 0"),
        "seed of 3": (lambda: sig["encode"](images=x, seed=tf.constant([1, 2, 3]), langevin_steps=T), "seed"),
        "latent of another size": (lambda: sig["decode"](z1=tf.zeros([2, 5]), z2=tf.zeros([2, 4])),
                                   "must be float32 of shapes (N, 4), (N, 4)"),
        "latents of two N": (lambda: sig["decode"](z1=tf.zeros([2, 4]), z2=tf.zeros([3, 4])), "the same N"),
        "infinite latent": (lambda: sig["decode"](z1=tf.fill([2, 4], np.inf), z2=tf.zeros([2, 4])),
                            "z1 contains NaN or infinite values"),
        "no sample": (lambda: sig["sample"](num_samples=tf.constant(0), seed=s), "num_samples must be in 1.."),
        "too many samples": (lambda: sig["sample"](num_samples=tf.constant(2**31 - 1), seed=s),
                             "num_samples must be in 1.."),
        "masks for 2 of 3 images": (lambda: sig["inpaint"](images=x, mask=tf.ones([2, 28, 28, 1]), seed=s,
                                                           langevin_steps=T), "one mask per image"),
        "mask of 2": (lambda: sig["inpaint"](images=x, mask=2 * tf.ones([3, 28, 28, 1]), seed=s, langevin_steps=T),
                      "mask values must be in [0, 1]"),
        "float64 images": (lambda: sig["encode"](images=tf.zeros([2, 28, 28, 1], tf.float64), seed=s,
                                                 langevin_steps=T), "expected to be a float tensor"),
    }
    out = {}
    for name, (call, expected) in cases.items():
        try:
            call()
            out[name] = "no error"
        except tf.errors.InvalidArgumentError as e:
            out[name] = "ok" if expected in e.message else e.message[:500]
    out["1201 samples"] = list(sig["sample"](num_samples=tf.constant(1201), seed=s)["images"].shape)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def untrained():
    """A TrainedModel of freshly built tiny networks: the API's checks need no training."""
    config = config_lib.RunConfig(**TINY)
    return api.TrainedModel(methods.build_model(config, (28, 28, 1), 4000), config, (28, 28, 1), step=0)


def test_the_api_refuses_what_the_saved_model_refuses_before_calling_tensorflow(untrained, monkeypatch):
    """The issue's cases through hiabp_tf.load's model: each a ValueError saying what was expected,
    raised before any graph function runs (they are replaced by one that fails if called)."""
    def no_graph(*args, **kwargs):
        raise AssertionError("a graph function was called with a bad input")
    for name in ("encode", "decode", "reconstruct", "inpaint", "sample", "encode_from_noise"):
        monkeypatch.setattr(untrained.inference, name, no_graph)
    x = np.zeros((3, 28, 28, 1), np.float32)
    cases = [(lambda: untrained.encode(np.zeros((28, 28, 3), np.float32)),
              r"expected images of shape \(N, 28, 28, 1\)"),
             (lambda: untrained.encode(np.zeros((2, 1, 28, 28, 1), np.float32)), "got shape"),
             (lambda: untrained.reconstruct(np.zeros((0, 28, 28, 1), np.float32)), "at least one image"),
             (lambda: untrained.encode(np.full((2, 28, 28, 1), np.nan, np.float32)), "NaN"),
             (lambda: untrained.reconstruct(np.full((2, 28, 28, 1), 255.0, np.float32)), "divided by 255"),
             (lambda: untrained.encode(x, langevin_steps=-1), "langevin_steps=-1 must be an integer in 0.."),
             (lambda: untrained.decode([np.zeros((2, 5)), np.zeros((2, 4))]), r"\(N, 4\), \(N, 4\)"),
             (lambda: untrained.decode([np.zeros((2, 4)), np.zeros((3, 4))]), "the same N"),
             (lambda: untrained.decode([np.full((2, 4), np.inf), np.zeros((2, 4))]), "NaN or infinite"),
             (lambda: untrained.sample(0), "n=0 must be an integer in 1.."),
             (lambda: untrained.inpaint(x, np.ones((2, 28, 28))), "expected a mask of shape"),
             (lambda: untrained.inpaint(x, np.full((28, 28), np.nan)), "NaN")]
    for call, expected in cases:
        with pytest.raises(ValueError, match=expected):
            call()


def test_the_graph_functions_check_their_inputs(untrained):
    """The graph functions themselves (the SavedModel's signatures), in this process for the cases
    that cannot abort it: a readable InvalidArgumentError naming the input."""
    inference = untrained.inference
    s, x = tf.constant([0, 0]), tf.zeros([2, 28, 28, 1])
    cases = [(lambda: inference.encode(tf.fill([2, 28, 28, 1], 2.0), s, tf.constant(1)), "images must be in"),
             (lambda: inference.reconstruct(x, s, tf.constant(-3)), "langevin_steps must be >= 0"),
             (lambda: inference.sample(tf.constant(inference.max_samples + 1), s), "num_samples must be in 1.."),
             (lambda: inference.decode(tf.zeros([2, 4]), tf.fill([2, 4], np.nan)), "z2 contains NaN")]
    for call, expected in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
            call()
    assert inference.max_samples == limits.max_samples((28, 28, 1))


def test_large_samples_are_drawn_in_chunks_that_extend_a_smaller_request(untrained):
    """sample(n) for n > 500 is 500 at a time: its first 500 are sample(500), the next come from
    fold_in(seed, 1); n <= 500 is the method's own sample (the SavedModel's too)."""
    chunk = limits.SAMPLE_CHUNK
    seed = tf.constant([3, 0])
    big = untrained.inference.sample(tf.constant(chunk + 2), seed)["images"].numpy()
    assert big.shape == (chunk + 2, 28, 28, 1)
    np.testing.assert_allclose(big[:chunk], untrained.network.sample(chunk, seed).numpy(), atol=1e-6)
    np.testing.assert_allclose(big[chunk:], untrained.network.sample(
        2, tf.random.experimental.stateless_fold_in(seed, 1)).numpy(), atol=1e-6)


@pytest.mark.slow
def test_the_saved_model_refuses_bad_inputs_without_dying(tmp_path):
    """The issue's rank-3 batch (it aborted the process), other shapes, NaN and 0..255 images,
    a negative T, latents of the wrong size, sample(num_samples=0) (it returned (0, 31, 31, 1)), and
    more of my own: each an InvalidArgumentError naming the input, and the process lives on."""
    workdir = str(tmp_path / "run")
    train.train(config_lib.RunConfig(**TINY), workdir, 0, log_every=100, eval_every=10**6, eval_examples=10)
    out = str(tmp_path / "saved")
    info = export.export(workdir, out)
    assert info["signatures"]["encode"]["inputs"]["images"] == {"shape": [None, 28, 28, 1], "dtype": "float32"}
    assert "num_samples in 1..684784" in info["checks"]
    (tmp_path / "probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "probe.py", out], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results.pop("1201 samples") == [1201, 28, 28, 1]
    assert results == {name: "ok" for name in results} and len(results) == 15
