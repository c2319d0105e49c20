"""An audit reads nothing outside the cohort's images_root, whatever changed after import."""

from __future__ import annotations

import pandas as pd
import pytest

from fairderm.audit import run_audit
from fairderm.errors import InputError


@pytest.mark.parametrize("hash_images", [True, False])
def test_symlink_swapped_after_import_stops_the_audit_before_reading_it(write_spec, tiny_cohort_dir, tmp_path,
                                                                       hash_images):
    outside = tmp_path / "outside.png"
    outside.write_bytes((tiny_cohort_dir / "images" / "img002.png").read_bytes())
    link = tiny_cohort_dir / "images" / "img001.png"
    link.unlink()
    link.symlink_to(outside)
    spec = write_spec(tone={"source": "estimate", "column": None}, outputs={"hash_images": hash_images})
    with pytest.raises(InputError, match=r"img001\.png' escapes images_root"):
        run_audit(spec)
    assert not (spec.parent / "tiny" / "runs").exists() or not any((spec.parent / "tiny" / "runs").iterdir())


def test_manifest_path_rewritten_after_import_stops_the_audit(write_spec, tiny_cohort_dir, tmp_path):
    (tmp_path / "outside.png").write_bytes((tiny_cohort_dir / "images" / "img002.png").read_bytes())
    manifest = pd.read_parquet(tiny_cohort_dir / "manifest.parquet")
    manifest.loc[manifest["image_id"] == "img001", "image"] = "../outside.png"
    manifest.to_parquet(tiny_cohort_dir / "manifest.parquet", index=False)
    with pytest.raises(InputError, match="escapes images_root"):
        run_audit(write_spec(tone={"source": "estimate", "column": None}))
