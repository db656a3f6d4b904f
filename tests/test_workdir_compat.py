"""Workdirs written by earlier versions keep working: tests/fixtures/workdir_v1* were trained (2 tiny
updates, HiABP L=2 and LVAE L=2) and evaluated by the flat-package version of hiabp_tf (before the
package was regrouped by concern); their checkpoints must restore into today's classes and evaluate
to the numbers recorded beside them, and hiabp_tf.load must read them (the v1 "lvae" is today's
"lvae_all_layers")."""

import json
import os
import shutil

import numpy as np
import pytest

import hiabp_tf
from hiabp_tf import evaluate

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["workdir_v1", "workdir_v1_lvae"])
def test_an_old_workdir_evaluates_to_its_recorded_numbers(name, tmp_path):
    workdir = str(tmp_path / name)
    shutil.copytree(os.path.join(FIXTURES, name), workdir)  # evaluate writes its JSON into the workdir
    with open(os.path.join(workdir, "eval_mnist_5k_test.json")) as f:
        recorded = json.load(f)
    result = evaluate.evaluate(workdir)
    # The LVAE of v1 decoded x from every layer: today's "lvae_all_layers" (the "lvae" is Sonderby's).
    assert result["step"] == recorded["step"] == 2
    assert result["method"] == {"lvae": "lvae_all_layers"}.get(recorded["method"], recorded["method"])
    for key in ("mse_E", "mse_EL", "mse_L"):
        if recorded[key] is None:
            assert result[key] is None
        else:
            np.testing.assert_allclose(result[key], recorded[key], rtol=1e-5)
    model = hiabp_tf.load(workdir)
    assert model.step == 2 and model.latent_dims == (4, 4)
