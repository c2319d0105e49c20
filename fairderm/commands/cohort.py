"""``fairderm cohort``: import, generate, validate and describe cohorts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fairderm._io import atomic_write_json
from fairderm.commands._common import console, parameters_as_flags, parse_float_list, parse_mapping, progress_bar
from fairderm.errors import InputError

cohort_app = typer.Typer(
    help="Import, generate, validate and describe cohorts (cohort.yaml + manifest.parquet).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``cohort`` group to the root app."""
    app.add_typer(cohort_app, name="cohort")


def _format_help() -> str:
    from fairderm.cohort import FORMATS

    return "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values())


@cohort_app.command("import", help="Import a dataset's metadata as a new cohort (images are used in place).")
def import_command(
    format: str = typer.Option(..., "--format", "-f", help="Metadata format: " + _format_help()),
    metadata: Path = typer.Option(..., "--metadata", help="The dataset's metadata file (CSV, TSV or Parquet)."),
    images: Path = typer.Option(..., "--images", help="Folder holding the images (sub-folders are searched)."),
    out: Path = typer.Option(..., "--out", help="New cohort folder (must not exist or be empty)."),
    name: str | None = typer.Option(None, "--name", help="Cohort name (default: the --out folder's name)."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Source column to use as label (fitzpatrick17k, isic, csv)."
    ),
    positive_classes: str | None = typer.Option(
        None, "--positive-classes", help="Comma-separated labels forming the positive class of a binary task."
    ),
    column_map: list[str] | None = typer.Option(
        None, "--map", help="For --format csv: rename a column, OLD=NEW (repeatable)."
    ),
) -> None:
    from fairderm.cohort import describe_cohort, import_cohort

    positives = [p.strip() for p in positive_classes.split(",") if p.strip()] if positive_classes else None
    flags = parameters_as_flags(format="--format", positive_classes="--positive-classes")
    with flags, console.status(f"checking {metadata} and its images"):
        cohort = import_cohort(
            format, metadata, images, out, name=name, label_column=label_column,
            positive_classes=positives, column_map=parse_mapping(column_map, option="--map"),
        )
    description = describe_cohort(cohort, read_image_sizes=False)
    console.print(f"[green]imported[/] {description.n_images} images into {out} "
                  f"({len(cohort.spec.labels)} labels; images used in place at {cohort.images_root})")
    for note in cohort.spec.notes:
        console.print(f"note: {note}")


@cohort_app.command("synth", help="Generate a synthetic cohort (skin types I-VI with known true skin colour).")
def synth_command(
    out: Path = typer.Option(..., "--out", help="New cohort folder (must not exist or be empty)."),
    n: int = typer.Option(600, "--n", help="Number of images."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same cohort."),
    tone_weights: str | None = typer.Option(
        None, "--tone-weights", help="Relative weights of Fitzpatrick I-VI, e.g. 0.3,0.3,0.15,0.15,0.05,0.05."
    ),
    eval_tone_weights: str | None = typer.Option(
        None, "--eval-tone-weights", help="Weights of Fitzpatrick I-VI for the val and test splits (20% of "
        "the images each), e.g. 1,1,1,1,1,1: imbalanced training data with tone-balanced evaluation sets."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: one per core)."),
) -> None:
    from fairderm.cohort import synthesize_cohort

    weights = parse_float_list(tone_weights, option="--tone-weights", length=6)
    eval_weights = parse_float_list(eval_tone_weights, option="--eval-tone-weights", length=6)
    with progress_bar() as bar:
        task = bar.add_task("synthesising", total=n)
        cohort = synthesize_cohort(
            out, n=n, seed=seed, tone_weights=weights, eval_tone_weights=eval_weights, workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    counts = cohort.manifest["fitzpatrick"].value_counts().sort_index()
    console.print(f"[green]made[/] {len(cohort)} synthetic images in {out}: "
                  + ", ".join(f"type {int(k)}: {int(v)}" for k, v in counts.items()))


@cohort_app.command("validate", help="Check a cohort: schema, and every image inside images_root and decodable.")
def validate_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder."),
) -> None:
    from fairderm.cohort import load_cohort

    with console.status(f"checking {cohort_dir}"):
        cohort = load_cohort(cohort_dir, check_files=True)
    console.print(f"[green]valid[/]: {cohort.spec.name}, {len(cohort)} images, labels {cohort.spec.labels}")


@cohort_app.command("describe", help="Counts by label x tone attribute, missingness, patients and image sizes.")
def describe_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the description as JSON here."),
) -> None:
    from fairderm.cohort import describe_cohort, load_cohort

    description = describe_cohort(load_cohort(cohort_dir))
    header = f"[bold]{description.name}[/]: {description.n_images} images"
    if description.synthetic:
        header += " [yellow](synthetic)[/]"
    console.print(header)
    labels = Table(title="Images per label")
    labels.add_column("label")
    labels.add_column("images", justify="right")
    for label, count in description.label_counts.items():
        labels.add_row(label, str(count))
    console.print(labels)
    for attribute, table in description.tone_counts.items():
        grid = Table(title=f"label x {attribute}")
        grid.add_column("label")
        for value in table.columns:
            grid.add_column(str(value), justify="right")
        grid.add_column("total", justify="right")
        for label, row in table.iterrows():
            grid.add_row(str(label), *(str(int(v)) for v in row), str(int(row.sum())))
        totals = description.tone_totals(attribute)
        grid.add_row("[bold]total", *(f"[bold]{totals[str(v)]}" for v in table.columns),
                     f"[bold]{sum(totals.values())}")
        console.print(grid)
    missing = Table(title="Missing values per column")
    missing.add_column("column")
    missing.add_column("missing", justify="right")
    for column, fraction in description.missingness.items():
        if not column.startswith("_"):
            missing.add_row(column, f"{fraction:.1%}")
    console.print(missing)
    if description.patients:
        p = description.patients
        per = p["images_per_patient"]
        console.print(f"Patients: {p['n_patients']} (images per patient: min {per['min']}, "
                      f"median {per['median']:g}, max {per['max']}; "
                      f"{p['patients_with_several_images']} with several images)")
    if description.image_sizes:
        w, h = description.image_sizes["width"], description.image_sizes["height"]
        console.print(f"Image sizes: width {w['min']}-{w['max']} (median {w['median']:g}), "
                      f"height {h['min']}-{h['max']} (median {h['median']:g})")
    for note in description.notes:
        console.print(f"note: {note}")
    if json_out is not None:
        if json_out.exists() and json_out.is_dir():
            raise InputError("--json must be a file path, not a folder", source=str(json_out))
        atomic_write_json(json_out, description.to_dict())
        console.print(f"wrote {json_out}")
