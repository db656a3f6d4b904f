"""Image grids for TensorBoard and PNG figures."""

from __future__ import annotations

import os

import numpy as np


def grid(images, columns: int, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) in [0, 1] -> one (rows*(H+pad)+pad, columns*(W+pad)+pad, C) image, row-major."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    rows = -(-n // columns)
    out = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[top:top + h, left:left + w] = image
    return out


def save_png(path: str, image: np.ndarray, title: str | None = None, scale: int = 3) -> None:
    """Saves one grid image as PNG with matplotlib (optionally titled)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image = image[..., 0] if image.shape[-1] == 1 else image
    height, width = image.shape[:2]
    dpi = 100
    fig = plt.figure(figsize=(width * scale / dpi, height * scale / dpi + (0.3 if title else 0)), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, height / (height + (30 / scale if title else 0))])
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9, y=0.995)
    tmp = f"{path}.tmp"  # whole or not at all: a full disk never leaves an earlier figure cut short
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
