"""README instructions a newcomer copies: the CI snippet and where an hf model comes from."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_ci_snippet_summarises_only_the_newest_run():
    section = README.split("## The gate in CI", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert "runs/*" not in block  # a glob concatenates every earlier run's gate.md
    assert "fairderm gate audits/my_model/runs --latest --summary" in block


def test_readme_says_where_an_hf_model_folder_comes_from():
    assert "save_pretrained(" in README and "--backend hf" in README
    assert "never the Hugging Face Hub at run time" in README
