"""The sections of an audit spec (cohort, model, tone, strata, metrics, bootstrap, outputs, reasoning).

Every default is documented on its field; :class:`fairderm.audit.AuditSpec`
joins the sections and checks what spans them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairderm.metrics import metric_name_problem

BACKENDS: tuple[str, ...] = ("hf", "torch", "backbone", "openai", "vllm", "file", "router")
"""Inference backends an audit can run (see :mod:`fairderm.inference`)."""

PATH_BACKENDS: tuple[str, ...] = ("hf", "torch", "backbone", "file", "router")
"""Backends whose ``model`` is a file or folder (relative to the spec file)."""

TONE_DERIVED: tuple[str, ...] = ("fitzpatrick_est", "fitzpatrick_est_type", "monk_est")
"""Strata attributes that come from the tone stage rather than the manifest:
``fitzpatrick_est`` is the estimated group (I-II, III-IV, V-VI; the name release
policies use), ``fitzpatrick_est_type`` the estimated type 1-6 and ``monk_est``
the estimated Monk tone 1-10."""

DEFAULT_METRICS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auroc", "brier", "ece",
)

LABEL_ONLY_BACKENDS: tuple[str, ...] = ("openai", "vllm")
"""Backends whose predictor gives a diagnosis, never class probabilities (``gives_probabilities`` False):
a metric or policy rule that needs probabilities cannot be computed from them."""


class SpecSection(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CohortSection(SpecSection):
    """Which cases are audited."""

    path: str = Field(min_length=1, description="Cohort folder, relative to the spec file.")
    filter: str | None = Field(
        None,
        description="Filter on the manifest selecting the audited cases, e.g. \"split == 'test'\": columns, "
        "comparisons, literals, in, and/or/not, parentheses, parsed by fairderm and never run as code "
        "(default: every case).",
    )


class ModelSection(SpecSection):
    """The model under audit: any inference backend."""

    backend: Literal["hf", "torch", "backbone", "openai", "vllm", "file", "router"] = Field(
        description="Inference backend: hf, torch, backbone, openai, vllm, file or router."
    )
    model: str = Field(
        min_length=1,
        description="For hf, torch, backbone, router: the model folder or checkpoint; for file: the "
        "predictions file (all relative to the spec file); for openai and vllm: the served model name.",
    )
    endpoint: str | None = Field(None, description="Base URL of an OpenAI-compatible server (openai, vllm).")
    endpoints: list[str] | None = Field(
        None,
        min_length=1,
        description="Base URLs of several servers of the same model, which share the cases (openai; instead of "
        "'endpoint'). Where the model is served is no part of the inference stage's cache key; what the servers "
        "say they serve is.",
    )
    prompt: str | None = Field(None, description="Prompt file for text models, relative to the spec file.")
    architecture: str | None = Field(
        None,
        description="torch: your model class, 'package.module:Class' or 'file.py:Class' (relative to the spec "
        "file), used instead of the registered architecture model.json names. This runs your code; a model "
        "folder itself can only name a registered architecture.",
    )
    revision: str | None = Field(
        None,
        description="Revision of a served or vLLM model (e.g. the commit of its weights), which the server does not "
        "report (openai, vllm); part of the inference stage's cache key (`fairderm infer --model-revision`).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further keyword arguments for the backend (e.g. batch_size, concurrency, label_map); "
        "they are part of the inference stage's cache key.",
    )

    @property
    def served_at(self) -> list[str]:
        """The model's servers: ``endpoints``, or ``endpoint`` alone, or none."""
        return list(self.endpoints) if self.endpoints else [self.endpoint] if self.endpoint else []

    @model_validator(mode="after")
    def _endpoint_for_servers(self) -> ModelSection:
        if self.endpoint and self.endpoints:
            raise ValueError("give either 'endpoint' or 'endpoints', not both")
        if self.backend == "openai" and not self.served_at:
            raise ValueError("backend 'openai' needs 'endpoint' (the server's base URL) or 'endpoints' (several)")
        if self.revision is not None and self.backend not in ("openai", "vllm"):
            raise ValueError(f"'revision' is for backends openai and vllm, not {self.backend!r}")
        return self

    @model_validator(mode="after")
    def _architecture_for_torch(self) -> ModelSection:
        if self.architecture and self.backend != "torch":
            raise ValueError("'architecture' is for backend 'torch' only")
        if "architecture" in self.options:
            raise ValueError("give the architecture as model.architecture, not among model.options")
        return self


class ToneSection(SpecSection):
    """Where the skin-tone strata come from."""

    source: Literal["estimate", "table", "column", "none"] = Field(
        "estimate",
        description="'estimate': run fairderm.tone.estimate_tone and stratify by fitzpatrick_est (I-II/III-IV/V-VI); "
        "'table': a tone table made beforehand (see `table`, e.g. from `fairderm tone learn`), stratified the "
        "same way; 'column': use a labelled manifest column instead (see `column`); 'none': no tone stage.",
    )
    table: str | None = Field(
        None,
        description="Tone table of the cohort (the schema of `fairderm tone estimate`, e.g. `fairderm tone learn`'s "
        "tone.parquet) when source is 'table', relative to the spec file; it must cover every audited case.",
    )
    method: Literal["fairderm", "stone"] = Field("fairderm", description="Tone estimator (source 'estimate').")
    calibration: str | None = Field(
        None, description="Calibration JSON from `fairderm tone calibrate`, relative to the spec file."
    )
    column: str | None = Field(
        None, description="Labelled tone column to stratify by when source is 'column' (e.g. fitzpatrick_group)."
    )
    reference: str | None = Field(
        None,
        description="Labelled column the estimate's reliability is measured against (fitzpatrick, "
        "fitzpatrick_group or monk); default: the first of these the cohort has values for.",
    )
    workers: int | None = Field(None, ge=1, description="Processes for estimation (default: one per core).")
    exposure_sd: float = Field(
        0.45, ge=0.0, le=2.0,
        description="Prior SD, in stops, of the photographs' exposure error, carried into the ITA intervals "
        "(source 'estimate'; see `fairderm tone estimate --exposure-sd`).",
    )
    white_reflectance: float = Field(
        0.85, ge=0.05, le=1.0,
        description="Luminance factor of the white references (rulers, paper) in the photographs: a white "
        "reference found sets the exposure so that it reads this (source 'estimate'; see `fairderm tone "
        "estimate --white-reflectance`).",
    )
    lesion_masks: bool = Field(
        False,
        description="Use the cohort's lesion masks (manifest column 'mask') instead of segmenting the lesion "
        "(source 'estimate'); the mask files are then hashed with the images.",
    )
    validation_labels: str | None = Field(
        None,
        description="CSV of reference skin-tone labels (e.g. a dermatologist's) for a validation sample of the "
        "cases, relative to the spec file: columns image_id, label (Fitzpatrick type 1-6 or group I-II/III-IV/"
        "V-VI; empty or 'cannot_tell' for none) and optionally inclusion_prob (`fairderm tone label` writes "
        "it). The metrics by estimated group are then corrected to metrics by true group "
        "(attribute fitzpatrick_est:true; source 'estimate').",
    )
    validation_column: str | None = Field(
        None,
        description="Manifest column holding such labels for part of the cases, instead of validation_labels.",
    )
    validation_inclusion: str | None = Field(
        None,
        description="Manifest column with each labelled case's inclusion probability (with validation_column); "
        "default: the labelled share of its estimated group (labelled at random within estimated group).",
    )
    strata_error: str = Field(
        "published",
        description="Without validation labels: the error model that bounds the metrics by true group "
        "(attribute fitzpatrick_est:bounds). 'published': colour estimates' published agreement with "
        "dermatologists on clinical photographs (Groh et al. 2022); 'none': no bounds (the estimated groups "
        "at face value); or a CSV confusion matrix relative to the spec file (rows true group, columns "
        "estimated group, counts or proportions).",
    )

    @model_validator(mode="after")
    def _column_for_column_source(self) -> ToneSection:
        if self.source == "column" and not self.column:
            raise ValueError("source 'column' needs 'column' (the labelled tone column)")
        if (self.source == "table") != bool(self.table):
            raise ValueError("source 'table' goes with 'table' (the tone table's path), and only it")
        if self.validation_labels and self.validation_column:
            raise ValueError("give validation_labels or validation_column, not both")
        if self.validation_inclusion and not self.validation_column:
            raise ValueError("validation_inclusion goes with validation_column")
        if (self.validation_labels or self.validation_column) and not self.estimated:
            raise ValueError(f"validation labels correct estimated strata, but source is '{self.source}'")
        return self

    @property
    def estimated(self) -> bool:
        """Whether the strata are estimated tone (an estimate run now, or a table made beforehand)."""
        return self.source in ("estimate", "table")

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_labels or self.validation_column)

    @property
    def strata_error_file(self) -> str | None:
        """The strata error model's CSV, when it is a file."""
        return None if self.strata_error in ("published", "none") else self.strata_error


class StrataSection(SpecSection):
    """How cases are grouped."""

    attributes: list[str] | None = Field(
        None,
        description="Attributes to stratify by: manifest columns (sex, body_site, fitzpatrick, ...) or the "
        "tone stage's fitzpatrick_est (group I-II/III-IV/V-VI), fitzpatrick_est_type (1-6), monk_est (1-10). "
        "Default: fitzpatrick_est "
        "(tone source 'estimate') or the tone column (source 'column').",
    )
    intersections: list[list[str]] = Field(
        default_factory=list,
        description="Attribute combinations to cross, e.g. [[fitzpatrick_est, sex]].",
    )
    min_n: int = Field(30, ge=1, description="Groups smaller than this are flagged 'insufficient'.")
    min_pos: int = Field(
        10, ge=1, description="Rate metrics with fewer cases than this in their denominator (positives for "
        "sensitivity, negatives for specificity, ...) are flagged 'insufficient'.",
    )
    reference: dict[str, str] = Field(
        default_factory=dict,
        description="Reference group per attribute for differences (e.g. {fitzpatrick_est: I-II}); "
        "default: the metrics engine's choice.",
    )

    @field_validator("intersections")
    @classmethod
    def _intersections_cross_two_or_more(cls, value: list[list[str]]) -> list[list[str]]:
        for combo in value:
            if len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError(f"an intersection crosses two or more distinct attributes, got {combo}")
        return value


class MetricsSection(SpecSection):
    """What is measured."""

    names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        min_length=1,
        description="Metric names of fairderm.metrics (default: " + ", ".join(DEFAULT_METRICS) + ").",
    )
    task: Literal["auto", "binary", "multiclass"] = Field(
        "auto",
        description="'auto': every label (accuracy over all of them), with the cohort's positive_classes as the "
        "positive event of sensitivity, specificity, AUROC... when it defines them; 'binary': positive_classes "
        "against the rest only; 'multiclass': every label, rate metrics one-vs-rest per class.",
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Decision threshold on the positive-event score.")
    covariates: list[str] = Field(
        default_factory=list,
        description="Manifest columns (e.g. age, sex, body_site) the case-mix adjustment accounts for, beside "
        "the diagnosis.",
    )
    p_adjust: Literal["holm", "fdr_bh", "bonferroni", "none"] = Field(
        "holm", description="Multiplicity adjustment of the tests: holm (Holm 1979, confirmatory) or fdr_bh "
        "(Benjamini-Hochberg 1995, exploratory).",
    )
    n_perm: int = Field(1000, ge=100, le=1_000_000, description="Permutations per permutation test (AUROC, ECE).")

    @field_validator("names")
    @classmethod
    def _known_metric_names(cls, names: list[str]) -> list[str]:
        # checked when the spec is loaded, so that a typo costs no tone estimation or inference
        for name in names:
            problem = metric_name_problem(name)
            if problem:
                raise ValueError(problem)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"metric named twice: {', '.join(duplicated)}")
        return names


class BootstrapSection(SpecSection):
    """Confidence intervals."""

    # the cap keeps a typo (1e12) from running for ever; intervals settle long before it
    n_boot: int = Field(2000, ge=100, le=1_000_000, description="Bootstrap replicates B (100 to 1,000,000).")
    ci: Literal["bca", "percentile"] = Field("bca", description="Interval method: bca (Efron 1987) or percentile.")
    cluster: str | None = Field(
        "auto",
        description="Column whose values are resampled together (patient_id, lesion_id); 'auto': patient_id "
        "when the manifest has it; null: resample cases.",
    )
    seed: int = Field(0, ge=0, description="Seed of the bootstrap (recorded in evidence.json).")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Two-sided coverage of every interval.")


class OutputsSection(SpecSection):
    """Where and what the audit writes."""

    runs_dir: str | None = Field(None, description="Run folders go here (default: NAME/runs beside the spec).")
    cache_dir: str | None = Field(None, description="Stage cache (default: NAME/cache beside the spec).")
    card: bool = Field(True, description="Write the model card (card.md, card.html, card.json).")
    figures: bool = Field(True, description="Write figures/ (interactive plotly HTML, offline).")
    hash_images: bool = Field(
        True, description="Hash every image into evidence.json and images.sha256 (turn off for huge cohorts)."
    )


JUDGE_OPTIONS: tuple[str, ...] = (
    "concurrency", "timeout", "max_retries", "backoff", "max_tokens", "temperature", "seed", "json_mode",
    "api_key_env", "max_response_bytes", "batch_size",
)
"""Keys of ``reasoning.options`` (see :class:`fairderm.reasoning.Judge`)."""


class ReasoningSection(SpecSection):
    """Scoring a text model's reports (fairderm.reasoning): a judge model on a rubric, and deterministic checks."""

    rubric: str | None = Field(
        None, description="Rubric YAML, relative to the spec file (default: fairderm's DermEval-style rubric)."
    )
    endpoint: str | None = Field(
        None, description="Base URL of the judge's OpenAI-compatible server (e.g. vllm serve); none: checks only."
    )
    endpoints: list[str] | None = Field(
        None, min_length=1, description="Base URLs of several servers of the same judge (instead of 'endpoint')."
    )
    model: str | None = Field(None, description="Judge model name (default: the first model the server lists).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Judge settings: " + ", ".join(JUDGE_OPTIONS) + "."
    )

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(JUDGE_OPTIONS))
        if unknown:
            raise ValueError(f"unknown judge option {unknown[0]!r} (known: {', '.join(JUDGE_OPTIONS)})")
        return value

    @property
    def served_at(self) -> list[str]:
        """The judge's servers: ``endpoints``, or ``endpoint`` alone, or none (checks only)."""
        return list(self.endpoints) if self.endpoints else [self.endpoint] if self.endpoint else []

    @model_validator(mode="after")
    def _model_needs_endpoint(self) -> ReasoningSection:
        if self.endpoint and self.endpoints:
            raise ValueError("give either 'endpoint' or 'endpoints', not both")
        if self.model is not None and not self.served_at:
            raise ValueError("a judge model needs the endpoint that serves it")
        return self
