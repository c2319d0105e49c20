"""The audit spec: ``audits/NAME.yaml`` as pydantic models.

Every default is documented on its field, so that ``AuditSpec.model_json_schema()``
is the reference. Paths in a spec are relative to the spec file. Loading a spec
checks the keys and that the files it names exist; an error names the file and
the key path (``audits/x.yaml: key 'bootstrap.n_boot': ...``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairderm._engine import Engine
from fairderm._keys import unknown_key_message
from fairderm.audit._spec_sections import (
    LABEL_ONLY_BACKENDS,
    PATH_BACKENDS,
    TONE_DERIVED,
    BootstrapSection,
    CohortSection,
    MetricsSection,
    ModelSection,
    OutputsSection,
    ReasoningSection,
    SpecSection,
    StrataSection,
    ToneSection,
)
from fairderm.cards import CardInfo
from fairderm.errors import InputError
from fairderm.metrics import SCORE_METRICS, metric_name_problem

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class AuditSpec(SpecSection):
    """An audit: a cohort, a model, strata, metrics, bootstrap, a policy and outputs."""

    name: str | None = Field(
        None,
        description="Audit name (default: the spec file's stem): letters, digits, '.', '_' and '-', starting "
        "with a letter or digit, at most 100 characters (it names the NAME/runs and NAME/cache folders).",
    )
    description: str = Field("", description="What is audited and why, in words (shown in the card).")
    cohort: CohortSection
    model: ModelSection
    tone: ToneSection = Field(default_factory=ToneSection)
    strata: StrataSection = Field(default_factory=StrataSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    bootstrap: BootstrapSection = Field(default_factory=BootstrapSection)
    policy: str | None = Field(
        None, description="Release-gate policy YAML, relative to the spec file (none: no gate, exit 0)."
    )
    reasoning: ReasoningSection | None = Field(
        None, description="Score the model's reports (text models: openai, vllm) and audit the scores by group."
    )
    engine: Engine = Field(default_factory=Engine, description="Where tone and inference run ('engine: ray': Ray).")
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    card: CardInfo = Field(
        default_factory=CardInfo,
        description="The owner's text for the model card: intended use, training data, owners, licence, ... "
        "(the keys of fairderm.cards.CardInfo); what is left out is stated as not documented.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_slug(cls, name: str | None) -> str | None:
        if name is not None:
            _check_slug(name)
        return name

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, raw: Any) -> Any:
        # `cohort: PATH`, `metrics: [names]` and `engine: ray` are the common cases; accept them as written.
        if isinstance(raw, dict):
            raw = dict(raw)
            if isinstance(raw.get("cohort"), str):
                raw["cohort"] = {"path": raw["cohort"]}
            if isinstance(raw.get("metrics"), list):
                raw["metrics"] = {"names": raw["metrics"]}
            if isinstance(raw.get("engine"), str):
                raw["engine"] = {"name": raw["engine"]}
        return raw

    @model_validator(mode="after")
    def _tone_attributes_need_tone(self) -> AuditSpec:
        if not self.tone.estimated:
            used = {a for a in self.strata.attributes or []} | {a for c in self.strata.intersections for a in c}
            derived = sorted(used & set(TONE_DERIVED))
            if derived:
                raise ValueError(f"strata use {derived} but tone.source is '{self.tone.source}', not 'estimate' "
                                 "or 'table'")
        return self

    @model_validator(mode="after")
    def _label_backend_defaults_to_label_metrics(self) -> AuditSpec:
        # Only the defaults are trimmed; metrics the user named are checked in parse_spec, naming the key.
        if self.model.backend in LABEL_ONLY_BACKENDS and "names" not in self.metrics.model_fields_set:
            self.metrics.names = [n for n in self.metrics.names if n.partition(":")[0] not in SCORE_METRICS]
        return self

    @model_validator(mode="after")
    def _reasoning_needs_reports(self) -> AuditSpec:
        if self.reasoning is not None and self.model.backend not in ("openai", "vllm"):
            raise ValueError(f"reasoning scores written reports, and backend '{self.model.backend}' writes none "
                             "(use openai or vllm)")
        return self

    def stratum_attributes(self) -> list[str]:
        """The attributes to stratify by, defaults resolved."""
        if self.strata.attributes is not None:
            return list(self.strata.attributes)
        if self.tone.estimated:
            return ["fitzpatrick_est"]
        if self.tone.source == "column":
            return [str(self.tone.column)]
        return []


class LoadedSpec(BaseModel):
    """A validated spec with its paths resolved against the spec file.

    Attributes
    ----------
    spec
        The validated spec, as written.
    source
        The spec file.
    name
        ``spec.name`` or the file's stem.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    spec: AuditSpec
    source: Path
    name: str

    @property
    def base(self) -> Path:
        """Folder the spec's relative paths are resolved against."""
        return self.source.parent

    def resolve(self, relative: str) -> Path:
        """A spec path made absolute (relative to the spec file's folder)."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base / path).resolve()

    @property
    def cohort_path(self) -> Path:
        return self.resolve(self.spec.cohort.path)

    @property
    def model_path(self) -> Path | None:
        """The model file or folder, for backends that read one."""
        return self.resolve(self.spec.model.model) if self.spec.model.backend in PATH_BACKENDS else None

    @property
    def architecture(self) -> str | None:
        """``model.architecture`` with a ``file.py`` part made absolute (relative to the spec file)."""
        value = self.spec.model.architecture
        if not value:
            return None
        module_part, sep, name = value.partition(":")
        return f"{self.resolve(module_part)}{sep}{name}" if module_part.endswith(".py") else value

    @property
    def policy_path(self) -> Path | None:
        return self.resolve(self.spec.policy) if self.spec.policy else None

    @property
    def runs_dir(self) -> Path:
        out = self.spec.outputs.runs_dir
        return self.resolve(out) if out else self.base / self.name / "runs"

    @property
    def cache_dir(self) -> Path:
        out = self.spec.outputs.cache_dir
        return self.resolve(out) if out else self.base / self.name / "cache"


def _check_slug(name: str) -> None:
    """The audit name becomes a folder name: no separators, no ``..``, nothing hidden."""
    if not _SLUG.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a safe name: use letters, digits, '.', '_' and '-', starting with a letter or "
            "digit, at most 100 characters"
        )


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top level)"


def _error_message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return unknown_key_message(AuditSpec, [p for p in error["loc"] if not str(p).startswith("function-")])
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_spec(raw: Any, *, source: str | Path) -> AuditSpec:
    """Validate a spec mapping; an error names the source and the key path."""
    if not isinstance(raw, dict):
        raise InputError("an audit spec is a mapping of keys (cohort, model, ...)", source=str(source))
    try:
        spec = AuditSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"key '{_key_path(first['loc'])}': {_error_message(first)}", source=str(source)) from None
    _check_metrics_for_backend(spec, shorthand=isinstance(raw.get("metrics"), list), source=source)
    return spec


def _check_metrics_for_backend(spec: AuditSpec, *, shorthand: bool, source: str | Path) -> None:
    """A metric needing probabilities on a backend that gives labels: found before tone and inference run."""
    backend = spec.model.backend
    if backend not in LABEL_ONLY_BACKENDS:
        return
    for index, name in enumerate(spec.metrics.names):
        if name.partition(":")[0] in SCORE_METRICS:
            key = f"metrics[{index}]" if shorthand else f"metrics.names[{index}]"
            raise InputError(f"key '{key}': {name!r} needs probabilities; backend '{backend}' gives labels",
                             source=str(source))


def _require_exists(loaded: LoadedSpec, key: str, path: Path | None, what: str) -> None:
    if path is not None and not path.exists():
        raise InputError(f"key '{key}': {what} not found: {path}", source=str(loaded.source))


def load_spec(path: str | Path) -> LoadedSpec:
    """Read, validate and resolve an audit spec YAML file.

    Parameters
    ----------
    path
        The spec file (``audits/NAME.yaml``).

    Raises
    ------
    InputError
        One line naming the file and the key at fault: an unknown key, a bad
        value, or a cohort, model, calibration, prompt or policy file that does
        not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("audit spec not found", source=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {str(exc).splitlines()[0]}", source=str(path)) from None
    spec = parse_spec(raw, source=path)
    if spec.name is None:
        try:
            _check_slug(path.stem)
        except ValueError as exc:
            raise InputError(f"key 'name': the file name is the default name, and {exc}; give 'name'",
                             source=str(path)) from None
    loaded = LoadedSpec(spec=spec, source=path.resolve(), name=spec.name or path.stem)
    if not (loaded.cohort_path / "cohort.yaml").is_file():
        raise InputError(f"key 'cohort.path': cohort folder not found: {loaded.cohort_path}", source=str(path))
    _check_metric_labels(loaded)
    _require_exists(loaded, "model.model", loaded.model_path, "model")
    _require_exists(loaded, "policy", loaded.policy_path, "policy file")
    _check_policy_for_backend(loaded)
    architecture = spec.model.architecture
    if architecture and architecture.partition(":")[0].endswith(".py"):
        _require_exists(loaded, "model.architecture", loaded.resolve(architecture.partition(":")[0]),
                        "architecture file")
    if spec.tone.calibration:
        _require_exists(loaded, "tone.calibration", loaded.resolve(spec.tone.calibration), "calibration file")
    if spec.tone.table:
        _require_exists(loaded, "tone.table", loaded.resolve(spec.tone.table), "tone table")
    if spec.tone.validation_labels:
        _require_exists(loaded, "tone.validation_labels", loaded.resolve(spec.tone.validation_labels),
                        "validation labels file")
    if spec.tone.strata_error_file:
        _require_exists(loaded, "tone.strata_error", loaded.resolve(spec.tone.strata_error_file),
                        "strata error model file")
    if spec.model.prompt:
        _require_exists(loaded, "model.prompt", loaded.resolve(spec.model.prompt), "prompt file")
    if spec.reasoning is not None and spec.reasoning.rubric:
        _require_exists(loaded, "reasoning.rubric", loaded.resolve(spec.reasoning.rubric), "rubric file")
    return loaded


def _check_policy_for_backend(loaded: LoadedSpec) -> None:
    """A policy rule on a probability metric would be the gate's ERROR after every stage ran: refuse it now."""
    backend = loaded.spec.model.backend
    if backend not in LABEL_ONLY_BACKENDS or loaded.policy_path is None:
        return
    from fairderm.gate import load_policy

    for rule in load_policy(loaded.policy_path).rules:
        if rule.metric and rule.metric.partition(":")[0] in SCORE_METRICS:
            raise InputError(f"key 'policy': rule {rule.id!r} checks {rule.metric!r}, which needs probabilities; "
                             f"backend '{backend}' gives labels", source=str(loaded.source))


def _check_metric_labels(loaded: LoadedSpec) -> None:
    """Per-class metric names (``sensitivity:melanoma``) must name a label of the cohort: known from cohort.yaml."""
    from fairderm.cohort import SPEC_FILE

    try:
        cohort_spec = yaml.safe_load((loaded.cohort_path / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # the cohort's own loader reports an unreadable cohort.yaml, naming it
    labels = cohort_spec.get("labels") if isinstance(cohort_spec, dict) else None
    if not isinstance(labels, list):
        return
    for name in loaded.spec.metrics.names:
        problem = metric_name_problem(name, [str(label) for label in labels])
        if problem:
            raise InputError(f"key 'metrics.names': {problem}", source=str(loaded.source))


def dump_spec(spec: AuditSpec) -> str:
    """The spec as YAML, every default written out (the run folder's ``spec.yaml``).

    The card text is written as given (its unset keys left out), since the
    card states "not documented" for those. The engine is left out: it says
    where the stages ran (``run.json`` records it), not what was audited.
    """
    data = spec.model_dump(mode="json", exclude={"card", "engine"})
    data["card"] = spec.card.model_dump(mode="json", exclude_unset=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
