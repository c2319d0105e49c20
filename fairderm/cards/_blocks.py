"""The building blocks of a card: sections of paragraphs, lists, facts, tables and figures.

Both the Markdown and the HTML card render these, so they say the same thing;
each renderer escapes every string it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Facts:
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A chart drawn in card.html; the Markdown card gives ``table`` instead, or says which table holds its numbers."""

    key: str
    caption: str
    table: Table | None = None


Block = Paragraph | Bullets | Facts | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class Document:
    title: str
    verdict: str | None
    details: list[str]
    sections: list[Section]

    @property
    def headline(self) -> str:
        """``Release gate: FAIL; policy P; lowest accuracy ...`` in one line."""
        return "; ".join([f"Release gate: {self.verdict or 'NOT GATED'}", *self.details]) + "."
