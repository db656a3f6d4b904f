"""The diagnosis of the baselines: active units, KL per layer and HiABP's chains against closed forms on
tiny models; the notes and the page written from constructed measurements (no training)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.evaluation import diagnostics as measure
from hiabp_tf.experiments import diagnostics

SHAPE = (28, 28, 1)


def _model(method, num_layers=2, dims=(3, 3)):
    config = config_lib.RunConfig(method=method, num_layers=num_layers, latent_dims=dims, width=4, batch_size=4,
                                  sigma=0.5, langevin_steps=2, precision="float32")
    return methods.build_model(config, SHAPE, 8)


def test_active_units_count_the_dimensions_whose_mean_varies_over_the_images():
    rng = np.random.default_rng(0)
    means = np.stack([rng.normal(0, 1.0, 2000), rng.normal(3, 0.05, 2000), np.full(2000, 0.7),
                      rng.normal(0, 0.12, 2000)], axis=1)  # variances 1, 0.0025, 0, 0.0144
    assert measure.active_units(means) == 2 and measure.ACTIVE_THRESHOLD == 0.01
    assert measure.active_units(means, threshold=0.02) == 1


def test_vae_and_vlae_layers_are_the_encoders_gaussians_and_their_closed_form_kl():
    model = _model("vlae")
    x = tf.random.stateless_uniform((6, *SHAPE), [1, 2])
    layers = measure.encoder_layers(model, x, tf.constant([0, 1]))
    mus, log_sigmas = model.encoder(x)
    for layer, mu, log_sigma in zip(layers, mus, log_sigmas):
        sigma = np.exp(log_sigma.numpy())
        kl = np.sum(0.5 * (sigma ** 2 + mu.numpy() ** 2 - 1) - np.log(sigma), axis=1)  # KL(N(mu, s^2) || N(0, 1))
        np.testing.assert_allclose(layer["kl"], kl, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer["mean"], mu.numpy(), rtol=1e-6)
        np.testing.assert_allclose(layer["sigma"], sigma, rtol=1e-6)
    assert measure.encoder_layers(_model("abp", 1, (3,)), x, tf.constant([0, 1])) is None


def test_the_lvae_layers_are_its_top_down_posterior():
    model = _model("lvae")
    x = tf.random.stateless_uniform((6, *SHAPE), [1, 2])
    layers = measure.encoder_layers(model, x, tf.constant([0, 1]))
    means, _ = model.posterior(x, None)
    _, kls = model.posterior(x, tf.constant([0, 1]))
    for layer, mean, kl in zip(layers, means, kls):
        np.testing.assert_allclose(layer["mean"], mean.numpy())
        np.testing.assert_allclose(layer["kl"], kl.numpy())


def test_hiabp_chain_entries_and_the_generators_dependence_on_a_layer():
    model = _model("hiabp")
    x = tf.random.stateless_uniform((6, *SHAPE), [1, 2])
    result = measure.diagnose(model, x, x)
    assert [layer["layer"] for layer in result["layers"]] == [1, 2]
    for layer in result["layers"]:
        assert layer["chain_move"] > 0 and layer["chain_spread"] > 0 and layer["mse_EL_layer_at_mean"] > 0
        assert 0 <= layer["active_units"] <= 3 and layer["kl"] >= 0
    # Training and test images are the same here: so are their MSEs ([E] is deterministic).
    assert result["mse"]["train"]["E"] == pytest.approx(result["mse"]["test"]["E"])
    # With no Langevin step the chain does not move, and two chains differ by their two encoder draws.
    still = _model("hiabp")
    still.hparams = dataclasses.replace(still.hparams, langevin_steps=0)
    for layer in measure.chain_layers(still, x, (0, 7)):
        assert layer["chain_move"] == pytest.approx(0.0, abs=1e-6)


def _entry(steps, row="lvae", column="MNIST"):
    return {"row": row, "column": column, "steps": {str(s): v for s, v in steps.items()}}


def _diag(test, train, units, kls, dims=12):
    return {"mse": {"test": {"E": test}, "train": {"E": train}},
            "layers": [{"layer": l + 1, "dims": dims, "active_units": u, "kl": k} for l, (u, k) in
                       enumerate(zip(units, kls))]}


def test_the_notes_are_written_from_the_numbers():
    entry = _entry({250: _diag(0.05, 0.05, (3, 1, 0, 0), (5, 1, 0, 0)),
                    1500: _diag(0.026, 0.025, (12, 6, 2, 2), (30, 4, 1, 1)),
                    3500: _diag(0.033, 0.033, (12, 3, 0, 1), (60, 2, 0.1, 0.5))})
    assert diagnostics.active_units_note(entry) == (
        "active units per layer 12/3/0/1 of 12 each, KL per layer 60.0/2.0/0.1/0.5 nats (update 3500)")
    assert diagnostics.has_idle_layer(entry)  # 3 of 12 is fewer than half
    assert not diagnostics.has_idle_layer(_entry({3500: _diag(0.01, 0.01, (12, 6), (1, 1))}))
    course = diagnostics.course_note(entry)
    assert course.startswith("[E] lowest at update 1,500 (test 0.0260, training 0.0250, active units 12/6/2/2")
    assert "then at update 3,500 test 0.0330, training 0.0330, active units 12/3/0/1" in course
    assert "test +26.9%, training +32.0%" in course


def test_the_page_and_the_protocol_block(tmp_path):
    data = {"runs": {"mnist_lvae_equal_l4": dict(_entry({3500: _diag(0.03, 0.03, (7, 0, 0, 0), (15, 0, 0, 0))}),
                                                 workdir="w", method="lvae", latent_dims=[12] * 4,
                                                 precision="bfloat16")}}
    precision = [dict(run="mnist_vae", float32_run="mnist_vae_float32", score="mse_E", bfloat16=0.0088,
                      float32=0.0090, change=0.0227, seed_std=0.0001, beyond=True)]
    bottleneck = [dict(label="VAE, 12 dimensions", run="mnist_vae_z12", mse=0.0195, std=None, seeds=1, units=None)]
    protocol = tmp_path / "protocol.md"
    protocol.write_text(f"before\n{diagnostics.PROTOCOL_START}\nold\n{diagnostics.PROTOCOL_END}\nafter\n")
    page = diagnostics.write(str(tmp_path), data, precision, bottleneck, "pytest", protocol=str(protocol))
    text = open(page).read()
    assert "| `mnist_vae` | mse_E | 0.00880 | 0.00900 | +2.3% | 0.00010 | yes |" in text
    assert "| VAE, 12 dimensions (`mnist_vae_z12`) | 0.0195 | 1 | — |" in text
    assert "| `mnist_lvae_equal_l4` (3500) | 2 (12) | 0 |" in text
    block = protocol.read_text()
    assert block.startswith("before\n") and block.endswith("after\n") and "\nold\n" not in block
    assert "1 of 1 scores move by more than their row's seed standard deviation" in block
    assert "layers 2, 3, 4 carry nothing (no active unit)" in block
    with pytest.raises(ValueError, match="diagnostics:start"):
        diagnostics.update_block(str(tmp_path / "diagnostics.md"), [], "x")
