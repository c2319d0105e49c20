"""Text from outside (a model server, a file) made safe to print on a terminal.

A server's error body or answer may hold escape sequences that move the
cursor, recolour or rewrite what is already on the screen (a fake
"gate PASS" drawn over a FAIL). Everything fairderm prints that comes from
such text goes through :func:`printable` first.
"""

from __future__ import annotations

import re

# ECMA-48 sequences: CSI (ESC [ or the 8-bit CSI, parameters, intermediates, a final byte), OSC/DCS/SOS/PM/APC
# strings up to their terminator (BEL or ST), and two-byte ESC sequences.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]P X^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[@-Z\\-_]",
    re.DOTALL,
)
# C0 controls but tab and newline, DEL, and C1 controls: whatever is left once the sequences are gone
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without ANSI/ECMA-48 escape sequences and C0/C1 control characters (tab and newline kept)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
