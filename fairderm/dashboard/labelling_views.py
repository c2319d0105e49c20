"""What the labelling page shows: the scales' descriptions and keys, and the zoom on healthy skin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairderm.tone import CANNOT_TELL, MONK_HEX

# Fitzpatrick (1988), "The validity and practicality of sun-reactive skin types I through VI",
# Arch Dermatol 124:869-871: the phototype is how the skin reacts to the sun, not its colour alone.
FITZPATRICK_DESCRIPTIONS: dict[str, str] = {
    "1": "I: always burns, never tans (pale white skin)",
    "2": "II: usually burns, tans minimally (white skin)",
    "3": "III: sometimes burns mildly, tans uniformly (cream white to light brown)",
    "4": "IV: burns minimally, always tans well (moderate brown)",
    "5": "V: very rarely burns, tans very easily (dark brown)",
    "6": "VI: never burns (deeply pigmented dark brown to black)",
}
GROUP_DESCRIPTIONS: dict[str, str] = {
    "I-II": "I-II: burns easily, tans little (pale to white skin)",
    "III-IV": "III-IV: burns little, tans (cream white to moderate brown)",
    "V-VI": "V-VI: rarely or never burns (dark brown to black)",
}
ROMAN: dict[str, str] = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}
CANNOT_TELL_KEY = "X"  # Streamlit reserves C and R for itself
BACK_KEY = "Left"
FORWARD_KEY = "Right"


@dataclass(frozen=True)
class AnswerButton:
    """One answer: the value written to the labels file, the button's text and its keyboard shortcut."""

    value: str
    text: str
    key: str


def answer_buttons(scale: str, values: tuple[str, ...]) -> list[AnswerButton]:
    """The answer buttons of a scale, lightest first, then ``cannot tell``.

    Digits answer (Monk 10 is ``0``); ``X`` is ``cannot tell``.
    """
    if scale == "fitzpatrick":
        buttons = [AnswerButton(v, f"Type {ROMAN[v]}", v) for v in values]
    elif scale == "fitzpatrick_group":
        buttons = [AnswerButton(v, v, str(i)) for i, v in enumerate(values, start=1)]
    else:
        buttons = [AnswerButton(v, v, v[-1]) for v in values]
    return [*buttons, AnswerButton(CANNOT_TELL, "Cannot tell", CANNOT_TELL_KEY)]


def scale_descriptions(scale: str) -> list[str]:
    """The text shown beside the image for a Fitzpatrick scale (the Monk scale shows swatches instead)."""
    if scale == "fitzpatrick":
        return list(FITZPATRICK_DESCRIPTIONS.values())
    if scale == "fitzpatrick_group":
        return list(GROUP_DESCRIPTIONS.values())
    return []


def monk_swatches_html() -> str:
    """The ten Monk Skin Tone swatches (Monk 2019; the public hex values) as a row of labelled squares."""
    cells = "".join(
        f'<div style="text-align:center;font-size:0.8em"><div style="width:38px;height:38px;'
        f'background:#{hex_value};border:1px solid #888;border-radius:4px"></div>{tone}</div>'
        for tone, hex_value in enumerate(MONK_HEX, start=1)
    )
    return f'<div style="display:flex;gap:6px;flex-wrap:wrap">{cells}</div>'


def zoom_window(weight: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window holding the most weight (e.g. healthy-skin pixels).

    The window sums come from a summed-area table (Crow 1984), so every
    position is scored at once.
    """
    height, width = weight.shape
    side = max(1, min(side, height, width))
    table = np.zeros((height + 1, width + 1), dtype=np.float64)
    table[1:, 1:] = np.cumsum(np.cumsum(weight.astype(np.float64), axis=0), axis=1)
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def healthy_skin_zoom(rgb: np.ndarray, healthy: np.ndarray, lesion: np.ndarray | None) -> tuple[np.ndarray, str]:
    """A crop of the photograph on healthy skin, and a caption saying where it comes from.

    The window (a third of the shorter side) holds the most pixels the tone
    estimator measured as healthy skin; where it found none, the window
    furthest from the lesion (the cohort's lesion mask) is shown, else the
    centre of the photograph.
    """
    height, width = healthy.shape
    side = max(16, min(height, width) // 3)
    if healthy.any():
        weight, caption = healthy, "healthy skin the tone estimator measured (zoomed)"
    elif lesion is not None and lesion.shape == healthy.shape and lesion.any():
        weight, caption = ~lesion, "away from the lesion (the estimator found no healthy skin)"
    else:
        top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
        return rgb[top:top + side, left:left + side], "centre of the photograph (no healthy skin found)"
    top, left = zoom_window(weight, side)
    return rgb[top:top + side, left:left + side], caption
