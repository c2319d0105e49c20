"""``fairderm tone label`` and ``fairderm tone learn``: validation labels and a stratifier learned from them.

``tone label`` draws a stratified sample of a cohort's images (or takes the
labels a manifest column already holds) into a labels CSV and serves the
labelling page (``fairderm/dashboard/labelling.py``, Streamlit on 127.0.0.1). ``tone
learn`` fits a stratifier on the bundled backbone's features and the colour
measurements and writes a model folder with a tone table for every image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from fairderm.commands._common import console, parameters_as_flags, progress_bar, run_streamlit
from fairderm.errors import InputError
from fairderm.runs import TONE_FILE

_SCALE_HELP = "Tone scale of the labels: fitzpatrick (I-VI), fitzpatrick_group (I-II / III-IV / V-VI) or monk (1-10)."


def labelling_app_path() -> Path:
    """Path of the labelling page's Streamlit script (``fairderm/dashboard/labelling.py``)."""
    from fairderm.dashboard import LABELLING_APP

    return LABELLING_APP


def labelling_argv(app: Path, cohort_dir: Path, labels: Path, *, labeller: str, port: int) -> list[str]:
    """The ``streamlit run`` command line serving the labelling page on 127.0.0.1."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--", str(cohort_dir), str(labels), "--labeller", labeller,
    ]


def register_label_commands(tone_app: typer.Typer) -> None:
    """Add ``label`` and ``learn`` to the ``fairderm tone`` group."""
    tone_app.command("label", help="Draw a stratified sample to label (or take a manifest column's labels) "
                                   "and serve the labelling page.")(label_command)
    tone_app.command("learn", help="Learn a tone stratifier from labels (backbone features + colour), "
                                   "nested cross-validated against the colour estimate.")(learn_command)


def label_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder."),
    tone: Path = typer.Option(
        ..., "--tone", help="Tone table from 'fairderm tone estimate' (its groups are the strata)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Labels CSV (resumed when it exists; its draw goes to the .json beside)."
    ),
    n: int = typer.Option(150, "--n", min=1, help="Images to draw."),
    scale: str = typer.Option("fitzpatrick", "--scale", help=_SCALE_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw."),
    labeller: str = typer.Option("labeller", "--labeller", help="Your id, written beside every answer."),
    port: int = typer.Option(8502, "--port", min=1, max=65535, help="Port of the page on 127.0.0.1."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Write the labels file and stop (no page)."),
    from_column: str | None = typer.Option(
        None, "--from-column",
        help="Take the labels a manifest column (fitzpatrick, fitzpatrick_group, monk) holds for part of the rows "
             "instead of drawing a sample; inclusion probabilities are then estimated per estimated group.",
    ),
) -> None:
    from fairderm.cohort import load_cohort
    from fairderm.tone import labels_from_column, new_label_sample, read_tone, read_tone_labels, write_labels

    cohort = load_cohort(cohort_dir)
    frame = read_tone(tone, cohort)
    if from_column is not None:
        if out.exists():
            raise InputError("labels file exists; choose a new --out for labels taken from a column", source=str(out))
        with parameters_as_flags(column="--from-column", scale="--scale"):
            labels = labels_from_column(cohort, frame, from_column, scale)
        write_labels(out, labels)
        console.print(f"[green]wrote[/] {out}: {len(labels.frame)} labels from column '{from_column}' "
                      f"({labels.draw['design']})")
        return
    if out.exists():
        labels = read_tone_labels(out, cohort, scale)
        console.print(f"resuming {out}: {int(labels.answered().sum())} of {len(labels.frame)} images answered "
                      "(--n and --seed apply to a new file only)")
    else:
        labels = new_label_sample(cohort, frame, tone_path=tone, scale=scale, n=n, seed=seed)
        write_labels(out, labels)
        strata = ", ".join(f"{s} {v['n']}/{v['N']}" for s, v in labels.draw["strata"].items())
        console.print(f"[green]wrote[/] {out}: {len(labels.frame)} images to label ({strata})")
    if no_serve:
        return
    argv = labelling_argv(labelling_app_path(), cohort_dir.resolve(), out.resolve(), labeller=labeller, port=port)
    console.print(f"labelling page on http://127.0.0.1:{port}; Ctrl-C stops it (every answer is already saved)")
    run_streamlit(argv, what="fairderm tone label")


def learn_command(
    cohort_dir: Path = typer.Argument(..., metavar="COHORT", help="Cohort folder."),
    labels_path: Path = typer.Option(..., "--labels", help="Labels CSV from 'fairderm tone label'."),
    out: Path = typer.Option(..., "--out", help="New model folder (model.npz, model.json, tone.parquet)."),
    tone: Path | None = typer.Option(
        None, "--tone", help="Colour tone table of the cohort (default: estimated now with the default settings)."
    ),
    scale: str | None = typer.Option(None, "--scale", help="Scale of the labels when the CSV has no .json beside it."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the bootstrap."),
    feature_cache: Path | None = typer.Option(None, "--feature-cache", help="Backbone feature cache folder."),
) -> None:
    from fairderm._io import atomic_output_dir, atomic_write_text, sha256_file
    from fairderm.cohort import load_cohort
    from fairderm.inference import extract_features
    from fairderm.tone import (
        align_to_cohort,
        estimate_tone,
        fit_tone_model,
        learned_tone_frame,
        read_tone,
        read_tone_labels,
        write_tone,
    )

    cohort = load_cohort(cohort_dir)
    labels = read_tone_labels(labels_path, cohort, scale)
    if tone is not None:
        colour = align_to_cohort(read_tone(tone, cohort), cohort)
    else:
        with progress_bar() as bar:
            task = bar.add_task("measuring skin tone", total=len(cohort))
            colour = estimate_tone(cohort, progress=lambda done, total: bar.update(task, completed=done))
    with progress_bar() as bar:
        task = bar.add_task("backbone features", total=len(cohort))
        features = extract_features(cohort, cache_dir=feature_cache,
                                    progress=lambda done, total: bar.update(task, completed=done))
    with console.status("nested cross-validation"):
        model, report = fit_tone_model(features.features, colour, labels, seed=seed)
    model.info = {
        "report": report.to_dict(), "preferred": report.preferred, "decision": report.decision(),
        "backbone": features.backbone,
        "labels": {"path": str(labels_path), "sha256": sha256_file(labels_path), "draw": labels.draw},
        "tone": {"path": None if tone is None else str(tone), "sha256": None if tone is None else sha256_file(tone),
                 "method": str(colour["method"].iloc[0]) if len(colour) else None},
        "cohort": {"name": cohort.spec.name, "manifest_sha256": cohort.manifest_sha256()},
    }
    learned = learned_tone_frame(model, features.features, colour, preferred=report.preferred,
                                 backbone_errors=features.errors, out_of_fold=report.out_of_fold)
    with atomic_output_dir(out) as folder:
        model.save(folder)
        write_tone(folder / TONE_FILE, learned, cohort)
        atomic_write_text(folder / "report.json", report.to_json())
    table = Table(title=f"tone vs labels ({report.scale}), {report.n_labelled} labelled images: "
                        f"learned out of fold ({report.config['outer_folds']}-fold nested CV) and colour")
    for column in ("metric", "learned", "colour"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in report.to_frame().itertuples(index=False):
        table.add_row(row.metric, *("-" if np.isnan(v) else f"{v:.3f}" for v in (row.learned, row.colour)))
    console.print(table)
    d = report.difference
    console.print(f"difference in exact agreement {d['estimate']:+.3f} [95% CI {d['ci_low']:+.3f}, "
                  f"{d['ci_high']:+.3f}]; C = {model.c:g}")
    console.print(("[green]" if report.preferred else "[yellow]") + report.decision() + "[/]")
    console.print(f"[green]wrote[/] {out}/ (model.npz, model.json, report.json, tone.parquet"
                  f"{'' if report.preferred else ', marked not preferred'})")
