"""Rendering the card document as Markdown (with Hugging Face front matter) and as one HTML file."""

from __future__ import annotations

import html
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from fairderm._version import __version__
from fairderm.cards._blocks import Bullets, Document, Facts, Figure, Paragraph, Section, Table
from fairderm.cards._content import CardData, metric_label, number, short_group
from fairderm.cards._plotly import plotly_loader
from fairderm.markdown import escape_markdown, escape_markdown_paragraphs

BASE_TAGS = ["fairderm", "dermatology", "fairness", "skin-tone", "model-card"]


def _plain(text: Any) -> str:
    """A user string for YAML front matter: HTML-special characters as entities, one line."""
    return html.escape(" ".join(str(text).split()), quote=False)


def front_matter(data: CardData) -> dict[str, Any]:
    """Hugging Face model card metadata (license, tags, datasets, model-index)."""
    info = data.info
    meta: dict[str, Any] = {"license": _plain(info.license.lower()) if info.license else "other"}
    meta["tags"] = list(dict.fromkeys(BASE_TAGS + [_plain(t) for t in info.tags]))
    if info.datasets:
        meta["datasets"] = [_plain(d) for d in info.datasets]
    meta["metrics"] = [_plain(m) for m in data.metric_names]
    results = []
    attributes = ["all"] + ([data.tone_attribute] if data.tone_attribute else [])
    for attribute in attributes:
        for row in data.rows(attribute).to_dict("records"):
            value = number(row["estimate"])
            if value is None:
                continue
            where = "all cases" if attribute == "all" else f"{attribute}={short_group(str(row['group']), attribute)}"
            results.append({"type": _plain(row["metric"]), "value": round(value, 4),
                            "name": _plain(f"{metric_label(str(row['metric']), data.top_k)} ({where})"),
                            "verified": False})
    cohort = data.cohort["name"] or "evaluation cohort"
    meta["model-index"] = [{
        "name": _plain(data.name),
        "results": [{
            "task": {"type": "image-classification", "name": "Skin lesion classification"},
            "dataset": {"type": _plain(info.datasets[0] if info.datasets else cohort), "name": _plain(cohort),
                        "split": "test"},
            "metrics": results,
        }],
    }]
    return meta


def _markdown_block(block: Any) -> list[str]:
    if isinstance(block, Paragraph):
        return [escape_markdown_paragraphs(block.text), ""]
    if isinstance(block, Bullets):
        return [f"- {escape_markdown(item)}" for item in block.items] + [""]
    if isinstance(block, Facts):
        return [f"- **{escape_markdown(key)}**: {escape_markdown(value)}" for key, value in block.items] + [""]
    if isinstance(block, Table):
        if not block.rows:
            return ["_No rows._", ""]
        lines = ["| " + " | ".join(escape_markdown(c) for c in block.columns) + " |",
                 "|" + "---|" * len(block.columns)]
        lines += ["| " + " | ".join(escape_markdown(c) or " " for c in row) + " |" for row in block.rows]
        lines.append("")
        if block.note:
            lines += [escape_markdown(block.note), ""]
        return lines
    if isinstance(block, Figure):
        if block.table is not None:
            return [f"{escape_markdown(block.caption)} card.html draws them; the points:", "",
                    *_markdown_block(block.table)]
        return [f"{escape_markdown(block.caption)} card.html draws them from the numbers in the table above.", ""]
    raise TypeError(f"unknown block {type(block).__name__}")


def _markdown_section(section: Section, level: int) -> list[str]:
    lines = [f"{'#' * level} {escape_markdown(section.title)}", ""]
    for block in section.blocks:
        lines += _markdown_block(block)
    for sub in section.subsections:
        lines += _markdown_section(sub, level + 1)
    return lines


def render_markdown(document: Document, data: CardData) -> str:
    """``card.md``: YAML front matter, then the sections; every user string escaped."""
    meta = yaml.safe_dump(front_matter(data), sort_keys=False, allow_unicode=True, width=100)
    lines = ["---", meta.rstrip(), "---", "", f"# {escape_markdown(document.title)}", ""]
    lines += [f"> **{escape_markdown(document.headline)}**", ""]
    lines += ["Contents: " + " · ".join(f"[{escape_markdown(s.title)}](#{s.anchor})" for s in document.sections), ""]
    for section in document.sections:
        lines += _markdown_section(section, 2)
    lines += [f"_Written by fairderm {__version__}._", ""]
    return "\n".join(lines)


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("fairderm.cards", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _kind(block: Any) -> str:
    return type(block).__name__.lower()


_ENVIRONMENT.filters["kind"] = _kind

_VERDICT_CLASS = {"PASS": "pass", "FAIL": "fail", "INSUFFICIENT_EVIDENCE": "insufficient", "ERROR": "error"}


def render_html(document: Document, figures: dict[str, str]) -> str:
    """``card.html``: one self-contained file (plotly.js packed once, no network requests)."""
    template = _ENVIRONMENT.get_template("card.html.jinja")
    # Plotly's fragments are generated here from escaped labels, so they are trusted markup.
    trusted = {key: Markup(fragment) for key, fragment in figures.items()}
    return template.render(
        document=document,
        figures=trusted,
        plotly_loader=Markup(plotly_loader()) if trusted else "",
        verdict_class=_VERDICT_CLASS.get(document.verdict or "", "none"),
        version=__version__,
    )
