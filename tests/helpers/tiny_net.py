"""A two-layer torch classifier for the model-folder tests, as a class and as a user's architecture file.

``TINY_NET_PY`` is this module's own source text: written to ``mine.py``, it is the file a user names with
``--architecture mine.py:TinyNet``, and its ``TinyNet`` is the class here, so weights saved from
``TinyNet()`` load into it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.fc = nn.Linear(2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


TINY_NET_PY = Path(__file__).read_text(encoding="utf-8")
