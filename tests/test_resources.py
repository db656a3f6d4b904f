"""Issue 22, class 5: resources that run out. A full disk during a checkpoint save, or memory that runs
out during training, is one `error:` saying the latest checkpoint is intact (it is, and the run
resumes from it); an unreadable config.json is an error naming it, never overwritten; very large
requests are refused or done in parts; files are written whole or not at all."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf.checks import errors
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import inpaint
from hiabp_tf.training import loop as train  # the loop itself: its module attributes are patched or called

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=100, langevin_steps=2)
DISK_FULL = ("{{function_node __wrapped__SaveV2}} PATH/part-00000-of-00001.data-00000-of-00001.tempstate1; "
             "No space left on device [Op:SaveV2]")


def _train(workdir, steps, **kwargs):
    return train.train(config_lib.RunConfig(**TINY), str(workdir), steps,
                       **{**dict(log_every=100, eval_every=10**6, eval_examples=10, checkpoint_every=2), **kwargs})


def test_out_of_space_and_out_of_memory_are_told_apart():
    full = tf.errors.ResourceExhaustedError(None, None, DISK_FULL.replace("PATH", "/w/checkpoints/ckpt-4_temp"))
    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[100000,64,28,28]")
    assert errors.is_out_of_space(full) and not errors.is_out_of_memory(full)
    assert errors.is_out_of_memory(oom) and not errors.is_out_of_space(oom)
    assert errors.is_out_of_space(OSError(28, "No space left on device")) and errors.is_out_of_memory(MemoryError())
    assert not errors.is_out_of_space(OSError(13, "Permission denied")) and not errors.is_out_of_memory(ValueError())
    message = str(errors.resource_error(full, "KEPT.", "ADVICE"))
    assert message.startswith("no space left on the device (/w/checkpoints/ckpt-4_temp/part") and "{{" not in message
    assert message.endswith("KEPT. Free some space, then rerun the same command.")


@pytest.mark.slow
def test_a_full_disk_during_a_save_keeps_the_latest_checkpoint_and_resumes(tmp_path, monkeypatch):
    """The issue's case (a ResourceExhaustedError traceback): one error naming the intact checkpoint;
    the unfinished save's temporary folder is removed; the rerun resumes from that checkpoint and ends
    with the weights of an uninterrupted run. Of my own: memory that runs out during a step, and a
    full disk while the sitting is recorded."""
    workdir = tmp_path / "run"
    _train(workdir, 2)
    real_save = tf.train.CheckpointManager.save

    def full_disk(self, checkpoint_number=None, **kwargs):
        temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
        os.makedirs(temp)  # what a real full disk leaves
        raise tf.errors.ResourceExhaustedError(None, None, DISK_FULL.replace("PATH", temp))
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(errors.ResourceError) as error:
        _train(workdir, 4)
    message = str(error.value)
    assert message.startswith("no space left on the device (") and "ckpt-4_temp" in message
    assert f"the latest checkpoint of --workdir={workdir}, ckpt-2 (step 2), is intact" in message
    assert "rerunning the same command resumes from it" in message
    assert not (workdir / "checkpoints" / "ckpt-4_temp").exists()
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    original = train.methods.build_model

    def out_of_memory(*args, **kwargs):
        model = original(*args, **kwargs)

        def step(*a, **k):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4,4]")
        model.train_step = step
        return model
    monkeypatch.setattr(train.methods, "build_model", out_of_memory)
    with pytest.raises(errors.ResourceError, match=r"^out of memory \(OOM when allocating .*ckpt-2 \(step 2\), is "
                                                   r"intact.*smaller --batch_size"):
        _train(workdir, 4)
    monkeypatch.setattr(train.methods, "build_model", original)

    def record_on_full_disk(workdir_, sitting):
        raise OSError(28, "No space left on device", os.path.join(workdir_, sittings.SITTINGS_FILE))
    monkeypatch.setattr(sittings, "record", record_on_full_disk)
    with pytest.raises(errors.ResourceError, match=r"no space left on the device writing .*sittings\.json.*ckpt-4 "
                                                   r"\(step 4\), is intact"):
        _train(workdir, 4)  # ckpt-4 saved, then its record failed
    monkeypatch.undo()
    resumed = _train(workdir, 6)
    straight = _train(tmp_path / "straight", 6)
    for a, b in zip(workdir_lib.network_weights(resumed), workdir_lib.network_weights(straight)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_commands_end_a_full_disk_or_memory_in_one_error_line(tmp_path):
    """Whatever a command did not say more about: exit status 2, one `error:`, no traceback."""
    code = textwrap.dedent("""
        import sys
        from hiabp_tf.checks import cli
        def main():
            if sys.argv[1] == "disk":
                raise OSError(28, "No space left on device", "/w/eval_mnist_5k_test.json")
            raise MemoryError()
        sys.argv = sys.argv[:1]
        cli.run(main, workdir_flag=None)
    """)
    for kind, said in (("disk", "error: no space left on the device writing /w/eval_mnist_5k_test.json"),
                       ("memory", "error: out of memory (MemoryError). Nothing finished was overwritten")):
        done = subprocess.run([sys.executable, "-c", code.replace("sys.argv[1]", repr(kind))], cwd=REPO, env=ENV,
                              capture_output=True, text=True)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unreadable_config_json_is_named_and_never_overwritten(tmp_path):
    """The issue's truncated config.json (a JSONDecodeError traceback from train and evaluate), and
    of my own: one without a key, one that is a list, one with a setting out of range."""
    good = {"config": config_lib.RunConfig(**TINY).to_json(), "image_shape": [28, 28, 1], "num_train_examples": 4000}
    text = json.dumps(good)
    bad_width = dict(good, config=dict(good["config"], width=2**40))
    for name, content, said in (("truncated", text[:len(text) // 2], "is unreadable (JSONDecodeError"),
                                ("no key", json.dumps({"config": good["config"]}), "is unreadable (KeyError"),
                                ("a list", "[]", "is unreadable (TypeError"),
                                ("out of range", json.dumps(bad_width),
                                 "records settings this version refuses (--width=1099511627776")):
        workdir = tmp_path / name.replace(" ", "_")
        workdir.mkdir()
        (workdir / workdir_lib.CONFIG_FILE).write_text(content)
        for call in (lambda: evaluate.evaluate(str(workdir)),
                     lambda: train.train(config_lib.RunConfig(**TINY), str(workdir), 1)):
            expected = re.escape(f"--workdir={workdir}: {workdir}/config.json {said}")
            with pytest.raises(errors.WorkdirError, match=f"^{expected}"):
                call()
        assert (workdir / workdir_lib.CONFIG_FILE).read_text() == content


def test_an_unreadable_sittings_file_is_kept_aside(tmp_path):
    (tmp_path / sittings.SITTINGS_FILE).write_text('[{"from_step": 0, "to_st')
    sittings.record(str(tmp_path), dict(started="2026-01-01T00:00:00", machine="m", precision="float32",
                                        from_step=4, to_step=6, seconds=1.0))
    aside = [n for n in os.listdir(tmp_path) if n.startswith(sittings.SITTINGS_FILE + ".unreadable-")]
    assert len(aside) == 1 and (tmp_path / aside[0]).read_text() == '[{"from_step": 0, "to_st'
    assert [s["from_step"] for s in sittings.read(str(tmp_path))] == [4]


def test_an_output_image_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = str(tmp_path / "recovered.png")
    inpaint.write_png(path, np.zeros((4, 4, 1), np.float32))
    before = open(path, "rb").read()

    def cut_short(name, contents):
        with open(name, "wb") as f:
            f.write(b"\x89PN")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
    monkeypatch.setattr(inpaint.tf.io, "write_file", cut_short)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        inpaint.write_png(path, np.ones((4, 4, 1), np.float32))
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["recovered.png"]


@pytest.mark.slow
def test_inpainting_many_images_is_bounded(tmp_path, monkeypatch):
    """Of my own: before_after.png shows at most GRID_IMAGES_MAX images (a grid of all could exhaust
    memory), every image keeps its own files; more files than one run can hold are refused."""
    workdir = str(tmp_path / "run")
    _train(workdir, 0)
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        inpaint.write_png(str(folder / f"d{i}.png"), np.full((28, 28, 1), i / 3, np.float32))
    monkeypatch.setattr(inpaint, "GRID_IMAGES_MAX", 2)
    summary = inpaint.inpaint_files(workdir, str(folder), "pepper", str(tmp_path / "out"), langevin_steps=1)
    assert summary["num_images"] == 3 and summary["grid_images"] == 2
    assert all(os.path.isfile(f["recovered"]) for f in summary["files"])
    monkeypatch.setattr(inpaint.limits, "max_samples", lambda shape: 2)
    with pytest.raises(errors.ConfigError, match="--images names 3 files, more than the 2 of one run"):
        inpaint.inpaint_files(workdir, str(folder), "pepper", str(tmp_path / "out2"))
