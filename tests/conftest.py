"""Makes the package importable from the repository root, however pytest is started."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402  (after the path setup above)

# One tiny HiABP (L = 2) trained for 60 steps on mnist_5k (~15 s), shared by the tests of the trained
# model's API, export and inpainting; lr 2e-3 so that 60 steps learn clearly ([E] MSE ~0.07 vs ~0.09
# for decoding random latents). The tests only read it.
TINY_TRAINED = dict(dataset="mnist_5k", num_layers=2, latent_dims=(8, 8), width=8, batch_size=100,
                    seed=0, learning_rate=2e-3, langevin_steps=10)


@pytest.fixture(scope="session")
def tiny_trained_workdir(tmp_path_factory):
    from hiabp_tf import experiment
    from hiabp_tf import train
    path = tmp_path_factory.mktemp("tiny_hiabp")
    train.train(experiment.RunConfig(**TINY_TRAINED), str(path), 60, log_every=1000, eval_every=10**6,
                eval_examples=100, checkpoint_every=10**6)
    return str(path)
