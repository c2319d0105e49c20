"""``fairderm demo``: the whole pipeline on a synthetic cohort, explained as it ends."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fairderm.audit.demo import DEMO_N
from fairderm.commands._common import console, parameters_as_flags, progress_bar, verdict_rules

if TYPE_CHECKING:
    from fairderm.metrics import DisparityRow, EvaluationResult, GroupKey, GroupRow

_VERDICT_STYLE = {
    "PASS": "bold green", "FAIL": "bold red", "INSUFFICIENT_EVIDENCE": "bold yellow", "ERROR": "bold magenta",
}
_MEANING = {
    "PASS": "every rule of the policy is met with 95% confidence",
    "FAIL": "a rule is broken: a whole 95% interval lies on the wrong side of a threshold",
    "INSUFFICIENT_EVIDENCE": "the data cannot settle a rule: an interval straddles a threshold, or a "
    "required group is too small",
    "ERROR": "a rule could not be evaluated",
}


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command(
        "demo",
        help="Run the whole pipeline on a synthetic, tone-imbalanced cohort: estimate skin tone, train a "
        "classifier and the parity-constrained router on the bundled backbone, audit and gate both, write "
        "both model cards; then explain the results. Offline; a few minutes on 2 CPU cores.",
    )(demo_command)


def _fmt(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _interval(row: GroupRow | DisparityRow | Mapping[str, Any] | None) -> str:
    """``estimate [low, high]`` of a metrics row, or of a router evaluation's interval record."""
    if row is None:
        return "–"
    if isinstance(row, Mapping):
        return f"{_fmt(row.get('estimate'))} [{_fmt(row.get('ci_low'))}, {_fmt(row.get('ci_high'))}]"
    return f"{_fmt(row.estimate)} [{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"


def _row(result: EvaluationResult, metric: str, group: GroupKey | dict[str, str]) -> GroupRow | None:
    try:
        return result.interval(metric, group)
    except KeyError:
        return None


def _gap(result: EvaluationResult, attribute: str) -> DisparityRow | None:
    return next(iter(result.gap("accuracy", attribute)), None)


def _tone_table(metrics: dict[str, EvaluationResult]) -> Table:
    runs = list(metrics)
    table = Table(title="By estimated skin tone (test split; estimate [95% interval], n)", title_justify="left")
    table.add_column("group")
    for name in runs:
        for metric in ("accuracy", "sensitivity"):
            table.add_column(f"{name} {metric}")
    groups = sorted({row.key for result in metrics.values() for row in result.by_group(attribute="fitzpatrick_est")},
                    key=str)
    for group in groups:
        cells = []
        for name in runs:
            for metric in ("accuracy", "sensitivity"):
                row = _row(metrics[name], metric, group)
                flag = " (too few)" if row and row.flag != "ok" else ""
                cells.append(Text(f"{_interval(row)} n={row.n if row else 0}{flag}"))
        table.add_row(Text(group.label), *cells)
    gaps = []
    for name in runs:
        gaps += [Text(f"gap {_interval(_gap(metrics[name], 'fitzpatrick_est'))}"), Text("")]
    table.add_row(Text("max-min", style="bold"), *gaps)
    return table


def _trust_table(metrics: dict[str, EvaluationResult]) -> Table:
    """Accuracy by estimated group at face value beside accuracy by true group, corrected with the labels."""
    runs = list(metrics)
    table = Table(title="Accuracy by tone: estimated groups at face value, and true groups corrected with 150 "
                  "labelled images", title_justify="left")
    table.add_column("group")
    for name in runs:
        table.add_column(f"{name} estimated")
        table.add_column(f"{name} true (corrected)")
    for value in ("I-II", "III-IV", "V-VI"):
        cells = []
        for name in runs:
            for attribute in ("fitzpatrick_est", "fitzpatrick_est:true"):
                cells.append(Text(_interval(_row(metrics[name], "accuracy", {attribute: value}))))
        table.add_row(Text(value), *cells)
    gaps = []
    for name in runs:
        for attribute in ("fitzpatrick_est", "fitzpatrick_est:true"):
            gaps.append(Text(f"gap {_interval(_gap(metrics[name], attribute))}"))
    table.add_row(Text("max-min", style="bold"), *gaps)
    return table


def _trust_text(metrics: dict[str, EvaluationResult]) -> str:
    strata = next(iter(metrics.values())).config.get("strata") or {}
    agreement = strata.get("agreement")
    measured = f"agreed with {agreement:.0%} of them" if agreement is not None else "was checked against them"
    return ("Estimated tone puts some images in the wrong group, which blurs the groups and shrinks a real gap. "
            f"{strata.get('n_labelled', 'Some')} test images with known tone (the generator's truth, standing in "
            f"for a dermatologist's labels) correct the figures to the true groups, with intervals that carry the "
            f"estimate's errors and the labels' number; the gate decides on the corrected figures. Here the "
            f"estimate {measured}, so little moves; on clinical photographs colour estimates agree with "
            "dermatologists for about half of the images (Groh et al. 2022), and the correction matters "
            "(docs/metrics.md).")


def _print_gate_panel(runs: dict[str, Any]) -> None:
    """Each run's verdict, what it means and the rules behind it, wrapped on words at any width."""
    from fairderm.runs import GATE_FILE, read_json_file

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for name, run in runs.items():
        verdict = run.verdict or ""
        why = _MEANING.get(verdict, "")
        if run.verdict is not None:
            gate = read_json_file(run.run_dir / GATE_FILE, what=GATE_FILE)
            rules = verdict_rules(verdict, [r for r in gate.get("rules", []) if isinstance(r, dict)])
            why += f" ({rules})" if rules else ""
        grid.add_row(Text(name, style="bold"), Text(run.verdict or "not gated", style=_VERDICT_STYLE.get(verdict, "")),
                     Text(why))
    # The CLI's console prints with soft_wrap, which would crop the panel's lines at the terminal's edge.
    console.print(Panel(grid, title="release gate (audits/policy.yaml)", expand=False), soft_wrap=False)


def demo_command(
    out: Path = typer.Option(
        Path("demo-output"), "--out",
        help="Demo folder: created, or replaced when it holds an earlier demo; any other non-empty folder is "
        "refused.",
    ),
    n: int = typer.Option(DEMO_N, "--n", help="Images in the synthetic cohort (fewer: faster, but groups too small "
                          "for a verdict)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort, the training and the bootstrap."),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap replicates of the audits."),
    policy: Path | None = typer.Option(
        None, "--policy", help="Release policy for both audits (default: audits/policy.example.yaml)."
    ),
) -> None:
    from fairderm.audit.demo import run_demo
    from fairderm.runs import RunFolder

    with parameters_as_flags(n="--n", n_boot="--n-boot"), progress_bar(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = run_demo(out, n=n, seed=seed, n_boot=n_boot, policy=policy, progress=progress,
                          log=bar.console.print)

    metrics = {name: RunFolder(run.run_dir).metrics() for name, run in result.runs.items()}
    console.print(_tone_table(metrics))
    console.print(_trust_table(metrics))
    console.print(_trust_text(metrics))
    _print_gate_panel(result.runs)
    router_methods = result.router_evaluation.get("methods", {})
    if "moe_parity" in router_methods:
        change = router_methods["moe_parity"].get("gap_diff_vs_erm", {})
        console.print(f"router training split, paired: gap change vs ERM {_interval(change)} "
                      "(negative = the router narrows the gap)")
    where = Table.grid(padding=(0, 2))
    where.add_row("cohort", str(result.out / "cohort"))
    for name, run in result.runs.items():
        where.add_row(f"{name} run", str(run.run_dir))
        where.add_row(f"{name} card", str(run.run_dir / "card.html"))
    where.add_row("router evaluation", str(result.out / "models" / "router" / "evaluation.json"))
    console.print(Panel(where, title=f"where everything is ({result.seconds:.0f} s)", expand=False), soft_wrap=False)
    first = next(iter(result.runs.values()))
    console.print(f"re-check a run:   fairderm verify {first.run_dir}")
    console.print(f"browse the runs:  fairderm dashboard {result.out / 'audits'}")
