"""Prompts for vision-language models and the image payload they receive.

A prompt template is plain text with ``${labels}`` (the cohort's labels,
comma-separated, underscores as spaces) and optionally ``${labels_list}``
(one per line, as ``- name``); anything else is sent as written.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from string import Template
from typing import Any

from PIL import Image

from fairderm._io import sha256_bytes
from fairderm.errors import InputError
from fairderm.inference._images import open_rgb

DEFAULT_PROMPT = """You are a board-certified dermatologist. Examine the clinical photograph of a skin lesion.
Answer in three sections:
Visual findings: what you see (colour, shape, border, surface, size cues).
Differential diagnosis: the diagnoses you considered and why you kept or rejected each.
Final diagnosis: exactly one of: ${labels}.
"""
DEFAULT_MAX_SIDE = 1024
# The version of how a prompt and an image become a request (template filling, message layout, image
# encoding): raise it when any of these changes, so that no cached answer to the old requests is reused.
PROMPT_VERSION = 1


def readable_label(label: str) -> str:
    return label.replace("_", " ")


def load_prompt(prompt: str | os.PathLike[str] | None) -> str:
    """The template text: the default, or the contents of a prompt file."""
    if prompt is None:
        return DEFAULT_PROMPT
    path = Path(prompt)
    if not path.is_file():
        raise InputError("prompt file not found", source=str(path))
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError("prompt file is empty", source=str(path))
    return text


def render_prompt(template: str, labels: list[str]) -> str:
    """Fill ``${labels}`` and ``${labels_list}``; other ``$`` text is left alone."""
    names = [readable_label(label) for label in labels]
    return Template(template).safe_substitute(
        labels=", ".join(names), labels_list="\n".join(f"- {n}" for n in names)
    )


def prompt_identity(text: str) -> dict[str, Any]:
    return {"prompt_version": PROMPT_VERSION, "prompt_sha256": sha256_bytes(text.encode("utf-8")), "prompt": text}


def encode_image(path: Path | None, max_side: int = DEFAULT_MAX_SIDE) -> tuple[bytes, str]:
    """Image bytes and MIME type to send: the file as is when it is a JPEG/PNG no larger
    than ``max_side``, else a JPEG (quality 95) resized to ``max_side``.

    Decodes the image in any case, so an unreadable file fails here, in the
    DataLoader worker, and never reaches the server.
    """
    if path is None:
        raise ValueError("image path escapes the cohort's images_root")
    with Image.open(path) as probe:
        fmt, size = probe.format, probe.size
    image = open_rgb(path, min_side=min(max_side, min(size)))
    if fmt in ("JPEG", "PNG") and max(size) <= max_side:
        return Path(path).read_bytes(), f"image/{fmt.lower()}"
    image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue(), "image/jpeg"


def data_url(payload: tuple[bytes, str]) -> str:
    data, mime = payload
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_messages(prompt: str, image_url: str, system: str | None = None) -> list[dict[str, Any]]:
    """OpenAI chat-completions messages: optional system text, then the image and the prompt."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": prompt},
            ],
        }
    )
    return messages


def image_preprocessing(max_side: int) -> dict[str, Any]:
    return {
        "image": f"file bytes as they are (JPEG/PNG up to {max_side} px), else JPEG q95 resized to {max_side} px",
        "transport": "base64 data URL",
    }
