"""The GAN part (pix2pix / DeOldify lineage): a conditional PatchGAN critic and the textbook step.

The critic sees L together with ab, so it judges whether these colours fit this gray image, one
overlapping patch at a time. Spectral norm bounds its Lipschitz constant, which together with the
hinge loss (SNGAN, BigGAN) keeps the game stable without gradient penalties. We chose hinge over
LSGAN because hinge stops pushing once a sample is classified with margin, so the critic cannot run
away on the easy early phase when it is pretrained alone (DeOldify's "NoGAN" schedule).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .color import normalize_ab, normalize_l
from .data import lab_crops

__all__ = ["PatchDiscriminator", "gan_step", "set_requires_grad"]


class PatchDiscriminator(nn.Module):
    """70x70-style PatchGAN on (L, a, b), spectral norm on every conv; one logit per patch."""

    def __init__(self, base_channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        c = base_channels
        for i in range(1, n_layers + 1):
            c_out = min(base_channels * 2**i, 512)
            stride = 2 if i < n_layers else 1
            layers += [spectral_norm(nn.Conv2d(c, c_out, 4, stride, 1)), nn.LeakyReLU(0.2, True)]
            c = c_out
        layers.append(spectral_norm(nn.Conv2d(c, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """l (B, 1, H, W) and ab (B, 2, H, W) in Lab units -> patch logits (B, 1, h, w)."""
        return self.net(torch.cat([normalize_l(l), normalize_ab(ab)], dim=1))


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Unfreeze (True) or freeze (False) every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(flag)


def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g: Optional[torch.optim.Optimizer],
             opt_d: torch.optim.Optimizer, images: torch.Tensor, crop_size: int, min_crop_scale: float,
             gan_weight: float, rng: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """One pix2pix-style step: update D on real vs ``fake.detach()``, then G (D frozen) unless ``opt_g`` is None.

    ``opt_g=None`` is the NoGAN critic pretraining phase: the generator only produces samples. ``images`` are
    uint8 photos (B, 3, S, S), cropped as :func:`~colorization.data.lab_crops` says; ``gan_weight`` weighs the
    adversarial term beside the L1 term.
    """
    l, ab_real = lab_crops(images, crop_size, min_crop_scale, rng)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=images.device.type == "cuda")
    with autocast, torch.set_grad_enabled(opt_g is not None):
        ab_fake = generator(l).float()

    set_requires_grad(discriminator, True)
    with autocast:
        loss_d_real = F.relu(1.0 - discriminator(l, ab_real)).float().mean()
        loss_d_fake = F.relu(1.0 + discriminator(l, ab_fake.detach())).float().mean()
    loss_d = loss_d_real + loss_d_fake
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    losses = {"loss_d_real": loss_d_real.detach(), "loss_d_fake": loss_d_fake.detach()}

    if opt_g is not None:
        set_requires_grad(discriminator, False)  # G's step must not move D
        with autocast:
            loss_g_adv = -discriminator(l, ab_fake).float().mean()
        loss_g_l1 = F.l1_loss(normalize_ab(ab_fake), normalize_ab(ab_real))
        loss_g = gan_weight * loss_g_adv + loss_g_l1
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), 1.0)
        opt_g.step()
        set_requires_grad(discriminator, True)
        losses.update(loss_g_adv=loss_g_adv.detach(), loss_g_l1=loss_g_l1.detach())
    return losses
