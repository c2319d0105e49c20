"""Building a model card from a run folder and writing its three forms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairderm._io import atomic_write_text, to_json_text
from fairderm.cards._card_json import build_card_json
from fairderm.cards._content import CardData
from fairderm.cards._document import Document, build_document
from fairderm.cards._figures import render_figures
from fairderm.cards._info import CardInfo, card_info_from_dict, load_card_info
from fairderm.cards._render import render_html, render_markdown
from fairderm.cards._run import RunArtifacts, load_run
from fairderm.cards._schema import validate_card

CARD_MARKDOWN = "card.md"
CARD_HTML = "card.html"
CARD_JSON = "card.json"


@dataclass
class ModelCard:
    """A run's model card; ``to_markdown()``, ``to_html()`` and ``to_dict()`` give its three forms."""

    data: CardData
    document: Document

    @property
    def verdict(self) -> str | None:
        """The gate verdict shown on the card (None when the run was not gated)."""
        return self.data.gate_verdict

    def to_dict(self) -> dict[str, Any]:
        """``card.json`` content, validated against fairderm's published schema."""
        card = build_card_json(self.data)
        validate_card(card)
        return card

    def to_json(self) -> str:
        return to_json_text(self.to_dict())

    def to_markdown(self) -> str:
        """``card.md``: Hugging Face front matter, then the card."""
        return render_markdown(self.document, self.data)

    def to_html(self) -> str:
        """``card.html``: one self-contained file with interactive figures."""
        return render_html(self.document, render_figures(self.data, self.document))

    def summary(self) -> str:
        """Title, headline and section list, as plain text."""
        lines = [self.document.title, self.document.headline]
        lines += [f"  - {section.title}" for section in self.document.sections]
        return "\n".join(lines)

    def texts(self) -> dict[str, str]:
        """The three files' contents by file name (``card.json``, ``card.md``, ``card.html``)."""
        return {CARD_JSON: self.to_json(), CARD_MARKDOWN: self.to_markdown(), CARD_HTML: self.to_html()}

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write card.md, card.html and card.json into ``out_dir``; returns their paths."""
        out_dir = Path(out_dir)
        paths = {"markdown": out_dir / CARD_MARKDOWN, "html": out_dir / CARD_HTML, "json": out_dir / CARD_JSON}
        texts = self.texts()
        for key, name in (("json", CARD_JSON), ("markdown", CARD_MARKDOWN), ("html", CARD_HTML)):
            atomic_write_text(paths[key], texts[name])
        return paths


def _resolve_info(run: RunArtifacts, info: CardInfo | str | Path | None) -> CardInfo:
    """The spec's ``card:`` mapping, overridden key by key by ``info``."""
    from_spec: dict[str, Any] = {}
    if run.spec and run.spec.get("card") is not None:
        from_spec = card_info_from_dict(run.spec["card"], source=f"{run.root / str(run.spec_file)}: card") \
            .model_dump(exclude_unset=True)
    if info is None:
        return CardInfo.model_validate(from_spec)
    given = info if isinstance(info, CardInfo) else load_card_info(info)
    return CardInfo.model_validate({**from_spec, **given.model_dump(exclude_unset=True)})


def build_card(
    run_dir: str | Path | RunArtifacts,
    *,
    info: CardInfo | str | Path | None = None,
    gate: Any = None,
) -> ModelCard:
    """Build the model card of a run folder.

    Parameters
    ----------
    run_dir
        ``audits/NAME/runs/RUN_ID/``; only ``metrics.json`` is required (see
        :func:`load_run` for what each other file adds). Or a run folder
        already read (``fairderm verify`` rebuilds a card from the folder as
        it stood when the card was written).
    info
        Owner-written text (:class:`CardInfo` or a YAML path); overrides the
        spec's ``card:`` mapping key by key.
    gate
        A :class:`fairderm.gate.GateResult` or ``gate.json`` dict to show
        instead of the run's ``gate.json``.

    Raises
    ------
    InputError
        When the run folder or ``metrics.json`` is missing, or a present file
        or the card info cannot be parsed.
    """
    run = run_dir if isinstance(run_dir, RunArtifacts) else load_run(run_dir)
    if gate is not None and hasattr(gate, "to_dict"):
        gate = gate.to_dict()
    data = CardData.build(run, _resolve_info(run, info), gate)
    return ModelCard(data=data, document=build_document(data))


def write_card(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    info: CardInfo | str | Path | None = None,
    gate: Any = None,
) -> dict[str, Path]:
    """Build a run's card and write card.md, card.html and card.json (default: into the run folder)."""
    card = build_card(run_dir, info=info, gate=gate)
    return card.write(Path(out) if out is not None else Path(run_dir))
