"""``fairderm infer`` and ``fairderm head train``: run a model over a cohort; train a head."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from fairderm.commands._common import (
    ENGINE_OPTION,
    RAY_ADDRESS_OPTION,
    console,
    engine_from_flags,
    parse_mapping,
    progress_bar,
)
from fairderm.errors import InputError

head_app = typer.Typer(
    help="Heads on the bundled frozen EfficientNet-Lite0 backbone (the model every user can audit on CPU).",
    no_args_is_help=True,
)

BACKENDS_HELP = (
    "backbone: bundled EfficientNet-Lite0 + a head from `fairderm head train`; "
    "hf: transformers image classifier folder; torch: folder with model.json + safetensors; "
    "openai: vision-language model behind an OpenAI-compatible API (vllm serve); "
    "vllm: in-process vLLM (GPU, \\[vllm] extra); file: import a predictions CSV/Parquet; "
    "router: fairness-aware mixture of experts (fairderm.moe)."
)


WORKERS_HELP = (
    "Image decoding processes (default, of the usable cores: on CPU a quarter, none below 4 cores; on GPU all but "
    "one); with --engine ray, each actor decodes its own blocks."
)


def register(app: typer.Typer) -> None:
    """Add ``infer`` and the ``head`` group to the root app."""
    app.command(
        "infer",
        help="Run a model over a cohort, stratum by stratum; resumable; writes predictions Parquet.",
    )(infer_command)
    app.add_typer(head_app, name="head")


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` options; VALUE is read as JSON when it parses (numbers, true, lists)."""
    options: dict[str, Any] = {}
    for key, raw in parse_mapping(pairs, option="--option").items():
        try:
            options[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = raw
    return options


def _backend_options(pairs: list[str] | None, **flags: Any) -> dict[str, Any]:
    """The backend options: ``--option KEY=VALUE`` pairs, then the backend flags that were given (by name)."""
    options = _parse_options(pairs)
    options.update({key: value for key, value in flags.items() if value is not None})
    return options


def _check_numbers(flags: dict[str, tuple[float | None, float, bool]]) -> None:
    """Refuse a numeric flag out of range before anything runs: ``{flag: (value, bound, bound allowed)}``."""
    for flag, (value, bound, allowed) in flags.items():
        if value is None:
            continue
        if not math.isfinite(value) or value < bound or (value == bound and not allowed):
            relation = "at least" if allowed else "more than"
            raise InputError(f"{flag} must be {relation} {bound:g}, not {value:g}")


def _selected_cases(cohort_dir: Path, expression: str | None) -> Any:
    """The cohort, restricted to the rows ``expression`` selects (parsed by fairderm, never evaluated as code)."""
    from fairderm.cohort import Cohort, load_cohort, parse_filter

    cohort = load_cohort(cohort_dir)
    if expression is None:
        return cohort
    try:
        mask = parse_filter(expression).mask(cohort.manifest)
    except InputError as exc:
        raise InputError(f"cannot evaluate {expression!r}: {exc.reason}", column="--filter") from None
    if not mask.any():
        raise InputError(f"{expression!r} selects no cases", column="--filter")
    return Cohort(root=cohort.root, spec=cohort.spec, manifest=cohort.manifest[mask].reset_index(drop=True))


FILTER_OPTION = typer.Option(
    None,
    "--filter",
    help="Run only the cases this filter on the manifest selects, e.g. \"split == 'test'\" (the audit "
    "spec's cohort.filter language; see docs/audit.md: filters).",
)
WAIT_OPTION = typer.Option(
    0.0, "--wait", help="Seconds to wait while another process writes the same --out (default: refuse at once)."
)
ACTOR_GPUS_OPTION = typer.Option(
    0.0, "--actor-gpus", help="--engine ray: GPUs per model actor (1: one model per GPU of the cluster)."
)


def infer_command(
    cohort: Path = typer.Argument(..., help="Cohort folder (cohort.yaml + manifest.parquet)."),
    backend: str = typer.Option("backbone", "--backend", "-b", help=BACKENDS_HELP),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model: head folder, model folder, served model name, or predictions file.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Predictions Parquet to write (shards of an unfinished "
        "run live in OUT.shards/ and are resumed).",
    ),
    endpoint: list[str] | None = typer.Option(
        None,
        "--endpoint",
        help="openai: base URL, e.g. http://127.0.0.1:8000/v1; repeat for several servers of the same model, "
        "which share the cases (docs/inference.md: many servers).",
    ),
    prompt: Path | None = typer.Option(
        None,
        "--prompt",
        help="openai/vllm: prompt template file (${labels} is replaced by the cohort's labels).",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="openai: requests in flight at once (8)."
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help="openai: seconds per request attempt, from connecting to the last byte of the answer (120).",
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", help="openai: retries after the first attempt (3)."
    ),
    architecture: str | None = typer.Option(
        None,
        "--architecture",
        help="torch: your model class, module:Class or path/file.py:Class, used instead of the "
        "registered architecture model.json names. This runs your code.",
    ),
    max_response_bytes: int | None = typer.Option(
        None,
        "--max-response-bytes",
        help="openai: largest answer accepted (1 MiB); a larger one is that case's error.",
    ),
    model_revision: str | None = typer.Option(
        None,
        "--model-revision",
        help="openai/vllm: the model's revision (e.g. a commit of its weights), recorded in its identity; "
        "a new revision never reuses predictions of another.",
    ),
    option: list[str] | None = typer.Option(
        None,
        "--option",
        help="Further backend option KEY=VALUE (repeatable; VALUE read as JSON when it parses).",
    ),
    class_map: list[str] | None = typer.Option(
        None, "--class-map", help="Map a model class onto a cohort label, CLASS=LABEL (repeatable)."
    ),
    case_filter: str | None = FILTER_OPTION,
    tone: Path | None = typer.Option(
        None, "--tone", help="Tone table (fairderm tone output): stratify by estimated Fitzpatrick group."
    ),
    strata: str | None = typer.Option(None, "--strata", help="Stratify by this manifest column instead."),
    cap_per_stratum: int | None = typer.Option(
        None, "--cap-per-stratum", help="Run at most N cases per stratum (seeded sample): a quick audit."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Cases per batch and per shard."),
    workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
    device: str | None = typer.Option(None, "--device", help="Torch device, e.g. cpu or cuda:0 (default: auto)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the per-stratum sample (recorded)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output made by a different run."),
    restart: bool = typer.Option(False, "--restart", help="Discard an unfinished run's shards instead of resuming."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Run cases whose status is error again."),
    wait: float = WAIT_OPTION,
    engine: str = ENGINE_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    actor_cpus: float = typer.Option(1.0, "--actor-cpus", help="--engine ray: CPUs per model actor."),
    actor_gpus: float = ACTOR_GPUS_OPTION,
) -> None:
    from fairderm.inference import run_inference

    _check_numbers(
        {
            "--concurrency": (concurrency, 1, True),
            "--timeout": (timeout, 0, False),
            "--max-retries": (max_retries, 0, True),
            "--max-response-bytes": (max_response_bytes, 1, True),
            "--cap-per-stratum": (cap_per_stratum, 1, True),
            "--batch-size": (batch_size, 1, True),
            "--workers": (workers, 0, True),
            "--actor-cpus": (actor_cpus, 0, True),
            "--actor-gpus": (actor_gpus, 0, True),
        }
    )
    options = _backend_options(
        option, endpoint=endpoint or None, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
        architecture=architecture, max_response_bytes=max_response_bytes, revision=model_revision, prompt=prompt,
    )
    selected = _selected_cases(cohort, case_filter)
    where = engine_from_flags(engine, ray_address, actor_cpus=actor_cpus, actor_gpus=actor_gpus)
    with progress_bar() as bar:
        result = run_inference(
            selected, out, backend=backend, model=model, options=options,
            class_map=parse_mapping(class_map, option="--class-map"), tone=tone, strata=strata,
            cap_per_stratum=cap_per_stratum, batch_size=batch_size, workers=workers, device=device, seed=seed,
            overwrite=overwrite, restart=restart, retry_errors=retry_errors, progress=_stratum_bars(bar), wait=wait,
            engine=where,
        )
    # the summary quotes server text (failure reasons): printed as it is, never read as rich markup
    console.print(result.summary(), markup=False)


def _stratum_bars(bar: Progress) -> Callable[[dict[str, Any]], None]:
    """A progress callback of :func:`fairderm.inference.run_inference`: one bar per stratum, failures in red."""
    tasks: dict[str, Any] = {}

    def show(tallies: dict[str, Any]) -> None:
        for name, tally in sorted(tallies.items()):
            if name not in tasks:
                tasks[name] = bar.add_task(f"{name}", total=tally.total)
            failed = tally.error + tally.unparseable
            label = f"{name}" + (f" [red]{failed} failed[/]" if failed else "")
            bar.update(tasks[name], completed=tally.done, description=label)

    return show


@head_app.command(
    "train", help="Train a linear or MLP head on cached backbone features of a cohort."
)
def head_train_command(
    cohort: Path = typer.Argument(..., help="Cohort folder to train on."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="New head folder (head.safetensors + head.json)."
    ),
    label: str = typer.Option("label", "--label", help="Manifest column to predict."),
    train_filter: str | None = typer.Option(
        None,
        "--train-filter",
        help="Filter on the manifest selecting rows, e.g. \"split == 'train'\" (see docs/audit.md: filters).",
    ),
    head: str = typer.Option("linear", "--head", help="Head type: linear or mlp."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the split, initialisation and batch order."
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Feature cache folder (default $FAIRDERM_CACHE or ~/.cache/fairderm).",
    ),
    workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
) -> None:
    from fairderm.inference import train_head

    if head not in ("linear", "mlp"):
        raise InputError(f"unknown head {head!r}; use linear or mlp", column="--head")
    with progress_bar() as bar:
        task = bar.add_task("backbone features", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = train_head(
            cohort,
            out,
            label=label,
            train_filter=train_filter,
            seed=seed,
            head=head,  # type: ignore[arg-type]
            cache_dir=cache_dir,
            workers=workers,
            progress=show,
        )
    console.print(result.summary())
