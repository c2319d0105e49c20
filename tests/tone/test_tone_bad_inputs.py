"""Every bad image gets its own status and reason; the good images in the same batch are unaffected.

One cohort holds two good photographs and one of each bad input; the tone
table is computed once (module fixture) and each test reads its row.
"""

from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairderm.tone import estimate_tone, measure_image
from fairderm.tone._color import lab_to_srgb
from fairderm.tone._decode import decode_image
from tests.helpers.skin_photos import SKIN_ITA, encode, make_image_cohort, skin_photo


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_16bit(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written chunk by chunk."""
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def png_bomb(side: int = 20_000) -> bytes:
    """A PNG whose header says ``side`` x ``side`` RGB; the pixel data is a few bytes (never decoded)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def rgba_photo() -> bytes:
    """Skin with a lesion, its right quarter transparent and holding a darker skin colour."""
    rgb = skin_photo((160, 120))
    rgb[:, 120:] = skin_photo((160, 120), (55.0, 11.0, 19.0), lesion_radius=0.0)[:, 120:]
    alpha = np.zeros((120, 160), dtype=np.uint8)
    alpha[:, :120] = 255
    return encode(Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"), "PNG")


def exif_rotated_photo() -> bytes:
    """Stored 120 wide x 160 tall, EXIF orientation 6: shown 160 wide x 120 tall."""
    stored = Image.fromarray(skin_photo((160, 120))).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def all_lesion_closeup() -> bytes:
    """A pigmented lesion filling the frame: dark brown, unevenly lit, no skin around it.

    Its colour is one that dark skin could have (L* 32, ITA about -50 deg):
    only the absence of anything that stands out from it tells it from a
    photograph of skin. (A close-up with a coarse texture of its own is
    caught less reliably: docs/tone.md, "close-up rule".)
    """
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:200, 0:200] / 200.0
    lightness = 32 + 4 * (xx - 0.5) - 3 * (yy - 0.5) ** 2 + rng.normal(0, 1.2, (200, 200))
    lab = np.stack([lightness, 13 + rng.normal(0, 0.6, (200, 200)), 15 + rng.normal(0, 0.8, (200, 200))], axis=-1)
    return encode(Image.fromarray(np.round(lab_to_srgb(lab) * 255).astype(np.uint8)), "PNG")


def bad_and_good_files() -> dict[str, bytes]:
    good = skin_photo((160, 120))
    return {
        "good_png.png": encode(Image.fromarray(good), "PNG"),
        "grayscale.png": encode(Image.fromarray(good).convert("L"), "PNG"),
        "rgba.png": rgba_photo(),
        "cmyk.jpg": encode(Image.fromarray(good).convert("CMYK"), "JPEG", quality=95),
        "sixteen_bit.png": png_16bit(good.astype(np.uint16) * 257),
        "exif_rotated.jpg": exif_rotated_photo(),
        "one_pixel.png": encode(Image.new("RGB", (1, 1), (200, 160, 140)), "PNG"),
        "bomb.png": png_bomb(),
        "truncated.jpg": encode(Image.fromarray(good), "JPEG", quality=95)[:1500],
        "closeup.png": all_lesion_closeup(),
        "good_jpeg.jpg": encode(Image.fromarray(skin_photo((300, 240), seed=1)), "JPEG", quality=92),
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cohort = make_image_cohort(tmp_path_factory.mktemp("bad") / "cohort", bad_and_good_files())
    return estimate_tone(cohort, workers=1).set_index("image_id")


def _row(batch: pd.DataFrame, name: str) -> pd.Series:
    return batch.loc[name]


def _refused(batch: pd.DataFrame, name: str, status: str, phrase: str) -> pd.Series:
    """The row of ``name``, checked to be ``status`` with ``phrase`` in its reason and no estimate."""
    row = batch.loc[name]
    assert row["status"] == status
    assert phrase in row["reason"]
    assert pd.isna(row["ita"]) and pd.isna(row["fitzpatrick_est"]) and pd.isna(row["monk_est"])
    return row


def test_grayscale_image_abstains_for_lack_of_colour(batch):
    _refused(batch, "grayscale", "abstain", "grayscale")


def test_rgba_image_is_measured_on_its_opaque_pixels_only(batch):
    row = _row(batch, "rgba")
    assert row["status"] == "ok", row["reason"]
    # the transparent quarter holds skin of ITA about 15: measuring it would pull the estimate ~3 deg down
    assert abs(row["ita"] - SKIN_ITA) < 1.5


def test_cmyk_jpeg_is_converted_and_measured(batch):
    row = _row(batch, "cmyk")
    assert row["status"] == "ok", row["reason"]
    assert abs(row["ita"] - SKIN_ITA) < 3.0


def test_16bit_png_is_measured_like_its_8bit_version(batch):
    row = _row(batch, "sixteen_bit")
    assert row["status"] == "ok", row["reason"]
    assert row["ita"] == pytest.approx(_row(batch, "good_png")["ita"], abs=0.5)


def test_exif_rotated_jpeg_is_measured(batch):
    row = _row(batch, "exif_rotated")
    assert row["status"] == "ok", row["reason"]
    assert abs(row["ita"] - SKIN_ITA) < 3.0


def test_exif_orientation_is_honoured_when_decoding(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(exif_rotated_photo())
    decoded = decode_image(path, 128)
    assert decoded.original_size == (120, 160)
    height, width = decoded.rgb.shape[:2]
    assert width > height  # shown landscape, as the orientation tag says


def test_one_pixel_image_abstains_as_too_small(batch):
    _refused(batch, "one_pixel", "abstain", "too small")


def test_decompression_bomb_is_refused_without_decoding(batch):
    _refused(batch, "bomb", "error", "decompression bomb")


def test_decompression_bomb_does_not_allocate_the_image(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tone = measure_image(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert tone.status == "error"
    assert grown_kib < 200 * 1024  # the decoded image would take 1.2 GB


def test_truncated_jpeg_is_an_error_with_its_reason(batch):
    _refused(batch, "truncated", "error", "cannot decode")


def test_all_lesion_closeup_abstains(batch):
    _refused(batch, "closeup", "abstain", "no lesion stands out")


def test_missing_image_file_is_an_error(tmp_path):
    tone = measure_image(tmp_path / "absent.jpg")
    assert (tone.status, tone.reason) == ("error", "file not found")


def test_grey_picture_saved_as_rgb_abstains(tmp_path):
    path = tmp_path / "grey_rgb.png"
    Image.fromarray(skin_photo()).convert("L").convert("RGB").save(path)
    tone = measure_image(path)
    assert tone.status == "abstain" and "grayscale" in tone.reason


def test_good_images_are_unaffected_by_bad_neighbours(batch, tmp_path):
    files = bad_and_good_files()
    alone = make_image_cohort(tmp_path / "good", {name: files[name] for name in ("good_png.png", "good_jpeg.jpg")})
    frame = estimate_tone(alone, workers=1).set_index("image_id")
    columns = ["ita", "ita_low", "ita_high", "skin_fraction", "status", "fitzpatrick_est", "monk_est"]
    pd.testing.assert_frame_equal(frame[columns], batch.loc[frame.index, columns])
    assert (frame["status"] == "ok").all()
    assert np.allclose(frame["ita"], SKIN_ITA, atol=3.0)


def test_every_image_gets_exactly_one_row_in_manifest_order(batch):
    names = [Path(name).stem for name in bad_and_good_files()]
    assert list(batch.index) == names
    assert set(batch["status"]) <= {"ok", "abstain", "error"}
    assert (batch.loc[batch["status"] != "ok", "reason"].str.len() > 0).all()


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "BMP", "GIF", "JPEG2000"])
def test_other_image_formats_are_measured(fmt, tmp_path):
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(encode(Image.fromarray(skin_photo((200, 150))), fmt))
    tone = measure_image(path)
    assert tone.status == "ok", tone.reason
    assert abs(tone.ita - SKIN_ITA) < 3.0


def _swap_after_import(cohort, outside: Path) -> None:
    """What a hostile user does once the cohort is imported: one symlink and one manifest path point outside."""
    link = cohort.images_root / "images" / "b.png"
    link.unlink()
    link.symlink_to(outside)
    manifest = pd.read_parquet(cohort.manifest_path)
    manifest.loc[manifest["image_id"] == "c", "image"] = "../../outside.png"
    manifest.to_parquet(cohort.manifest_path, index=False)


def test_symlink_or_manifest_swapped_after_import_is_an_error_row_not_read(tmp_path, monkeypatch):
    from fairderm.cohort import load_cohort

    photo = encode(Image.fromarray(skin_photo()), "PNG")
    cohort = make_image_cohort(tmp_path / "cohort", {"a.png": photo, "b.png": photo, "c.png": photo})
    outside = tmp_path / "outside.png"
    outside.write_bytes(photo)
    _swap_after_import(cohort, outside)
    opened: list[str] = []
    real_decode = decode_image
    monkeypatch.setattr("fairderm.tone._measure.decode_image",
                        lambda path, size: opened.append(str(path)) or real_decode(path, size))
    frame = estimate_tone(load_cohort(cohort.root), workers=1).set_index("image_id")
    assert frame.loc["a", "status"] == "ok"
    for image_id in ("b", "c"):
        assert frame.loc[image_id, "status"] == "error"
        assert "escapes images_root" in frame.loc[image_id, "reason"]
    assert opened == [str((cohort.images_root / "images" / "a.png").resolve())]
