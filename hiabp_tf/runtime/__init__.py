"""A run's surroundings: its folder (`workdir`: config.json, checkpoints with fallback, shipped
weights, the run lock, atomic writes, result names), its sittings (`sittings`: sittings.json and the
provenance clause a table makes of them) and the devices it runs on (`distribute`: the tf.distribute
strategy and the distributed step).
May import checks, core, data, methods and config: the layers below it; evaluation, training,
serving, experiments, tools and the commands import it."""
