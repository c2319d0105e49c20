"""Sparse 1280-d features with a weak class signal: a head trained on them improves for a few epochs, then stops."""

from __future__ import annotations

import torch


def planted_head_features(n: int, seed: int, n_classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` cases in turn of each class: sparse ReLU noise, plus a noisy bump on 10 columns per class."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.relu(torch.randn(n, 1280, generator=generator) - 1.0)
    bump = torch.nn.functional.one_hot(y, n_classes).repeat_interleave(10, dim=1)
    x[:, : 10 * n_classes] += 0.5 * bump * torch.rand(n, 10 * n_classes, generator=generator)
    return x, y
