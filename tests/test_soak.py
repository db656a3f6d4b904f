"""The soak script's log reading (the soak itself runs as `python -m hiabp_tf.soak`)."""

from hiabp_tf import soak

LOG = """I1124 08:00:00.0 1 train.py:150] Resumed from runs/x/checkpoints/ckpt-65 at step 65.
I1124 08:00:01.0 1 train.py:160] Training hiabp (L=2, latent dims [8, 8]) on mnist_5k for 200 steps.
I1124 08:00:02.0 1 train.py:170] step 66/200  3.1 steps/s  ETA 0m43s  generator_loss=400
I1124 08:00:03.0 1 train.py:170] step 67/200  3.1 steps/s  ETA 0m43s  generator_loss=399
I1124 08:00:04.0 1 train.py:180] step 100: test mse_E=0.1  (100 examples)
"""


def test_log_reading():
    """The last training step, the resume point, a fresh start and a kill during start-up."""
    assert soak._last_step(LOG) == 67
    assert soak._resumed_from(LOG) == 65
    fresh = LOG.split("\n", 1)[1]
    assert soak._resumed_from(fresh) == 0
    assert soak._resumed_from("I1124 loading...\n") is None and soak._last_step("") == 0
