"""``fairderm router train``: the fairness-aware mixture-of-experts router and its baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from fairderm.commands._common import console, parse_float_list, progress_bar
from fairderm.errors import InputError

router_app = typer.Typer(
    help="Fairness-aware mixture-of-experts router on the frozen backbone, trained with parity constraints.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``router`` group to the root app."""
    app.add_typer(router_app, name="router")


def _comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    return values or None


@router_app.command("train")
def train_command(
    cohort: Path = typer.Argument(..., help="Cohort folder (cohort.yaml + manifest.parquet)."),
    tone: Path | None = typer.Option(
        None, "--tone", help="Tone table of the cohort (fairderm tone estimate): the router's tone input and the "
        "default groups (estimated Fitzpatrick group)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New router folder (weights, config, log, evaluation)."),
    backbone: str = typer.Option(
        "efficientnet-lite0", "--backbone", help="efficientnet-lite0 (bundled), or the folder of a local "
        "transformers vision model (with --experts lora; never downloaded, no remote code)."
    ),
    experts: str = typer.Option(
        "frozen", "--experts", help="frozen: bottleneck experts on cached frozen features; lora: K LoRA adapters "
        "(peft) on the backbone's last layers, trained end to end (needs fairderm[torch])."
    ),
    constraint: str = typer.Option(
        "loss", "--constraint", help="loss: group error parity (Lagrangian); eo: equalized odds (Lagrangian); "
        "dro: group DRO instead of constraints."
    ),
    epsilon: float = typer.Option(
        0.02, "--epsilon", help="Constraint slack in rate units: a group's error may exceed the overall error by this."
    ),
    group_column: str | None = typer.Option(
        None, "--group-column", help="Manifest column with the groups (default: estimated tone group from --tone)."
    ),
    groups: str | None = typer.Option(
        None, "--groups", help="Comma-separated groups to constrain (e.g. I-II,III-IV); cases in other groups or "
        "without one stay in training and in overall accuracy."
    ),
    label: str = typer.Option("label", "--label", help="Manifest column with the diagnoses."),
    positive_classes: str | None = typer.Option(
        None, "--positive-classes", help="Comma-separated labels: train the binary task these-vs-rest."
    ),
    binary: bool = typer.Option(
        False, "--binary", help="Binary task with the cohort's positive classes (cohort.yaml)."
    ),
    n_experts: int | None = typer.Option(
        None, "--n-experts", help="Number of experts K (default 8 frozen, 4 LoRA; LoRA needs at least 2)."
    ),
    lora_rank: int = typer.Option(8, "--lora-rank", help="Rank r of each LoRA adapter (at least 1)."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="LoRA experts: input size in pixels (default: the backbone's own)."
    ),
    top_k: int = typer.Option(2, "--top-k", help="Experts each case is routed to."),
    no_tone_input: bool = typer.Option(
        False, "--no-tone-input", help="Route on the image features alone (no tone probabilities)."
    ),
    views: int = typer.Option(
        7, "--views", help="Most turned or mirrored views (0-7) added per training case of an under-represented "
        "tone group when training the constrained router: a group n times smaller than the largest gets n - 1, "
        "capped here; 0 turns them off."
    ),
    sweep: str | None = typer.Option(
        None, "--sweep", help="Comma-separated epsilons for the accuracy-versus-gap frontier, e.g. 0,0.01,0.02,0.05."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split (when generated), training and bootstrap."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap replicates of the evaluation."),
    min_group_size: int = typer.Option(
        20, "--min-group-size", help="Groups with fewer held-out cases are flagged insufficient and left out of "
        "the gap (listed as unranked in evaluation.json and the verdict)."
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Feature cache root (default ~/.cache/fairderm)."),
    max_epochs: int | None = typer.Option(
        None, "--max-epochs", help="Upper bound on training epochs per model (default 200 frozen, 20 LoRA)."
    ),
    no_warm_start: bool = typer.Option(
        False, "--no-warm-start", help="Start the routers from random heads instead of the trained ERM head."
    ),
) -> None:
    """Train the parity-constrained router and the baselines; evaluate them on the held-out split."""
    from fairderm._extras import import_optional
    from fairderm.cohort import load_cohort

    train_router = import_optional("fairderm.moe", "fairderm router train").train_router
    import_optional("fairlearn", "fairderm router train (its fairlearn baselines)")

    loaded = load_cohort(cohort)
    positives = _comma_list(positive_classes)
    if binary and positives is None:
        if not loaded.spec.positive_classes:
            raise InputError("--binary needs positive_classes in cohort.yaml or --positive-classes", column="--binary")
        positives = list(loaded.spec.positive_classes)
    with progress_bar(transient=True) as bar:
        task = bar.add_task("router", total=None)

        def stage(name: str) -> None:
            bar.update(task, description=name, total=None, completed=0)

        def features(done: int, total: int) -> None:
            bar.update(task, total=total, completed=done)  # the stage named which features

        run = train_router(
            loaded, out, tone=tone, backbone=backbone, experts=experts, constraint=constraint, epsilon=epsilon,
            group_column=group_column, groups=_comma_list(groups), label=label, positive_classes=positives,
            n_experts=n_experts, top_k=top_k, tone_input=not no_tone_input, views=views,
            sweep=parse_float_list(sweep, option="--sweep"), seed=seed, n_boot=n_boot,
            min_group_size=min_group_size, cache_dir=cache_dir,
            train_config={
                **({"max_epochs": max_epochs} if max_epochs is not None else {}), "warm_start": not no_warm_start,
                "lora_rank": lora_rank, **({"image_size": image_size} if image_size is not None else {}),
            },
            stage=stage, feature_progress=features,
        )
    console.print(run.summary())
    console.print(f"wrote {out}")
