"""Reading a diagnosis out of a vision-language model's written report.

Reports come as free text with sections (SkinGPT-R1: visual findings,
differential reasoning, final diagnosis), as ``<think>...</think><answer>
...</answer>`` (Skin-R1), or as JSON. The parser finds the part that states
the final diagnosis, finds the diagnoses named there (synonyms,
abbreviations in capitals, small typos), drops the negated or
merely-not-excluded ones ("not melanoma", "melanoma cannot be ruled out")
and maps what is left onto the cohort's labels.

It never guesses: no diagnosis, two diagnoses offered as alternatives
("melanoma or nevus"), or a diagnosis outside the label set gives status
``unparseable`` with the reason, and the case counts as such.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fairderm.inference._labels import ABBREVIATIONS, CONCEPT_NAMES, concept_of, normalise_name

# Raise it whenever parse_report may read an answer differently, so that predictions parsed by the old rules
# are never reused (it is part of every text model's run fingerprint and audit cache key).
PARSER_VERSION = 2

# Section names, in the order a final section is preferred.
_FINAL_HEADERS = (
    "final diagnosis",
    "final diagnoses",
    "most likely diagnosis",
    "most probable diagnosis",
    "final answer",
    "final impression",
    "diagnosis",
    "answer",
    "conclusion",
    "impression",
    "assessment",
    "prediction",
    "classification",
)
_DIFFERENTIAL_HEADERS = (
    "differential diagnoses",
    "differential diagnosis",
    "differential reasoning",
    "differentials",
    "differential",
    "ddx",
)
#: Headers of the findings section (see :func:`report_parts`).
_FINDINGS_HEADERS = (
    "visual findings",
    "findings",
    "clinical findings",
    "description",
    "observations",
    "observation",
    "morphology",
    "dermoscopic features",
)
_OTHER_HEADERS = (
    *_FINDINGS_HEADERS,
    "reasoning",
    "analysis",
    "rationale",
    "recommendation",
    "recommendations",
    "management",
    "next steps",
    "plan",
    "note",
    "disclaimer",
    "confidence",
)
_ALL_HEADERS = sorted(
    _FINAL_HEADERS + _DIFFERENTIAL_HEADERS + _OTHER_HEADERS, key=len, reverse=True
)
_HEADER = re.compile(
    r"^[ \t>#*\-\d.)\[]*\**\s*(?P<name>"
    + "|".join(re.escape(h) for h in _ALL_HEADERS)
    + r")\s*\**\s*"
    r"(?:\([^)\n]{0,40}\)\s*)?(?::|-|–|—|\n|$)\**",
    re.IGNORECASE | re.MULTILINE,
)
# "... therefore the final diagnosis is X" in running text.
_INLINE_FINAL = re.compile(
    r"\b(?:final|most likely|most probable)\s+(?:diagnosis|answer)\b\s*(?:is|would be|:|-|=)?\s*",
    re.IGNORECASE,
)
_CUES = re.compile(
    r"\b(?:most\s+(?:likely|consistent\s+with|suggestive\s+of|compatible\s+with)|consistent\s+with|"
    r"compatible\s+with|suggestive\s+of|diagnostic\s+of|in\s+keeping\s+with|i\s+(?:would\s+)?"
    r"(?:diagnose|classify|favou?r)|favou?ring|favou?red|this\s+(?:is|looks\s+like|appears\s+to\s+be)|"
    r"represents|favou?rs?|diagnosis\s+(?:is|of))\b",
    re.IGNORECASE,
)
_NEGATION_BEFORE = re.compile(
    r"\b(?:not|no|non|without|unlikely|less\s+likely|rule\s+out|ruled?\s+out|excluded?|excluding|"
    r"rather\s+than|instead\s+of|never|absence\s+of|against|nor|negative\s+for|inconsistent\s+with|"
    r"isn't|doesn't|cannot\s+be|can't\s+be|argues?\s+against|than)\b[^.;:\n]*$"
    r"|\bover\s+(?:an?\s+|the\s+)?$",
    re.IGNORECASE,
)
_SECONDARY_AFTER = re.compile(
    r"^\W{0,3}(?:\w+\W+){0,2}?(?:is|are|was|seems|appears|remains|being|would\s+be)?\s*"
    r"(?:unlikely|less\s+likely|less\s+probable|improbable|ruled\s+out|excluded|not\s+(?:likely|"
    r"favou?red|supported|suggested|favou?r(?:ed)?)|cannot\s+be\s+(?:ruled\s+out|excluded)|"
    r"can't\s+be\s+(?:ruled\s+out|excluded)|should\s+be\s+(?:ruled\s+out|excluded|considered)|"
    r"must\s+be\s+(?:ruled\s+out|excluded)|to\s+be\s+(?:ruled\s+out|excluded)|was\s+considered|"
    r"(?:is|was)\s+considered|considered\s+but)",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(
    r"[.;:\n!?]|\bbut\b|\bhowever\b|\bwhereas\b|\bwhile\b|\binstead\b", re.IGNORECASE
)
_AFTER_BREAK = re.compile(
    r"[,.;:\n!?(]|\b(?:but|however|although|though|whereas|while)\b", re.IGNORECASE
)
# "final_diagnosis": "X" inside JSON that does not parse (cut off, trailing commas)
_JSON_LIKE = re.compile(
    r'"(?:final[ _]?diagnosis|most[ _]likely[ _]diagnosis|diagnosis|answer|prediction)"\s*:\s*"(?P<value>[^"]*)"',
    re.IGNORECASE,
)
_ALTERNATIVE = re.compile(
    r"^[\s,]*(?:or|vs\.?|versus|/|and/or|or\s+possibly|or\s+a|or\s+an)[\s,]*(?:a|an)?\s*$",
    re.IGNORECASE,
)
_TAG = re.compile(r"<answer>(?P<body>.*?)(?:</answer>|\Z)", re.IGNORECASE | re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(?P<body>.*?)```", re.IGNORECASE | re.DOTALL)
_JSON_FINAL_KEYS = (
    "final diagnosis",
    "final_diagnosis",
    "diagnosis",
    "final",
    "answer",
    "prediction",
    "label",
    "most likely diagnosis",
    "most_likely_diagnosis",
    "final answer",
)
_JSON_DIFF_KEYS = (
    "differential",
    "differential diagnosis",
    "differential diagnoses",
    "differentials",
    "ddx",
)


@dataclass
class ParsedReport:
    """What a report says.

    Attributes
    ----------
    status
        ``ok`` or ``unparseable``.
    pred
        The cohort label of the final diagnosis (None unless ``ok``).
    differential
        Cohort labels the report considered, in order of mention.
    reason
        Why the report is unparseable (None when ``ok``).
    source
        Which part of the report gave the diagnosis (``json``, ``answer
        tag``, ``section 'final diagnosis'``, ``cue phrase``, ``whole text``).
    """

    status: str
    pred: str | None = None
    differential: list[str] = field(default_factory=list)
    reason: str | None = None
    source: str | None = None


@dataclass
class _Mention:
    start: int
    end: int
    concept: str
    excluded: bool = False


class _Vocabulary:
    """Names to look for, for one label set: the built-in concepts plus the labels themselves."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.names: dict[str, str] = {}
        for concept, aliases in CONCEPT_NAMES.items():
            for alias in aliases:
                self.names[normalise_name(alias)] = concept
        self.label_of: dict[str, str] = {}
        for label in self.labels:
            concept = concept_of(label) or f"label:{label}"
            self.names.setdefault(normalise_name(label), concept)
            self.label_of.setdefault(concept, label)
        words = sorted(self.names, key=len, reverse=True)
        exact = [w for w in words if w not in ABBREVIATIONS]
        self.pattern = re.compile(
            r"(?<![\w-])(?:"
            + "|".join(re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in exact)
            + r")(?![\w-])",
            re.IGNORECASE,
        )
        abbreviations = [w for w in words if w in ABBREVIATIONS]
        self.abbreviation = re.compile(
            r"(?<![\w-])(?:"
            + "|".join(re.escape(w.upper()) for w in abbreviations)
            + r")s?(?![\w-])"
        )
        self.fuzzy = [(w, self.names[w]) for w in exact if len(w) >= 5]

    def concept(self, surface: str) -> str | None:
        key = normalise_name(surface)
        if key in self.names:
            return self.names[key]
        if key.endswith("s") and key[:-1] in self.names:
            return self.names[key[:-1]]
        return None


def _is_excluded(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 60) : start]
    cut = list(_CLAUSE_BREAK.finditer(before))
    if cut:
        before = before[cut[-1].end() :]
    if _NEGATION_BEFORE.search(before):
        return True
    after = text[end : end + 60]
    stop = _AFTER_BREAK.search(after)
    if stop:
        after = after[: stop.start()]
    return bool(_SECONDARY_AFTER.search(after))


def _mentions(text: str, vocab: _Vocabulary, *, fuzzy: bool = False) -> list[_Mention]:
    found: list[tuple[int, int, str]] = []
    for match in vocab.pattern.finditer(text):
        concept = vocab.concept(match.group(0))
        if concept:
            found.append((match.start(), match.end(), concept))
    for match in vocab.abbreviation.finditer(text):
        concept = vocab.concept(
            match.group(0).rstrip("s") if match.group(0).endswith("s") else match.group(0)
        )
        if concept:
            found.append((match.start(), match.end(), concept))
    if fuzzy and not found:
        found = _fuzzy_mentions(text, vocab)
    found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
    mentions: list[_Mention] = []
    last_end = -1
    for start, end, concept in found:
        if start < last_end:
            continue
        mentions.append(_Mention(start, end, concept, _is_excluded(text, start, end)))
        last_end = end
    return mentions


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (Damerau 1964: a transposition counts as one edit)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _fuzzy_mentions(text: str, vocab: _Vocabulary) -> list[tuple[int, int, str]]:
    """Names with small typos ("melanomma", "seborheic keratosis", "neavus").

    One edit is allowed in names of 5-9 letters, two in longer ones; shorter
    names must match exactly, as must the first letter.
    """
    tokens = [(m.start(), m.end(), m.group(0).lower()) for m in re.finditer(r"[A-Za-z]+", text)]
    found = []
    for alias, concept in vocab.fuzzy:
        n = alias.count(" ") + 1
        limit = 1 if len(alias) < 10 else 2
        for i in range(len(tokens) - n + 1):
            window = " ".join(t[2] for t in tokens[i : i + n])
            if window[0] != alias[0] or abs(len(window) - len(alias)) > limit:
                continue
            if _edit_distance(window, alias, limit) <= limit:
                found.append((tokens[i][0], tokens[i + n - 1][1], concept))
    return found


def _decide(text: str, vocab: _Vocabulary, source: str) -> ParsedReport:
    """The single diagnosis a (final) passage states, or why there is none."""
    mentions = _mentions(text, vocab, fuzzy=True)
    kept = [m for m in mentions if not m.excluded]
    if not kept:
        what = "only excluded diagnoses" if mentions else "no recognised diagnosis"
        return ParsedReport("unparseable", reason=f"{what} in the {source}", source=source)
    first = kept[0]
    for other in kept[1:]:
        if other.concept == first.concept:
            continue
        between = text[first.end : other.start]
        if _ALTERNATIVE.match(between):
            names = f"{_name(first.concept)} or {_name(other.concept)}"
            return ParsedReport(
                "unparseable", reason=f"undecided between {names} in the {source}", source=source
            )
        break
    label = vocab.label_of.get(first.concept)
    if label is None:
        return ParsedReport(
            "unparseable",
            reason=f"diagnosis {_name(first.concept)!r} is not among the labels {vocab.labels}",
            source=source,
        )
    return ParsedReport("ok", pred=label, source=source)


def _name(concept: str) -> str:
    return concept.split(":", 1)[1] if concept.startswith("label:") else concept.replace("_", " ")


def _sections(text: str) -> list[tuple[str, str]]:
    """``(header, body)`` pairs in order; body runs to the next header."""
    matches = list(_HEADER.finditer(text))
    out = []
    for k, match in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        out.append((match.group("name").lower(), text[match.end() : end].strip()))
    return out


def _differential(text: str, vocab: _Vocabulary) -> list[str]:
    labels: list[str] = []
    for mention in _mentions(text, vocab):
        label = vocab.label_of.get(mention.concept)
        if label and label not in labels:
            labels.append(label)
    return labels


def _json_object(text: str) -> dict[str, Any] | None:
    candidates = [text.strip()] + [m.group("body") for m in _FENCE.finditer(text)]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _json_value(obj: dict[str, Any], keys: Sequence[str]) -> Any:
    normalised = {normalise_name(k): v for k, v in obj.items()}
    for key in keys:
        if normalise_name(key) in normalised:
            return normalised[normalise_name(key)]
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _as_text(value.get("name") or value.get("label") or value.get("diagnosis") or "")
    if isinstance(value, list):
        return "; ".join(_as_text(v) for v in value)
    return "" if value is None else str(value)


def _from_json(obj: dict[str, Any], vocab: _Vocabulary) -> ParsedReport | None:
    final = _json_value(obj, _JSON_FINAL_KEYS)
    if final is None:
        return None
    if isinstance(final, list):
        final = final[0] if final else ""
    result = _decide(_as_text(final), vocab, "json")
    diff = _json_value(obj, _JSON_DIFF_KEYS)
    result.differential = _differential(_as_text(diff), vocab) if diff is not None else []
    return result


def parse_report(text: str | None, labels: Sequence[str]) -> ParsedReport:
    """Parse a model's report into a final diagnosis (a cohort label) and a differential.

    Parameters
    ----------
    text
        The model's answer.
    labels
        The cohort's label set; diagnoses are mapped onto it through the
        synonyms of :mod:`fairderm.inference._labels`.

    Returns
    -------
    ParsedReport
        ``status`` is ``ok`` with ``pred`` set, or ``unparseable`` with a
        ``reason``; never a guess.
    """
    if text is None or not text.strip():
        return ParsedReport("unparseable", reason="empty answer")
    vocab = _Vocabulary(labels)

    obj = _json_object(text)
    if obj is not None:
        parsed = _from_json(obj, vocab)
        if parsed is not None:
            return parsed

    json_like = list(_JSON_LIKE.finditer(text))
    if json_like:
        result = _decide(json_like[0].group("value"), vocab, "json (malformed)")
        result.differential = _differential(text, vocab)
        return result

    tags = list(_TAG.finditer(text))
    if tags:
        body = tags[-1].group("body").strip()
        if not body:
            return ParsedReport("unparseable", reason="empty <answer> tag", source="answer tag")
        inner = _final_section(body)
        if inner is not None:
            result = _decide(inner[1], vocab, f"answer tag, section {inner[0]!r}")
        else:
            result = _decide(body, vocab, "answer tag")
        think = _THINK.search(text)
        considered = _section_text(text, _DIFFERENTIAL_HEADERS) or (think.group(0) if think else "")
        result.differential = _differential(considered, vocab)
        return result

    final = _final_section(text)
    if final is not None:
        result = _decide(final[1], vocab, f"section {final[0]!r}")
        result.differential = _differential(
            _section_text(text, _DIFFERENTIAL_HEADERS) or text, vocab
        )
        return result

    inline = list(_INLINE_FINAL.finditer(text))
    if inline:
        tail = text[inline[-1].end() :]
        result = _decide(_first_sentence(tail), vocab, "final diagnosis phrase")
        result.differential = _differential(text, vocab)
        return result

    differential_text = _section_text(text, _DIFFERENTIAL_HEADERS)
    body = text.replace(differential_text, " ") if differential_text else text
    cues = list(_CUES.finditer(body))
    if cues:
        result = _decide(_first_sentence(body[cues[-1].end() :]), vocab, "cue phrase")
        if result.status == "ok":
            result.differential = _differential(text, vocab)
            return result
    result = _decide_whole(body, vocab)
    result.differential = _differential(text, vocab)
    return result


def _decide_whole(text: str, vocab: _Vocabulary) -> ParsedReport:
    """No section, tag or cue: accept only a text that names exactly one diagnosis."""
    mentions = [m for m in _mentions(text, vocab, fuzzy=True) if not m.excluded]
    concepts = list(dict.fromkeys(m.concept for m in mentions))
    if len(concepts) == 1:
        return _decide(text, vocab, "whole text")
    if not concepts:
        return ParsedReport(
            "unparseable", reason="no recognised diagnosis in the answer", source="whole text"
        )
    names = ", ".join(_name(c) for c in concepts)
    return ParsedReport(
        "unparseable", reason=f"several diagnoses ({names}) and no final one", source="whole text"
    )


def _final_section(text: str) -> tuple[str, str] | None:
    sections = _sections(text)
    for header in _FINAL_HEADERS:
        bodies = [body for name, body in sections if name == header and body.strip()]
        if bodies:
            return header, _first_paragraph(bodies[-1])
    return None


def _section_text(text: str, headers: Sequence[str]) -> str:
    return "\n".join(body for name, body in _sections(text) if name in headers)


def _first_paragraph(text: str) -> str:
    return re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0][:400]


def _first_sentence(text: str) -> str:
    match = re.search(r"(?<!\b[A-Z])[.!?](?:\s|$)|\n", text)
    return text[: match.start()] if match else text[:300]


_JSON_FINDINGS_KEYS = ("visual findings", "visual_findings", "findings", "description", "observations")


@dataclass
class ReportParts:
    """The parts of a report, as written (empty where a part is missing).

    Attributes
    ----------
    style
        ``tags`` (``<think>``/``<answer>``, Skin-R1), ``json``, ``sections``
        (headed sections, SkinGPT-R1) or ``free`` (none of these).
    findings
        The visual findings (a findings section or JSON key).
    reasoning
        The differential reasoning (a differential section or key; the
        ``<think>`` text of a tagged report).
    final
        The final diagnosis passage (final section, ``<answer>`` or JSON key).
    """

    style: str
    findings: str = ""
    reasoning: str = ""
    final: str = ""


def report_parts(text: str | None) -> ReportParts:
    """Split a report into findings, reasoning and final diagnosis, by the same rules as :func:`parse_report`."""
    if text is None or not text.strip():
        return ReportParts("free")
    tags = list(_TAG.finditer(text))
    if tags:
        think = _THINK.search(text)
        reasoning = re.sub(r"</?think>", "", think.group(0), flags=re.IGNORECASE).strip() if think else ""
        return ReportParts("tags", _section_text(text, _FINDINGS_HEADERS), reasoning,
                           tags[-1].group("body").strip())
    obj = _json_object(text)
    if obj is not None and _json_value(obj, _JSON_FINAL_KEYS) is not None:
        return ReportParts(
            "json",
            _as_text(_json_value(obj, _JSON_FINDINGS_KEYS)).strip(),
            _as_text(_json_value(obj, _JSON_DIFF_KEYS)).strip(),
            _as_text(_json_value(obj, _JSON_FINAL_KEYS)).strip(),
        )
    final = _final_section(text)
    findings = _section_text(text, _FINDINGS_HEADERS).strip()
    reasoning = _section_text(text, _DIFFERENTIAL_HEADERS).strip()
    if final is None and not findings and not reasoning:
        return ReportParts("free")
    return ReportParts("sections", findings, reasoning, final[1].strip() if final else "")
