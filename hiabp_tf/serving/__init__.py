"""Using a trained model: the Python API behind `hiabp_tf.load` (`api`), SavedModel export
(`export`) and inpainting of a user's images (`inpaint`). Imports the layers below (methods, config,
workdir, data), never experiments or tools."""
