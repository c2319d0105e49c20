"""Model cards from audit runs: Markdown (Hugging Face front matter), one self-contained HTML file, JSON.

The sections follow Mitchell et al. (2019), "Model Cards for Model
Reporting": model details, intended use, factors, metrics, evaluation data,
training data, quantitative analyses (by skin tone and intersectionally,
with intervals), ethical considerations, caveats and recommendations; plus
the skin-tone estimator's measured reliability, group sizes and power, the
release gate's verdict and the evidence hashes. ``card.json`` follows the
JSON Schema published in ``fairderm/cards/schema/``, shaped like Google Model
Card Toolkit's v0.0.2 schema so that it validates against that one too.

Public API
----------
build_card, write_card, ModelCard
    Build a card from a run folder; write ``card.md``, ``card.html``, ``card.json``.
CardInfo, load_card_info, card_info_from_dict
    The owner's text (intended use, training data, owners, licence...), from
    the audit spec's ``card:`` mapping or a YAML file.
load_run, RunArtifacts
    What a card reads from a run folder (``metrics.json`` required).
card_schema, validate_card, card_schema_errors, SCHEMA_PATH
    The published JSON Schema and validation against it.
levelling_down_rows, baseline_fallbacks
    A router evaluation's methods judged against ERM, and its baselines'
    per-class fallbacks (the card's and the dashboard's Mitigation).
figure_fragment, plotly_loader
    Plotly figures in a self-contained page, plotly.js packed once (the
    card and a run's ``figures/metrics.html``).
"""

from __future__ import annotations

from fairderm.cards._card import CARD_HTML, CARD_JSON, CARD_MARKDOWN, ModelCard, build_card, write_card
from fairderm.cards._content import baseline_fallbacks, levelling_down_rows
from fairderm.cards._info import CardInfo, Owner, Risk, card_info_from_dict, load_card_info
from fairderm.cards._plotly import figure_fragment, plotly_loader
from fairderm.cards._run import RunArtifacts, load_run
from fairderm.cards._schema import SCHEMA_PATH, card_schema, card_schema_errors, validate_card

__all__ = [
    "CARD_HTML",
    "CARD_JSON",
    "CARD_MARKDOWN",
    "SCHEMA_PATH",
    "CardInfo",
    "ModelCard",
    "Owner",
    "Risk",
    "RunArtifacts",
    "baseline_fallbacks",
    "build_card",
    "card_info_from_dict",
    "card_schema",
    "card_schema_errors",
    "figure_fragment",
    "levelling_down_rows",
    "load_card_info",
    "load_run",
    "plotly_loader",
    "validate_card",
    "write_card",
]
