"""Escaping user-provided strings for Markdown that must also be safe as HTML.

Shared by every report that writes Markdown: the gate's step summary, the
model card and the metrics summary.

Group labels, model names and rule ids come from users. In a Markdown file
they must render as the literal text, never as HTML (a label
``<script>alert(1)</script>``) nor as Markdown (a label ``*bold*``), on
GitHub, on the Hugging Face Hub and in a raw text viewer.
"""

from __future__ import annotations

import html
import re

# Characters that can start inline Markdown anywhere in a line (CommonMark /
# GFM): code spans, emphasis, links and images, tables, strikethrough.
_INLINE_SPECIALS = re.compile(r"([\\`*\[\]|~])")
# '_' only opens or closes emphasis at a word boundary, so 'fitzpatrick_est'
# stays readable and '_x_' is still neutralised.
_UNDERSCORE_AT_BOUNDARY = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# Block markers only act at the start of a line and, except for a line made of
# '=' or '-' alone (setext underline, thematic break), only before a space:
# '-0.18' and '0.84' stay as they are, '- item' and '1. item' are neutralised.
_BLOCK_MARKER = re.compile(r"^(#{1,6}|[+\-])(?=\s|$)")
_ORDERED_LIST_MARKER = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
_UNDERLINE = re.compile(r"^([=\-])(?=[=\-\s]*$)")


def escape_markdown(text: object) -> str:
    """``text`` as inline Markdown that renders literally; one line, HTML-safe.

    HTML-special characters become entities (``<`` -> ``&lt;``), so the
    result is inert even where raw HTML is allowed; Markdown punctuation is
    backslash-escaped; line breaks become spaces (a table cell stays one cell).
    """
    one_line = " ".join(str(text).split())
    escaped = html.escape(one_line, quote=False)
    escaped = _INLINE_SPECIALS.sub(r"\\\1", escaped)
    escaped = _UNDERSCORE_AT_BOUNDARY.sub(r"\\_", escaped)
    escaped = _UNDERLINE.sub(r"\\\1", escaped)
    escaped = _BLOCK_MARKER.sub(r"\\\1", escaped)
    return _ORDERED_LIST_MARKER.sub(r"\1\\\2", escaped)


def escape_markdown_paragraphs(text: object) -> str:
    """Free text (paragraphs separated by blank lines) escaped as plain Markdown paragraphs."""
    paragraphs = re.split(r"\n\s*\n", str(text).strip())
    return "\n\n".join(escape_markdown(p) for p in paragraphs if p.strip())
