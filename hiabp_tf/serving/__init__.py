"""Using a trained model: the Python API behind `hiabp_tf.load` (`api`), SavedModel export
(`export`), inpainting of a user's images (`inpaint`) and shipping a trained model's weights beside
its results (`ship`). Imports the layers below (checks,
methods, config, runtime, data, evaluation), never training, experiments or tools."""
