"""Training (Algorithm 1) and the run's infrastructure around it: the loop (`loop.py`, the code behind
`python -m hiabp_tf.train`).

May import checks, core, data, methods, config, runtime and evaluation: the layers below it; serving,
experiments, tools and the commands import it, never the reverse."""
