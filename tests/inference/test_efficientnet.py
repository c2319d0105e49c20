"""The bundled EfficientNet-Lite0: strict loading, equal to the reference, really ImageNet-trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fairderm.errors import FairdermError
from fairderm.inference import Backbone
from fairderm.inference._efficientnet import (
    _converted_state_dict,
    bundled_weights_path,
    load_backbone,
)
from fairderm.inference._images import resize_center_crop, to_uint8_chw

skimage_data = pytest.importorskip("skimage.data")
# ImageNet-1k indices: tabby 281, tiger cat 282, Egyptian cat 285; espresso 967, cup 968, coffee mug 504
CATS = {281, 282, 285}
COFFEE = {967, 968, 504}


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return Backbone("cpu")


def _batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack(
        [to_uint8_chw(resize_center_crop(Image.fromarray(a).convert("RGB"), 224)) for a in arrays]
    )


def test_weights_load_strictly_with_nothing_left_over():
    source = torch.load(bundled_weights_path(), map_location="cpu", weights_only=True)
    model, digest = load_backbone()
    converted = _converted_state_dict(source)
    assert set(converted) == set(model.state_dict())
    assert len(digest) == 64
    source.pop("_blocks.3._project_conv.weight")
    with pytest.raises(FairdermError, match="lack"):
        _converted_state_dict(source)


def test_natural_photos_get_confident_imagenet_classes(backbone):
    probs = torch.softmax(
        backbone.logits(_batch(skimage_data.chelsea(), skimage_data.coffee())), dim=1
    )
    top = probs.argmax(1).tolist()
    assert top[0] in CATS and top[1] in COFFEE
    assert probs[0, sorted(CATS)].sum() > 0.6 and probs[1].max() > 0.5


def test_features_are_pooled_1280_and_differ_between_images(backbone):
    features = backbone.embed(
        _batch(skimage_data.chelsea(), skimage_data.coffee(), skimage_data.chelsea())
    )
    assert features.shape == (3, 1280) and features.dtype == torch.float32
    assert torch.allclose(features[0], features[2])
    cosine = torch.nn.functional.cosine_similarity(features[0], features[1], dim=0)
    assert cosine < 0.8


def test_equals_the_reference_implementation(backbone):
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(bundled_weights_path())
    ).eval()
    batch = _batch(skimage_data.chelsea(), skimage_data.rocket())
    with torch.no_grad():
        expected = reference((batch.float() - 127.0) / 128.0)
    assert torch.allclose(backbone.logits(batch), expected, atol=1e-3)
