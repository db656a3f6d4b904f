"""A plain eager PyTorch implementation of the benchmark's reference iteration, the speed peer.

The same networks (`benchmark.reference_networks`), batch, T, s, sigma and Adamax as
`python -m hiabp_tf.benchmark --arch=reference`, written the way a PyTorch user would write it:
eager autograd, `torch.autograd.grad` per Langevin step, no compilation. It exists only so the
benchmark can time both in one run; PyTorch is optional (`pip install torch==2.13.0`) and is not in
requirements.txt.
"""

from __future__ import annotations

import math

LEAK = 0.1


def _same_padding_transpose(kernel, stride):
    """(padding, output_padding) that make torch's ConvTranspose2d match Keras' padding="same"
    (output side = stride * input side)."""
    total = kernel - stride
    return math.ceil(total / 2), (total % 2)


def build(torch, latent_dim=64, image_channels=1):
    """Returns (generator, encoder) torch modules of the reference pair (NCHW)."""
    nn = torch.nn

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(latent_dim, 7 * 7 * 64)
            p1, o1 = _same_padding_transpose(4, 2)
            p3, o3 = _same_padding_transpose(3, 1)
            self.deconvs = nn.Sequential(
                nn.ConvTranspose2d(64, 64, 4, 2, p1, o1), nn.LeakyReLU(LEAK),
                nn.ConvTranspose2d(64, 32, 4, 2, p1, o1), nn.LeakyReLU(LEAK),
                nn.ConvTranspose2d(32, image_channels, 3, 1, p3, o3), nn.Sigmoid())

        def forward(self, z):
            h = nn.functional.leaky_relu(self.project(z), LEAK).view(-1, 64, 7, 7)
            return self.deconvs(h)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(image_channels, 32, 4, 2, 1), nn.LeakyReLU(LEAK),
                nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(LEAK),
                nn.Flatten(), nn.Linear(7 * 7 * 64, 2 * latent_dim))

        def forward(self, x):
            mu, log_sigma = self.net(x).chunk(2, dim=1)
            return mu, log_sigma

    return Generator(), Encoder()


class Iteration:
    """One training iteration of Algorithm 1 (initialize, T Langevin steps, both Adamax updates)."""

    def __init__(self, torch, images_nhwc, langevin_steps=15, step_size=0.15, sigma=0.3,
                 learning_rate=3e-4, latent_dim=64, threads=None, seed=0):
        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
        self.generator, self.encoder = build(torch, latent_dim, self.x.shape[1])
        self.generator_optimizer = torch.optim.Adamax(self.generator.parameters(), lr=learning_rate)
        self.encoder_optimizer = torch.optim.Adamax(self.encoder.parameters(), lr=learning_rate)
        self.T, self.s, self.sigma = langevin_steps, step_size, sigma

    def energy(self, z):
        """Batch-summed -log p(x, z) up to a constant (eq. 3's energy)."""
        residual = self.x - self.generator(z)
        return 0.5 * (z**2).sum() + (residual**2).sum() / (2 * self.sigma**2)

    def __call__(self) -> float:
        torch, x = self.torch, self.x
        mu, log_sigma = self.encoder(x)
        z = (mu + log_sigma.exp() * torch.randn_like(mu)).detach()
        for _ in range(self.T):
            z.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(z), z)
            z = (z - 0.5 * self.s**2 * grad + self.s * torch.randn_like(z)).detach()
        # Generator: eq. 4 at z_T, averaged over the batch.
        batch = x.shape[0]
        generator_loss = self.energy(z) / batch
        self.generator_optimizer.zero_grad()
        generator_loss.backward()
        self.generator_optimizer.step()
        # Encoder: eq. 5, -log N(z_T; mu, sigma^2) on the shared forward pass.
        encoder_loss = (((z - mu) ** 2) / (2 * (2 * log_sigma).exp()) + log_sigma).sum() / batch
        self.encoder_optimizer.zero_grad()
        encoder_loss.backward()
        self.encoder_optimizer.step()
        return generator_loss.item()
