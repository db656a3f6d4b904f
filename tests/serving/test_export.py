"""SavedModel export (hiabp_tf/export.py): written by the command line, loaded in a fresh process with
plain TensorFlow (hiabp_tf never imported) and compared with the Python API on the same inputs and
seeds. One tiny HiABP (L = 2) trained for 60 steps on mnist_5k is shared by the module."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hiabp_tf
from hiabp_tf.checks import errors
from hiabp_tf.data import input_pipeline
from hiabp_tf.serving import export

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
ENV["TF_CPP_MIN_LOG_LEVEL"] = "2"

# Runs in a fresh process whose sys.path cannot reach hiabp_tf (cwd is a temporary folder).
PLAIN_TF = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    saved, inputs, outputs = sys.argv[1:4]
    model = tf.saved_model.load(saved)
    data = np.load(inputs)
    x, mask = tf.constant(data["x"]), tf.constant(data["mask"])
    seed = tf.constant([3, 0], tf.int32)
    sig = model.signatures
    out = {}
    mean = sig["encode"](images=x, seed=seed, langevin_steps=tf.constant(0))
    z = sig["encode"](images=x, seed=seed, langevin_steps=tf.constant(5))
    for k in mean:
        out["mean_" + k], out["z_" + k] = mean[k].numpy(), z[k].numpy()
    out["decoded"] = sig["decode"](**z)["images"].numpy()
    for k, v in sig["reconstruct"](images=x, seed=seed, langevin_steps=tf.constant(5)).items():
        out["reconstruct_" + k] = v.numpy()
    out["recovered"] = sig["inpaint"](images=x, mask=mask, seed=seed, \
langevin_steps=tf.constant(5))["recovered"].numpy()
    out["samples"] = sig["sample"](num_samples=tf.constant(4), seed=tf.constant([7, 0]))["images"].numpy()
    extreme = tf.constant([2**31 - 1, -2**31], tf.int32)  # any int32 pair is a seed
    out["samples_extreme_seed"] = sig["sample"](num_samples=tf.constant(4), seed=extreme)["images"].numpy()
    out["signatures"] = np.array(sorted(sig))
    assert "hiabp_tf" not in sys.modules, "the SavedModel must load without hiabp_tf"
    np.savez(outputs, **out)
    print("hiabp_tf" in sys.modules)
""")


@pytest.fixture(scope="module")
def workdir(tiny_trained_workdir):
    """The session's tiny trained HiABP (tests/conftest.py)."""
    return tiny_trained_workdir


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    """`python -m hiabp_tf.export` into a fresh folder; returns (out, the JSON it printed)."""
    out = str(tmp_path_factory.mktemp("export") / "saved")
    result = subprocess.run([sys.executable, "-m", "hiabp_tf.export", f"--workdir={workdir}", f"--out={out}"],
                            cwd=REPO, env={**ENV, "PYTHONPATH": REPO}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_export_writes_a_saved_model_and_its_description(exported):
    out, printed = exported
    assert os.path.isfile(os.path.join(out, "saved_model.pb")) and os.path.isdir(os.path.join(out, "variables"))
    with open(os.path.join(out, export.INFO_FILE)) as f:
        info = json.load(f)
    assert printed == {"out": out, **info}
    assert info["method"] == "hiabp" and info["image_shape"] == [28, 28, 1] and info["latent_dims"] == [8, 8]
    assert info["langevin_steps"] == 10 and info["step"] == 60 and info["config"]["width"] == 8
    assert set(info["signatures"]) == {"encode", "decode", "reconstruct", "inpaint", "sample"}
    assert info["signatures"]["decode"]["inputs"]["z2"] == {"shape": [None, 8], "dtype": "float32"}
    assert info["signatures"]["reconstruct"]["outputs"] == ["E", "E+L"]
    assert not [name for name in os.listdir(os.path.dirname(out)) if name.startswith(".tmp")]


@pytest.mark.slow
def test_saved_model_loads_without_hiabp_tf_and_matches_the_python_api(exported, workdir, tmp_path):
    out, _ = exported
    _, _, x_test, _ = input_pipeline.mnist_5k_arrays()
    x = x_test[::200].astype(np.float32) / 255.0  # 5 digits
    mask = np.ones_like(x)
    mask[:, 8:20, 8:20] = 0.0
    np.savez(tmp_path / "inputs.npz", x=x, mask=mask)
    (tmp_path / "plain_tf.py").write_text(PLAIN_TF)
    result = subprocess.run([sys.executable, "plain_tf.py", out, "inputs.npz", "outputs.npz"], cwd=tmp_path,
                            env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    saved = np.load(tmp_path / "outputs.npz")
    assert sorted(saved["signatures"]) == ["decode", "encode", "inpaint", "reconstruct", "sample"]

    model = hiabp_tf.load(workdir)
    close = dict(rtol=0, atol=1e-4)
    for name, ours in zip(("z1", "z2"), model.encode(x, langevin_steps=0)):
        np.testing.assert_allclose(saved[f"mean_{name}"], ours, **close)
    z = model.encode(x, langevin_steps=5, seed=3)
    for name, ours in zip(("z1", "z2"), z):
        np.testing.assert_allclose(saved[f"z_{name}"], ours, **close)
    np.testing.assert_allclose(saved["decoded"], model.decode(z), **close)
    np.testing.assert_allclose(saved["reconstruct_E"], model.reconstruct(x, mode="E"), **close)
    np.testing.assert_allclose(saved["reconstruct_E+L"], model.reconstruct(x, langevin_steps=5, seed=3), **close)
    np.testing.assert_allclose(saved["recovered"], model.inpaint(x, mask, langevin_steps=5, seed=3), **close)
    np.testing.assert_allclose(saved["samples"], model.sample(4, seed=7), **close)
    np.testing.assert_allclose(saved["samples_extreme_seed"], model.sample(4, seed=[2**31 - 1, -2**31]), **close)
    assert not np.allclose(saved["samples_extreme_seed"], saved["samples"])


@pytest.mark.slow
def test_a_finished_export_is_never_overwritten_without_the_flag(exported, workdir, tmp_path):
    out, _ = exported
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)}
    with pytest.raises(errors.ConfigError, match="--out=.*not empty.*--overwrite"):
        export.export(workdir, out)
    assert {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)} == before

    # --overwrite replaces a non-empty folder; an empty one is used as is.
    target = tmp_path / "target"
    target.mkdir()
    (target / "old.txt").write_text("old")
    info = export.export(workdir, str(target), overwrite=True)
    assert sorted(os.listdir(target)) == sorted(os.listdir(out)) and info["step"] == 60
    empty = tmp_path / "empty"
    empty.mkdir()
    export.export(workdir, str(empty))
    assert os.path.isfile(empty / "saved_model.pb")
    assert not [name for name in os.listdir(tmp_path) if name.startswith((".tmp", ".old"))]


def test_export_errors_name_the_flag(tmp_path, workdir):
    with pytest.raises(errors.WorkdirError, match="--workdir"):
        export.export(str(tmp_path / "no_run"), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.ConfigError, match="--out=.*is a file"):
        export.export(workdir, str(tmp_path / "file"))
