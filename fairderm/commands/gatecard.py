"""``fairderm gate`` and ``fairderm card``: re-gate a stored run, write its model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from fairderm.commands._common import console, verdict_rules
from fairderm.errors import EXIT_ERROR, FairdermError, InputError

# The gate's exit codes are its answer (PASS 0, FAIL 1, INSUFFICIENT_EVIDENCE 2),
# so a usage or input error must not reuse 1 or 2: it is an ERROR (EXIT_ERROR).
_err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_VERDICT_STYLE = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "INSUFFICIENT_EVIDENCE": "bold yellow",
    "ERROR": "bold magenta",
}


try:  # typer >= 0.26 ships its own copy of click, whose errors are not click's
    from typer._click.exceptions import UsageError as _TyperUsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperUsageError = click.UsageError
_USAGE_ERRORS = (click.UsageError, _TyperUsageError)


class _GateCommand(TyperCommand):
    """A command whose usage errors exit with 3 (ERROR), not click's 2."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERRORS as exc:
            raise _gate_error(exc.format_message()) from None


def register(app: typer.Typer) -> None:
    """Add the ``gate`` and ``card`` commands to the root app."""
    app.command(
        "gate",
        cls=_GateCommand,
        help="Re-gate a stored run against a policy, without recomputing. Exit status: 0 PASS, 1 FAIL, "
        "2 INSUFFICIENT_EVIDENCE, 3 ERROR (including a bad policy, a missing metrics.json or bad usage).",
    )(gate_command)
    app.command("card", help="Write the model card of a run: card.md, card.html and card.json.")(card_command)


def _gate_error(message: str) -> typer.Exit:
    _err_console.print(Text.assemble(("error:", "bold red"), f" {message}"))
    _err_console.print(Text.assemble("verdict: ", ("ERROR", _VERDICT_STYLE["ERROR"]), " (exit 3)"))
    return typer.Exit(EXIT_ERROR)


def _print_gate(result: Any) -> None:
    # Rule ids, group names and messages come from users: Text() never reads them as markup.
    table = Table(title=Text(f"gate: policy {result.policy.name}"), title_justify="left")
    for column in ("rule", "checks", "decisive group", "verdict", "why"):
        table.add_column(column, overflow="fold")
    for rule_result in result.rules:
        verdict = rule_result.verdict.value
        table.add_row(
            Text(rule_result.rule.id), Text(rule_result.rule.describe()),
            Text(rule_result.decisive_group or "–"), Text(verdict, style=_VERDICT_STYLE[verdict]),
            Text(rule_result.message),
        )
    console.print(table)
    verdict = result.verdict.value
    rules = verdict_rules(verdict, [{"id": r.rule.id, "verdict": r.verdict.value, "message": r.message}
                                    for r in result.rules])
    console.print(Text.assemble("verdict: ", (verdict, _VERDICT_STYLE[verdict]), f" (exit {result.exit_code})",
                                f" {rules}" if rules else ""))


def gate_command(
    run_dir: Path = typer.Argument(
        None, help="Run folder holding metrics.json (audits/NAME/runs/RUN_ID); with --latest, a runs folder "
        "(audits/NAME/runs).", show_default=False
    ),
    policy: Path = typer.Option(
        None, "--policy", "-p", help="Policy YAML (see audits/policy.example.yaml); default: the policy.yaml the "
        "run folder holds (the audit's own policy)."
    ),
    latest: bool = typer.Option(
        False, "--latest", help="RUN_DIR is a runs folder: gate its newest run (e.g. in CI after `fairderm audit`)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the gate result (gate.json) here."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here (one test case per rule)."),
    summary: Path | None = typer.Option(
        None, "--summary", help="Append a Markdown summary here, e.g. \"$GITHUB_STEP_SUMMARY\"."
    ),
) -> None:
    from fairderm.audit import latest_run
    from fairderm.gate import gate_run, write_gate_reports
    from fairderm.runs import POLICY_FILE

    if run_dir is None:
        raise _gate_error("missing argument RUN_DIR")
    try:
        if latest:
            run_dir = latest_run(run_dir)
            console.print(Text(f"run: {run_dir}"))
        if policy is None:
            policy = run_dir / POLICY_FILE
            if not policy.is_file():
                raise _gate_error(f"no --policy given and the run folder holds no {POLICY_FILE} "
                                  f"(its audit named no policy): {run_dir}")
            console.print(Text(f"policy: {policy} (the run's own)"))
        result = gate_run(run_dir, policy)
        write_gate_reports(result, gate_json=out, junit=junit, summary=summary)
    except (FairdermError, OSError) as exc:
        raise _gate_error(str(exc)) from None
    _print_gate(result)
    raise typer.Exit(result.exit_code)


def card_command(
    run_dir: Path = typer.Argument(..., help="Run folder holding metrics.json (audits/NAME/runs/RUN_ID)."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for card.md, card.html, card.json (default: RUN_DIR, unless it is a finished "
        "audit run: its evidence.json records its card, so another card goes elsewhere)."
    ),
    info: Path | None = typer.Option(
        None, "--info",
        help="YAML with the owner's text (intended use, training data, owners, license...); overrides the "
        "spec's card: mapping key by key.",
    ),
) -> None:
    from fairderm.audit import EVIDENCE_FILE
    from fairderm.cards import build_card

    if out is None and (run_dir / EVIDENCE_FILE).is_file():
        # Overwriting the audit's card would break `fairderm verify`, which derives that card again and compares.
        raise InputError(f"a finished audit run: {EVIDENCE_FILE} records its card, and `fairderm verify` checks it; "
                         "write this card elsewhere with --out DIR", source=str(run_dir))
    with console.status(f"building the model card of {run_dir}"):
        card = build_card(run_dir, info=info)
        paths = card.write(out if out is not None else run_dir)
    console.print(Text.assemble("model card: ", (card.document.title, "bold"), f" ({card.document.headline})"))
    for path in paths.values():
        console.print(Text(f"  wrote {path}"))
