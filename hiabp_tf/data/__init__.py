"""Data: tf.data input pipelines for mnist_5k, tensorflow-datasets and .npz files
(`input_pipeline`), folders of JPEG / PNG files (`image_folder`), the occlusion masks of Table 2
(`masks`), and image grids as PNG (`images`). Imports nothing else of the package but `hiabp_tf.checks`."""
