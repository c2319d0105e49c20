"""``fairderm score``: grade a vision-language model's reports; ``fairderm score agreement``: check the judge."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from typer.core import TyperGroup

from fairderm._io import atomic_write_json
from fairderm._terminal import printable
from fairderm.commands._common import console, progress_bar
from fairderm.errors import InputError

_REPORTS = "reports"


class _ReportsByDefault(TyperGroup):
    """``fairderm score PREDICTIONS ...`` runs ``score reports``; ``fairderm score agreement ...`` its own."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [_REPORTS, *args]
        return super().parse_args(ctx, args)


score_app = typer.Typer(
    cls=_ReportsByDefault,
    help="Score every report of a text model on a rubric (a judge model) and by deterministic checks; "
    "`score agreement` compares the judge with dermatologists' ratings.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``score`` group to the root app."""
    app.add_typer(score_app, name="score")


@score_app.command(_REPORTS, help="Score every report of a predictions table (the default of `fairderm score`).")
def reports_command(
    predictions: Path = typer.Argument(..., help="Predictions Parquet of a text model (with its report text)."),
    cohort: Path = typer.Option(..., "--cohort", "-c", help="The cohort the predictions are of."),
    out: Path = typer.Option(..., "--out", "-o", help="Scores Parquet to write (an existing one is resumed)."),
    rubric: Path | None = typer.Option(None, "--rubric", help="Rubric YAML (default: fairderm's DermEval-style)."),
    endpoint: list[str] | None = typer.Option(
        None, "--endpoint", help="Judge server's base URL (OpenAI-compatible, e.g. vllm serve); repeat for several "
        "servers of the same judge, which share the reports; none: checks only."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Judge model name (default: the first served)."),
    concurrency: int = typer.Option(8, "--concurrency", help="Judge requests in flight at once."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per judge request, connect to last byte."),
    max_retries: int = typer.Option(2, "--max-retries", help="Further attempts after a failed request."),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="Largest judge answer, in tokens."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Variable holding a bearer token."),
    json_mode: bool = typer.Option(True, "--json-mode/--no-json-mode",
                                   help="Ask the server for a JSON object (response_format)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Reports per batch (the file is rewritten after each)."),
) -> None:
    from fairderm.cohort import load_cohort
    from fairderm.inference import read_predictions
    from fairderm.reasoning import Judge, load_rubric, score_reports

    loaded = load_cohort(cohort)
    frame = read_predictions(predictions, loaded)
    chosen = load_rubric(rubric)
    if model is not None and not endpoint:
        raise InputError("--model names a judge but no --endpoint says where it is served")
    judge = None
    if endpoint:
        judge = Judge(model, chosen, endpoint=endpoint, concurrency=concurrency, timeout=timeout,
                      max_retries=max_retries, max_tokens=max_tokens, api_key_env=api_key_env, json_mode=json_mode)
    truth = dict(zip(loaded.manifest["image_id"].astype(str), loaded.manifest["label"].astype(str)))
    try:
        with progress_bar() as bar:
            task = bar.add_task("judging" if judge else "checking", total=len(frame))
            table = score_reports(frame, truth=truth, labels=loaded.spec.labels, out=out, rubric=chosen, judge=judge,
                                  batch_size=batch_size,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        if judge is not None:
            judge.close()
    console.print(escape(table.summary()))
    errors = table.errors
    for row in errors.head(10).itertuples(index=False):
        console.print(f"  {escape(printable(str(row.image_id)))}: {escape(printable(str(row.reason)))}")
    if len(errors) > 10:
        console.print(f"  ... and {len(errors) - 10} more (column 'reason' of {escape(str(out))})")
    if len(errors):
        console.print("rerun the same command to ask the judge again for these cases only")
    console.print(f"wrote {escape(str(out))}")


@score_app.command("agreement", help="Agreement of the judge with dermatologists' ratings, and among them.")
def agreement_command(
    ratings: Path = typer.Argument(..., help="Ratings CSV: image_id, rater, dimension, score (1-5)."),
    scores: Path | None = typer.Option(None, "--scores", help="The judge's scores Parquet (`fairderm score`)."),
    rubric: Path | None = typer.Option(
        None, "--rubric", help="Rubric YAML the ratings use (default: the scores' rubric, else fairderm's)."
    ),
    cohort: Path | None = typer.Option(None, "--cohort", "-c", help="Cohort whose manifest gives the groups."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Manifest column of the tone groups (default: fitzpatrick_group when present)."
    ),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap replicates over cases."),
    confidence: float = typer.Option(0.95, "--confidence", help="Two-sided coverage of each interval."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the figures as JSON here."),
) -> None:
    from fairderm.reasoning import agreement, load_rubric, read_ratings, read_scores

    table = read_scores(scores) if scores is not None else None
    chosen = load_rubric(rubric) if rubric is not None else (table.rubric if table is not None else load_rubric())
    frame = read_ratings(ratings, dimensions=chosen.names)
    groups = None
    column = group_by
    if cohort is not None:
        from fairderm.cohort import load_cohort

        manifest = load_cohort(cohort).manifest
        column = column or ("fitzpatrick_group" if "fitzpatrick_group" in manifest.columns else None)
        if column is not None:
            if column not in manifest.columns:
                raise InputError(f"the manifest has no column {column!r}", column="--group-by")
            groups = {str(i): str(v) for i, v in zip(manifest["image_id"], manifest[column]) if not pd.isna(v)}
    elif group_by is not None:
        raise InputError("--group-by needs --cohort (the manifest holds the groups)")
    result = agreement(frame, scores=table, groups=groups, group_name=column or "group", n_boot=n_boot,
                       confidence=confidence, seed=seed)
    console.print(escape(printable(result.summary())))
    if out is not None:
        atomic_write_json(out, result.to_dict())
        console.print(f"wrote {escape(str(out))}")
