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
    Concurrent, retried chat-completions requests to an OpenAI-compatible
    server, each case failing alone (the ``openai`` backend's transport;
    :mod:`fairderm.reasoning`'s judge uses it too).
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
map_classes, parse_report, ParsedReport, report_parts, ReportParts
    Model classes -> cohort labels; a written report -> a diagnosis; its parts.

See ``docs/inference.md`` for the backends, the prompt format and the
predictions schema.
"""

from __future__ import annotations

from fairderm.inference._architectures import (
    available_architectures,
    model_folder_file,
    register_architecture,
)
from fairderm.inference._backbone import (
    BACKBONE_PREPROCESSING,
    DIHEDRAL_VIEWS,
    Backbone,
    CachedEmbedder,
    CachedImage,
    FeatureSet,
    backbone_identity,
    dihedral_view,
    extract_features,
    extract_view_features,
    feature_identity,
    resolve_feature_cache,
)
from fairderm.inference._efficientnet import BACKBONE_NAME, FEATURE_DIM, EfficientNetLite0, load_backbone
from fairderm.inference._efficientnet import INPUT_SIZE as BACKBONE_INPUT_SIZE
from fairderm.inference._efficientnet import PIXEL_MEAN as BACKBONE_PIXEL_MEAN
from fairderm.inference._efficientnet import PIXEL_STD as BACKBONE_PIXEL_STD
from fairderm.inference._head import HeadTrainingResult, load_head, train_head
from fairderm.inference._labels import map_classes
from fairderm.inference._openai import ChatClient, served_model_identity
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
from fairderm.inference._runner import (
    PREDICTIONS_FORMAT,
    InferenceRun,
    StratumProgress,
    read_predictions,
    rows_sha256,
    run_inference,
)
from fairderm.inference._temperature import TemperatureFit, fit_group_temperatures, fit_temperature

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
    "EfficientNetLite0",
    "FeatureSet",
    "HeadTrainingResult",
    "InferenceRun",
    "ParsedReport",
    "Predictor",
    "PredictorOutput",
    "ReportParts",
    "StratumProgress",
    "TemperatureFit",
    "available_architectures",
    "available_backends",
    "backbone_identity",
    "dihedral_view",
    "extract_features",
    "extract_view_features",
    "feature_identity",
    "fit_group_temperatures",
    "fit_temperature",
    "load_backbone",
    "load_head",
    "load_predictor",
    "map_classes",
    "model_folder_file",
    "parse_report",
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
