"""``fairderm tone``: estimate skin tone, validate it against labels, calibrate cut-points."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fairderm.commands._common import (
    ENGINE_OPTION,
    RAY_ADDRESS_OPTION,
    check_output_file,
    console,
    engine_from_flags,
    parameters_as_flags,
    progress_bar,
)
from fairderm.commands.tone_labels import register_label_commands

tone_app = typer.Typer(
    help="Skin tone from healthy skin: estimate (ITA, Fitzpatrick, Monk), validate against labels, calibrate.",
    no_args_is_help=True,
)

_LABEL_HELP = "Manifest column with the reference tone: fitzpatrick, fitzpatrick_group or monk."


def register(app: typer.Typer) -> None:
    """Add the ``tone`` group to the root app."""
    app.add_typer(tone_app, name="tone")


@tone_app.command("estimate", help="Estimate every image's skin tone and write TONE.parquet.")
def estimate_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder."),
    out: Path = typer.Option(..., "--out", help="Output tone table (.parquet)."),
    calibration: Path | None = typer.Option(
        None, "--calibration", help="Calibration JSON from 'fairderm tone calibrate' (replaces published cut-points)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes (default: one per usable core); with --engine ray, a Ray instance "
        "started here gets this many CPUs."
    ),
    engine: str = ENGINE_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    method: str = typer.Option(
        "fairderm", "--method",
        help="fairderm (healthy-skin ITA) or stone (skin-tone-classifier, lesion masked; needs fairderm[stone]).",
    ),
    fitzpatrick_scheme: str = typer.Option(
        "groh", "--fitzpatrick-scheme", help="Published ITA cut-points for Fitzpatrick types: groh or kinyanjui."
    ),
    constancy: str = typer.Option(
        "auto", "--constancy",
        help="Colour constancy: auto (white reference and skin prior), white, skin-prior, shades-of-grey, "
        "grey-edge or none.",
    ),
    lesion_masks: bool = typer.Option(
        False, "--lesion-masks",
        help="Use the cohort's lesion masks (manifest column 'mask') instead of segmenting the lesion; "
        "images without a mask are segmented.",
    ),
    exposure_sd: float = typer.Option(
        0.45, "--exposure-sd", min=0.0, max=2.0,
        help="Prior SD, in stops, of the photographs' exposure error, carried into ita_low/ita_high "
        "(0.45: the spread between smartphone photographs of the same lesion; less for standardised "
        "photography).",
    ),
    white_reflectance: float = typer.Option(
        0.85, "--white-reflectance", min=0.05, max=1.0,
        help="Luminance factor of the white references (rulers, paper) in the photographs: a white reference "
        "found sets the exposure so that it reads this (0.85: office paper, white plastic rulers).",
    ),
) -> None:
    from fairderm.cohort import load_cohort
    from fairderm.tone import (
        REPEATABILITY_IS_NOT_ACCURACY,
        ToneParameters,
        estimate_tone,
        load_calibration,
        measurement_repeatability,
        write_tone,
    )

    check_output_file(out, option="--out")
    where = engine_from_flags(engine, ray_address)
    parameters = ToneParameters(constancy=constancy, exposure_sd=exposure_sd, white_reflectance=white_reflectance)
    cohort = load_cohort(cohort_dir)
    fitted = load_calibration(calibration) if calibration is not None else None
    with progress_bar() as bar, parameters_as_flags(method="--method", workers="--workers",
                                                    lesion_masks="--lesion-masks"):
        task = bar.add_task("measuring skin tone", total=len(cohort))
        frame = estimate_tone(
            cohort, calibration=fitted, workers=workers, method=method,
            parameters=parameters, fitzpatrick_scheme=fitzpatrick_scheme, lesion_masks=lesion_masks,
            progress=lambda done, total: bar.update(task, completed=done), engine=where,
            # on Ray, each finished block is kept beside the output: a killed run resumes from them
            checkpoint=out.with_name(out.name + ".blocks") if where.is_ray else None,
        )
    write_tone(out, frame, cohort)
    counts = frame["status"].value_counts()
    console.print(
        f"[green]wrote[/] {out}: {counts.get('ok', 0)} ok, {counts.get('abstain', 0)} abstained, "
        f"{counts.get('error', 0)} errors of {len(frame)} images ({frame['method'].iloc[0] if len(frame) else method})"
    )
    reasons = frame.loc[frame["status"] != "ok", "reason"].str.replace(r"\(.*", "", regex=True).str.strip()
    for reason, count in reasons.value_counts().head(5).items():
        console.print(f"  {count:>5} x {reason}")
    strata = measurement_repeatability(frame)
    if strata["n"]:
        console.print(
            f"measurement repeatability: the ITA of {100 * strata['repeatability']:.0f}% of the {strata['n']} "
            "measured images stays in its I-II / III-IV / V-VI group when varied within its interval "
            "(skin variation, colour cast, exposure; no labels used)"
        )
        console.print(f"  {REPEATABILITY_IS_NOT_ACCURACY}; 'fairderm tone validate' measures agreement with labels")


@tone_app.command("validate", help="Agreement of a tone table with tone labels, with bootstrap intervals.")
def validate_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder with tone labels."),
    tone: Path = typer.Option(..., "--tone", help="Tone table from 'fairderm tone estimate'."),
    label: str = typer.Option(..., "--label", help=_LABEL_HELP),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
    n_boot: int = typer.Option(2000, "--n-boot", min=100, max=1_000_000, help="Bootstrap replicates."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    from fairderm._io import atomic_write_text
    from fairderm.cohort import load_cohort
    from fairderm.tone import REPEATABILITY_IS_NOT_ACCURACY, read_tone, validate_tone

    if json_out is not None:
        check_output_file(json_out, option="--json")
    cohort = load_cohort(cohort_dir)
    frame = read_tone(tone, cohort)
    with console.status("bootstrapping"), parameters_as_flags(label="--label", n_boot="--n-boot"):
        report = validate_tone(cohort, frame, label, n_boot=n_boot, seed=seed)
    table = Table(title=f"tone vs {label}: {report.n_evaluated} of {report.n_labelled} labelled images evaluated "
                        f"(95% bootstrap CI, resampling {report.config['cluster'] or 'images'})")
    for column in ("metric", "group", "estimate", "95% CI", "n"):
        table.add_column(column, justify="right" if column in ("estimate", "n") else "left")
    for row in report.to_frame().itertuples(index=False):
        interval = f"{row.ci_low:.3f} - {row.ci_high:.3f}" if row.ci_low == row.ci_low else "-"
        estimate = f"{row.estimate:.3f}" if row.estimate == row.estimate else "-"
        table.add_row(row.metric, row.group, estimate, interval, str(row.n))
    console.print(table)
    if "measurement_repeatability" in report.metrics:
        console.print(f"measurement_repeatability is label-free; {REPEATABILITY_IS_NOT_ACCURACY}")
    confusion = report.confusion_frame()
    matrix = Table(title=f"confusion: rows {label}, columns estimated")
    matrix.add_column(label)
    for column in confusion.columns:
        matrix.add_column(str(column), justify="right")
    for name, values in confusion.iterrows():
        matrix.add_row(str(name), *(str(v) for v in values))
    console.print(matrix)
    if json_out is not None:
        atomic_write_text(json_out, report.to_json())
        console.print(f"[green]wrote[/] {json_out}")


@tone_app.command(
    "calibrate",
    help="Fit ITA cut-points to a cohort's tone labels and write them as JSON, if they beat the published ones "
    "out of fold.",
)
def calibrate_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder with tone labels."),
    tone: Path = typer.Option(..., "--tone", help="Tone table from 'fairderm tone estimate'."),
    label: str = typer.Option(..., "--label", help=_LABEL_HELP),
    out: Path = typer.Option(..., "--out", help="Calibration JSON to write."),
    folds: int = typer.Option(
        5, "--folds", min=2, help="Cross-validation folds (of whole patients when the manifest has patient_id)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
) -> None:
    from fairderm.cohort import load_cohort
    from fairderm.errors import InputError
    from fairderm.tone import LABEL_COLUMNS, align_to_cohort, fit_calibration, published_categories, read_tone

    if label not in LABEL_COLUMNS:
        raise InputError(f"label must be one of {list(LABEL_COLUMNS)}, got {label!r}", column="--label")
    check_output_file(out, option="--out")
    cohort = load_cohort(cohort_dir)
    if label not in cohort.manifest.columns:
        raise InputError(f"the cohort has no '{label}' column", source=str(cohort_dir), column=label)
    frame = align_to_cohort(read_tone(tone, cohort), cohort)
    ita = frame["ita"].where(frame["status"] == "ok")
    manifest = cohort.manifest.reset_index(drop=True)
    grouped = "patient_id" in manifest.columns and manifest["patient_id"].notna().any()
    with parameters_as_flags(scale="--label", n_folds="--folds"):
        published, published_name = published_categories(frame, label)
        calibration = fit_calibration(
            ita.to_numpy(), manifest[label], label,
            published=published, published_name=published_name,
            groups=manifest["patient_id"] if grouped else None, grouped_by="patient_id" if grouped else None,
            n_folds=folds, seed=seed,
            source={
                "cohort": cohort.spec.name, "manifest_sha256": cohort.manifest_sha256(), "label": label,
                "tone_method": str(frame["method"].iloc[0]) if len(frame) else None,
            },
        )
    calibration.save(out)
    console.print(calibration.summary())
    console.print(f"[green]wrote[/] {out} (sha256 {calibration.sha256[:12]})")


register_label_commands(tone_app)
