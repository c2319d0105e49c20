"""Running models over a cohort: classifiers, the bundled backbone, vision-language models.

Public API
----------
run_inference, InferenceRun, StratumProgress
    Run a backend over a cohort, stratum by stratum, resumable and
    crash-safe; write one predictions Parquet (columns ``image_id, stratum,
    status, reason, pred, prob_<label>...`` and for text models ``text,
    differential, latency_s, prompt_tokens, completion_tokens, attempts``).
read_predictions, rows_sha256
    Read and validate a predictions file; the content hash of its rows.
served_model_identity, PROMPT_VERSION, PARSER_VERSION
    What identifies a vision-language model beyond its name: the server's
    own answer about it, the versions of the request format and the parser.
ChatClient
    Concurrent, retried chat-completions requests to one or several
    OpenAI-compatible servers of one model, each case failing alone and a
    dead server's cases going to the others (the ``openai`` backend's
    transport; :mod:`fairderm.reasoning`'s judge uses it too).
check_endpoints, ServedModel, EndpointWarning
    Ask every server what it serves before a run: leave out (with a
    warning) those that do not answer, refuse those serving another model.
Predictor, PredictorOutput, reject_unknown_options
    The interface every backend implements; a factory's check of its options.
register_backend, load_predictor, available_backends
    The backend registry (``backbone``, ``hf``, ``torch``, ``openai``,
    ``vllm``, ``file`` and ``router`` (:mod:`fairderm.moe`), each imported
    on first use).
register_architecture, available_architectures, model_folder_file
    The architectures a torch ``model.json`` may name (a model folder never
    names code to import), and the check of a path a model folder's config names.
extract_features, FeatureSet, Backbone, backbone_identity, feature_identity
    The frozen ImageNet EfficientNet-Lite0 as a cached feature extractor
    (``BACKBONE_PREPROCESSING``, ``BACKBONE_INPUT_SIZE`` describe its input);
    ``load_backbone`` and ``EfficientNetLite0`` give the network itself
    (the router's LoRA experts adapt its last blocks; its input is
    ``(rgb - BACKBONE_PIXEL_MEAN) / BACKBONE_PIXEL_STD``).
fit_temperature, fit_group_temperatures, TemperatureFit
    Temperature scaling on validation logits, overall and within groups.
extract_view_features, dihedral_view, DIHEDRAL_VIEWS
    Cached features of turned and mirrored views of chosen images (the
    router's extra training views of under-represented groups).
CachedEmbedder, CachedImage, resolve_feature_cache
    For predictors on the backbone: reuse cached features by image hash.
train_head, load_head, HeadTrainingResult
    Heads (linear or MLP) on the backbone's features.
ClassifierHead, fit_epochs, EpochObjective, EpochFit
    The one ERM head (standardisation, dropout, a linear layer or an MLP, a
    temperature) and the one epoch loop (seeding, batch order, AdamW, early
    stopping on a caller's validation score) that :func:`train_head` and the
    router's methods (:mod:`fairderm.moe`) both train with.
map_classes, parse_report, ParsedReport, report_parts, ReportParts
    Model classes -> cohort labels; a written report -> a diagnosis; its parts.

See ``docs/inference.md`` for the backends, the prompt format and the
predictions schema.
"""

from __future__ import annotations

from typing import Any

from fairderm._extras import import_optional
from fairderm.inference._endpoints import EndpointWarning, ServedModel, check_endpoints, served_model_identity
from fairderm.inference._labels import map_classes
from fairderm.inference._openai import ChatClient
from fairderm.inference._predictions import PREDICTIONS_FORMAT, read_predictions, rows_sha256
from fairderm.inference._predictor import (
    Predictor,
    PredictorOutput,
    available_backends,
    load_predictor,
    register_backend,
    reject_unknown_options,
)
from fairderm.inference._prompt import DEFAULT_PROMPT, PROMPT_VERSION
from fairderm.inference._report import PARSER_VERSION, ParsedReport, ReportParts, parse_report, report_parts
from fairderm.inference._run_records import InferenceRun, StratumProgress
from fairderm.inference._runner import run_inference
from fairderm.inference._temperature import TemperatureFit, fit_group_temperatures, fit_temperature

# The names backed by torch (the ``torch`` extra), imported when first used so
# that the file and openai backends run without torch.
_TORCH_NAMES: dict[str, tuple[str, str]] = {
    "available_architectures": ("_architectures", "available_architectures"),
    "model_folder_file": ("_architectures", "model_folder_file"),
    "register_architecture": ("_architectures", "register_architecture"),
    "BACKBONE_PREPROCESSING": ("_backbone", "BACKBONE_PREPROCESSING"),
    "DIHEDRAL_VIEWS": ("_views", "DIHEDRAL_VIEWS"),
    "Backbone": ("_backbone", "Backbone"),
    "Embedder": ("_backbone", "Embedder"),
    "pretrained_load_errors": ("_classifiers", "pretrained_load_errors"),
    "CachedEmbedder": ("_backbone", "CachedEmbedder"),
    "CachedImage": ("_backbone", "CachedImage"),
    "FeatureSet": ("_backbone", "FeatureSet"),
    "backbone_identity": ("_backbone", "backbone_identity"),
    "dihedral_view": ("_views", "dihedral_view"),
    "extract_features": ("_backbone", "extract_features"),
    "extract_view_features": ("_views", "extract_view_features"),
    "resolve_feature_cache": ("_backbone", "resolve_feature_cache"),
    "feature_identity": ("_backbone", "feature_identity"),
    "EfficientNetLite0": ("_efficientnet", "EfficientNetLite0"),
    "load_backbone": ("_efficientnet", "load_backbone"),
    "BACKBONE_PIXEL_MEAN": ("_efficientnet", "PIXEL_MEAN"),
    "BACKBONE_PIXEL_STD": ("_efficientnet", "PIXEL_STD"),
    "BACKBONE_NAME": ("_efficientnet", "BACKBONE_NAME"),
    "FEATURE_DIM": ("_efficientnet", "FEATURE_DIM"),
    "BACKBONE_INPUT_SIZE": ("_efficientnet", "INPUT_SIZE"),
    "ClassifierHead": ("_erm", "ClassifierHead"),
    "EpochFit": ("_erm", "EpochFit"),
    "EpochObjective": ("_erm", "EpochObjective"),
    "fit_epochs": ("_erm", "fit_epochs"),
    "HeadTrainingResult": ("_head", "HeadTrainingResult"),
    "load_head": ("_head", "load_head"),
    "train_head": ("_head", "train_head"),
}


def __getattr__(name: str) -> Any:
    if name not in _TORCH_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _TORCH_NAMES[name]
    value = getattr(import_optional(f"{__name__}.{module_name}", f"fairderm.inference.{name}"), attribute)
    globals()[name] = value
    return value


__all__ = [
    "BACKBONE_INPUT_SIZE",
    "BACKBONE_NAME",
    "BACKBONE_PIXEL_MEAN",
    "BACKBONE_PIXEL_STD",
    "BACKBONE_PREPROCESSING",
    "DEFAULT_PROMPT",
    "DIHEDRAL_VIEWS",
    "FEATURE_DIM",
    "PARSER_VERSION",
    "PREDICTIONS_FORMAT",
    "PROMPT_VERSION",
    "Backbone",
    "CachedEmbedder",
    "CachedImage",
    "ChatClient",
    "ClassifierHead",
    "EfficientNetLite0",
    "Embedder",
    "EndpointWarning",
    "EpochFit",
    "EpochObjective",
    "FeatureSet",
    "HeadTrainingResult",
    "InferenceRun",
    "ParsedReport",
    "Predictor",
    "PredictorOutput",
    "ReportParts",
    "ServedModel",
    "StratumProgress",
    "TemperatureFit",
    "available_architectures",
    "available_backends",
    "backbone_identity",
    "check_endpoints",
    "dihedral_view",
    "extract_features",
    "extract_view_features",
    "feature_identity",
    "fit_epochs",
    "fit_group_temperatures",
    "fit_temperature",
    "load_backbone",
    "load_head",
    "load_predictor",
    "map_classes",
    "model_folder_file",
    "parse_report",
    "pretrained_load_errors",
    "read_predictions",
    "register_architecture",
    "register_backend",
    "reject_unknown_options",
    "report_parts",
    "resolve_feature_cache",
    "rows_sha256",
    "run_inference",
    "served_model_identity",
    "train_head",
]
