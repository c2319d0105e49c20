"""Case filters: a small expression language over manifest columns, parsed by fairderm.

A filter such as ``split == 'test' and fitzpatrick in (5, 6)`` selects rows of
a manifest. It comes from audit specs, the command line and run folders that
someone else wrote, so it is never handed to an evaluator (``eval``,
``DataFrame.eval``/``query``: pandas' ``@name`` reaches Python globals).
fairderm tokenises and parses it itself into a small tree that can only read
columns and compare them with literals.

Grammar (``|`` in a rule separates alternatives; keywords are lower case)::

    filter      := disjunction
    disjunction := conjunction (("or" | "|") conjunction)*
    conjunction := negation (("and" | "&") negation)*
    negation    := ("not" | "~") negation | "(" disjunction ")" | comparison
    comparison  := operand (compare operand)*          # a chain: 1 <= x <= 4
                 | operand ["not"] "in" list
                 | column                              # a true/false column
    compare     := "==" | "!=" | "<" | "<=" | ">" | ">="
    operand     := column | literal
    column      := identifier | `any name in backquotes`
    literal     := 'text' | "text" | [-]number | True | False | None
    list        := "(" [literal ("," literal)* [","]] ")" | "[" ... "]"

Missing values compare false: a row whose column is missing is kept by no
comparison (``!=`` included) and by no ``in``, except ``== None`` (kept) and
``None`` in an ``in`` list. ``not`` negates after that, so
``not (sex == 'male')`` keeps the rows with no sex recorded.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairderm.errors import InputError

MAX_DEPTH = 64
"""Deepest nesting of parentheses and ``not`` a filter may have."""

_KEYWORDS = frozenset({"and", "or", "not", "in", "True", "False", "None"})
_CONSTANTS = {"True": True, "False": False, "None": None}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_SYMBOLS = ("==", "!=", "<=", ">=", "<", ">", "&", "|", "~", "(", ")", "[", "]", ",", "-")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_MAX_NUMBER_CHARS = 100
_HINT = "a filter has only columns, comparisons, literals, in, and/or/not and parentheses"


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "column" (backquoted), "string", "number", "symbol", "end"
    text: str
    position: int  # 0-based offset of the token's first character
    value: Any = None


def _error(subject: str, position: int, detail: str = "") -> InputError:
    """One line: what is wrong, where (1-based character), and why when it helps."""
    return InputError(f"{subject} at character {position + 1}" + (f": {detail}" if detail else ""))


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in "'\"`":
            end, value = _quoted(text, i)
            kind = "column" if char == "`" else "string"
            tokens.append(_Token(kind, text[i:end], i, value))
            i = end
            continue
        number = _NUMBER.match(text, i)
        if number and (char.isdigit() or char == "."):
            literal = number.group()
            if len(literal) > _MAX_NUMBER_CHARS:
                raise _error(f"number {literal[:12] + '...'!r}", i, "too long")
            value: Any = float(literal) if any(c in literal for c in ".eE") else int(literal)
            tokens.append(_Token("number", literal, i, value))
            i = number.end()
            continue
        name = _NAME.match(text, i)
        if name:
            tokens.append(_Token("name", name.group(), i, name.group()))
            i = name.end()
            continue
        symbol = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
        if symbol is None:
            raise _error(f"{char!r}", i, f"not allowed; {_HINT}")
        tokens.append(_Token("symbol", symbol, i))
        i += len(symbol)
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _quoted(text: str, start: int) -> tuple[int, str]:
    """End offset and value of the quoted string or backquoted name starting at ``start``."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return i + 1, "".join(chars)
        if char == "\\" and quote != "`":
            if i + 1 < len(text) and text[i + 1] in ("\\", "'", '"'):
                chars.append(text[i + 1])
                i += 2
                continue
            raise _error("backslash", i, "only \\\\, \\' and \\\" escapes are allowed in a string")
        chars.append(char)
        i += 1
    what = "name" if quote == "`" else "string"
    raise _error(f"unterminated {what}", start)


# The parsed tree: nodes are small frozen records evaluated against a frame.


@dataclass(frozen=True)
class _Column:
    name: str
    position: int


@dataclass(frozen=True)
class _Literal:
    value: Any
    position: int


_Operand = _Column | _Literal


@dataclass(frozen=True)
class _Compare:
    op: str
    left: _Operand
    right: _Operand
    position: int


@dataclass(frozen=True)
class _Membership:
    column: _Column
    values: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class _Truth:
    column: _Column


@dataclass(frozen=True)
class _Not:
    operand: Any


@dataclass(frozen=True)
class _Both:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class _Either:
    parts: tuple[Any, ...]


class _Parser:
    """Recursive descent over :func:`_tokens`, one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def _advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _is(self, *texts: str) -> bool:
        token = self.current
        return token.kind in ("symbol", "name") and token.text in texts

    def _unexpected(self, expected: str) -> InputError:
        token = self.current
        if token.kind == "end":
            return _error("end of the filter", token.position, f"expected {expected}")
        return _error(f"unexpected {token.text!r}", token.position, f"expected {expected}; {_HINT}")

    def _expect(self, text: str) -> None:
        if not self._is(text):
            raise self._unexpected(repr(text))
        self._advance()

    def parse(self) -> Any:
        if self.current.kind == "end":
            raise InputError("the filter is empty")
        tree = self.disjunction()
        if self.current.kind != "end":
            raise self._unexpected("'and', 'or', ')' or the end")
        return tree

    def disjunction(self) -> Any:
        parts = [self.conjunction()]
        while self._is("or", "|"):
            self._advance()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else _Either(tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self._is("and", "&"):
            self._advance()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else _Both(tuple(parts))

    def negation(self) -> Any:
        if self.depth >= MAX_DEPTH:
            raise _error(f"{self.current.text!r}", self.current.position, f"nested deeper than {MAX_DEPTH} levels")
        self.depth += 1
        try:
            if self._is("not", "~"):
                self._advance()
                return _Not(self.negation())
            if self._is("("):
                self._advance()
                inner = self.disjunction()
                self._expect(")")
                return inner
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Any:
        left = self.operand()
        if self._is("in") or (self._is("not") and self.tokens[self.index + 1].text == "in"
                               and self.tokens[self.index + 1].kind == "name"):
            negated = self._advance().text == "not"
            if negated:
                self._advance()
            if not isinstance(left, _Column):
                raise _error("'in'", self.tokens[self.index - 1].position, "its left side must be a column")
            return _Membership(left, self.literal_list(), negated)
        if not (self.current.kind == "symbol" and self.current.text in _COMPARE):
            if isinstance(left, _Column):
                return _Truth(left)
            raise self._unexpected("a comparison")
        links = []
        while self.current.kind == "symbol" and self.current.text in _COMPARE:
            op = self._advance()
            right = self.operand()
            if isinstance(left, _Literal) and isinstance(right, _Literal):
                raise _error(f"{op.text!r}", op.position, "a comparison needs a column on one side")
            links.append(_Compare(op.text, left, right, op.position))
            left = right
        return links[0] if len(links) == 1 else _Both(tuple(links))

    def operand(self) -> _Operand:
        token = self.current
        if token.kind == "column":
            self._advance()
            return _Column(token.value, token.position)
        if token.kind == "name" and token.text not in _KEYWORDS:
            if token.text.startswith("__"):
                raise _error(f"name {token.text!r}", token.position, "names starting with __ are not allowed")
            self._advance()
            return _Column(token.value, token.position)
        if token.kind in ("string", "number") or self._is("True", "False", "None", "-"):
            return _Literal(self.literal(), token.position)
        raise self._unexpected("a column or a literal")

    def literal(self) -> Any:
        token = self._advance()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "name" and token.text in _CONSTANTS:
            return _CONSTANTS[token.text]
        if token.kind == "symbol" and token.text == "-" and self.current.kind == "number":
            return -self._advance().value
        self.index -= 1
        raise self._unexpected("a literal (text in quotes, a number, True, False or None)")

    def literal_list(self) -> tuple[Any, ...]:
        if not self._is("(", "["):
            raise self._unexpected("a list of literals in ( ) or [ ]")
        closing = ")" if self._advance().text == "(" else "]"
        values: list[Any] = []
        while not self._is(closing):
            values.append(self.literal())
            if not self._is(","):
                break
            self._advance()
        self._expect(closing)
        return tuple(values)


def parse_filter(expression: str) -> CaseFilter:
    """Parse a filter expression (see the module docstring for the grammar).

    Parameters
    ----------
    expression
        The filter text.

    Returns
    -------
    CaseFilter
        The parsed filter; :meth:`CaseFilter.mask` applies it to a frame.

    Raises
    ------
    InputError
        One line naming the character position and the token that is not
        part of the language (attribute access, calls, ``@``, subscripts,
        arithmetic, dunder names...).
    """
    if not isinstance(expression, str):
        raise InputError(f"a filter is text, got {type(expression).__name__}")
    return CaseFilter(expression, _Parser(expression).parse())


@dataclass(frozen=True)
class CaseFilter:
    """A parsed filter: which manifest rows it keeps.

    Attributes
    ----------
    expression
        The text it was parsed from.
    """

    expression: str
    _tree: Any

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """One bool per row of ``frame``: True where the filter keeps the row.

        Raises
        ------
        InputError
            For a column ``frame`` does not have, a comparison its values do
            not support (text with a number by ``<``), or a bare column that
            is not true/false.
        """
        return _evaluate(self._tree, frame)


def _column(frame: pd.DataFrame, column: _Column) -> pd.Series:
    if column.name not in frame.columns:
        raise _error(f"column {column.name!r}", column.position, "no such column in the manifest")
    return frame[column.name]


def _as_bool(values: Any) -> np.ndarray:
    # nullable dtypes give <NA> where a value is missing: missing compares false
    if isinstance(values, pd.Series):
        return values.fillna(False).to_numpy(dtype=bool)
    return np.asarray(values, dtype=bool)


def _evaluate(node: Any, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(node, _Either):
        return np.logical_or.reduce([_evaluate(part, frame) for part in node.parts])
    if isinstance(node, _Both):
        return np.logical_and.reduce([_evaluate(part, frame) for part in node.parts])
    if isinstance(node, _Not):
        return ~_evaluate(node.operand, frame)
    if isinstance(node, _Truth):
        values = _column(frame, node.column)
        if not pd.api.types.is_bool_dtype(values):
            raise _error(f"column {node.column.name!r}", node.column.position,
                         "it is not true/false: compare it with a value")
        return _as_bool(values)
    if isinstance(node, _Membership):
        values = _column(frame, node.column)
        kept = _as_bool(values.isin([v for v in node.values if v is not None])) & _as_bool(values.notna())
        if None in node.values:
            kept |= _as_bool(values.isna())
        return ~kept if node.negated else kept
    return _compare(node, frame)


def _compare(node: _Compare, frame: pd.DataFrame) -> np.ndarray:
    sides = [_column(frame, side) if isinstance(side, _Column) else side.value for side in (node.left, node.right)]
    if any(isinstance(side, _Literal) and side.value is None for side in (node.left, node.right)):
        if node.op not in ("==", "!="):
            raise _error(f"{node.op!r}", node.position, "None can only be compared with == or !=")
        series = next(side for side in sides if isinstance(side, pd.Series))
        missing = _as_bool(series.isna())
        return missing if node.op == "==" else ~missing
    present = np.ones(len(frame), dtype=bool)
    for side in sides:
        if isinstance(side, pd.Series):
            present &= _as_bool(side.notna())
    # compare the rows where every column side has a value: missing compares false, and <NA> never
    # reaches a comparison that would raise on it
    operands = [side[present] if isinstance(side, pd.Series) else side for side in sides]
    try:
        result = _as_bool(_COMPARE[node.op](operands[0], operands[1]))
    except (TypeError, ValueError, ArithmeticError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _error(f"{node.op!r}", node.position, f"cannot compare ({detail})") from None
    kept = np.zeros(len(frame), dtype=bool)
    kept[present] = result
    return kept
