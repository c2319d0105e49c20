"""Which code builds a PyTorch model: fairderm's registry, or an import path the user gave.

A model folder is data that someone else may have written, so its
``model.json`` can only *name* an architecture registered here; it never
names code to import. Code outside the registry runs only when the user asks
for it outside the model folder: ``fairderm infer --architecture
module:Class`` or ``model.architecture`` in an audit spec ("this runs your
code"). Whatever is built must be a :class:`torch.nn.Module` subclass,
checked before it is called with the folder's keyword arguments.

Model-folder paths (``weights`` in ``model.json``, a router's weights) are
checked here too: relative, not hidden, and inside the folder after
resolving symlinks, so that the folder's hashes cover every file a loader
reads.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from torch import nn

from fairderm._io import sha256_file
from fairderm.errors import InputError
from fairderm.inference._efficientnet import EfficientNetLite0

_REGISTRY: dict[str, type[nn.Module]] = {"efficientnet_lite0": EfficientNetLite0}


def register_architecture(name: str, module_class: type[nn.Module], *, replace: bool = False) -> None:
    """Register a :class:`torch.nn.Module` subclass a ``model.json`` may name.

    Parameters
    ----------
    name
        The name ``model.json``'s ``architecture`` key gives (no ``:``).
    module_class
        The class; it is called with ``model.json``'s ``kwargs``.
    replace
        Allow replacing an existing registration.
    """
    if not name or ":" in name or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise ValueError(f"invalid architecture name {name!r}")
    if not (isinstance(module_class, type) and issubclass(module_class, nn.Module)):
        raise TypeError(f"architecture {name!r} must be a torch.nn.Module subclass, got {module_class!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not module_class:
        raise ValueError(f"architecture {name!r} is already registered")
    _REGISTRY[name] = module_class


def available_architectures() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class Architecture:
    """The module class a torch model is built with, and where it came from.

    Attributes
    ----------
    module_class
        A :class:`torch.nn.Module` subclass.
    name
        The registry name or the user's import path.
    origin
        ``"registry"`` or ``"user"`` (an import path given outside the model folder).
    source_sha256
        SHA-256 of the module file the user's class was imported from (None
        for the registry).
    """

    module_class: type[nn.Module]
    name: str
    origin: str
    source_sha256: str | None = None

    def build(self, kwargs: Any, *, source: str) -> nn.Module:
        """Instantiate with ``kwargs`` (``model.json``'s ``kwargs``), refusing what is not a module."""
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise InputError("key 'kwargs': must be an object of keyword arguments", source=source)
        try:
            model = self.module_class(**kwargs)
        except TypeError as exc:
            raise InputError(f"key 'kwargs': {self.name} does not take them: {exc}", source=source) from None
        if not isinstance(model, nn.Module):
            raise InputError(f"architecture {self.name!r} did not build a torch.nn.Module", source=source)
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "source_sha256": self.source_sha256}


def folder_architecture(name: Any, *, source: str) -> Architecture:
    """The registered architecture a model folder names (its ``model.json`` key ``architecture``)."""
    if isinstance(name, str) and name in _REGISTRY:
        return Architecture(_REGISTRY[name], name, "registry")
    raise InputError(
        f"key 'architecture': {name!r} is not a registered architecture "
        f"(registered: {', '.join(available_architectures())}); a model folder cannot name code to import: "
        "give it with --architecture module:Class or the spec's model.architecture (this runs your code)",
        source=source,
    )


def user_architecture(path: str, *, base: Path | None = None, what: str = "--architecture") -> Architecture:
    """Import the class the user named outside any model folder: ``module:Class`` or ``file.py:Class``.

    This runs the user's code (the module's top level). A name without
    ``:`` is looked up in the registry.

    Parameters
    ----------
    path
        ``package.module:Class``, ``path/to/file.py:Class`` or a registry name.
    base
        Folder a relative ``file.py`` is resolved against (the current
        directory when None).
    what
        The option or key named in errors.
    """
    module_part, sep, name = str(path).partition(":")
    if not sep:
        return folder_architecture(module_part, source=what)
    if not module_part or not name.isidentifier():
        raise InputError(f"{what}: {path!r} must be 'module:Class' or 'file.py:Class'")
    if module_part.endswith(".py"):
        file = Path(module_part).expanduser()
        file = (file if file.is_absolute() or base is None else base / file).resolve()
        if not file.is_file():
            raise InputError(f"{what}: architecture file not found: {file}")
        loader_spec = importlib.util.spec_from_file_location(f"fairderm_user_model_{file.stem}", file)
        if loader_spec is None or loader_spec.loader is None:
            raise InputError(f"{what}: cannot import {file}")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise InputError(f"{what}: cannot import {module_part!r}: {exc}") from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise InputError(f"{what}: {path!r} is not a torch.nn.Module class")
    source = getattr(module, "__file__", None)  # None for a module built into the interpreter
    return Architecture(found, str(path), "user", sha256_file(source) if source and os.path.isfile(source) else None)


def model_folder_file(folder: Path, value: Any, *, config: Path, key: str) -> Path:
    """The file a model folder's config names at ``key``: relative, not hidden, inside the folder.

    Raises
    ------
    InputError
        Naming ``config`` and ``key``, for an absolute path, one with a
        hidden part, one that leaves the folder (``..`` or a symlink), or a
        file that does not exist.
    """
    if not isinstance(value, str) or not value:
        raise InputError(f"key '{key}': must be a file name relative to the model folder", source=str(config))
    pure = PurePosixPath(value.replace("\\", "/"))
    if os.path.isabs(value) or pure.is_absolute() or (len(value) > 1 and value[1] == ":"):
        raise InputError(f"key '{key}': absolute path {value!r} is not allowed", source=str(config))
    if ".." in pure.parts:
        raise InputError(f"key '{key}': {value!r} leaves the model folder", source=str(config))
    if any(part.startswith(".") for part in pure.parts):
        raise InputError(f"key '{key}': {value!r} is hidden (hidden files are not part of a model)",
                         source=str(config))
    root = folder.resolve()
    target = (root / pure).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"key '{key}': {value!r} resolves outside the model folder", source=str(config))
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise InputError(f"key '{key}': {value!r} resolves to a hidden file", source=str(config))
    if not target.is_file():
        raise InputError(f"key '{key}': file not found: {value}", source=str(config))
    return target
