"""``fairderm audit`` and ``fairderm verify``: run an audit spec, re-check a run folder."""

from __future__ import annotations

from pathlib import Path

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from fairderm.commands._common import RAY_ADDRESS_OPTION, console, engine_from_flags, progress_bar, verdict_rules
from fairderm.errors import EXIT_ERROR, FairdermError

# An audit's exit status is its gate's answer (0 PASS, 1 FAIL, 2 INSUFFICIENT_EVIDENCE),
# so a bad spec or input must not reuse 1 or 2: it is an ERROR (EXIT_ERROR), as for `fairderm gate`.
_err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_VERDICT_STYLE = {
    "PASS": "bold green", "FAIL": "bold red", "INSUFFICIENT_EVIDENCE": "bold yellow", "ERROR": "bold magenta",
}
_STATUS_STYLE = {"ok": "green", "skipped": "yellow", "mismatch": "bold red", "missing": "bold red",
                 "unexpected": "bold red", "error": "bold magenta"}


class _AuditCommand(TyperCommand):
    """A command whose argument errors exit with 3 (ERROR), not click's 2 (usage) or 1 (an unreadable file)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            exc.exit_code = EXIT_ERROR
            raise


def register(app: typer.Typer) -> None:
    """Add the ``audit`` and ``verify`` commands to the root app."""
    app.command(
        "audit",
        cls=_AuditCommand,
        help="Audit a model as an audit spec describes: tone -> inference -> metrics -> gate -> card, each "
        "stage cached by the content hash of its inputs; writes audits/NAME/runs/RUN_ID/. Exit status is "
        "the gate's: 0 PASS (or no policy), 1 FAIL, 2 INSUFFICIENT_EVIDENCE, 3 ERROR (including a bad spec "
        "or input).",
    )(audit_command)
    app.command(
        "verify",
        help="Re-check an audit run folder: every SHA-256 in evidence.json, the original inputs where they "
        "can be found, the metrics recomputed from the stored predictions and seeds, and every derived file "
        "(gate reports, run log, card, figures) derived again and compared; with --public-key, the producer's "
        "signature. Prints the evidence digest to publish. Exit 0 only when everything matches; 1 when "
        "something differs (each difference is listed). See docs/audit.md for what this proves.",
    )(verify_command)
    app.command(
        "sign",
        help="Sign a run folder's evidence digest with an Ed25519 private key: writes RUN/evidence.sig, "
        "which `fairderm verify RUN --public-key KEY.pub` checks.",
    )(sign_command)
    app.command(
        "keygen",
        help="Write a new Ed25519 key pair for `fairderm sign`: KEY (private, mode 0600) and KEY.pub.",
    )(keygen_command)


def print_audit_run(run: object) -> None:
    """Stage table, coverage, verdict and where the run folder is."""
    table = Table(title=Text(f"audit {run.audit}: run {run.run_id}"), title_justify="left")
    for column in ("stage", "cache", "seconds", "key"):
        table.add_column(column)
    for record in run.stages:
        table.add_row(record.stage, record.cache, f"{record.seconds:.1f}",
                      Text((record.key or record.reason or "")[:16]))
    console.print(table)
    coverage = run.coverage.get("all", {})
    if coverage:
        console.print(f"cases: {coverage.get('evaluated')} evaluated of {coverage.get('selected')} selected "
                      f"({coverage.get('error')} errors, {coverage.get('unparseable')} unparseable)")
    console.print(Text.assemble("run folder: ", (str(run.run_dir), "bold")))
    if run.verdict is None:
        console.print("verdict: not gated (the spec names no policy)")
    else:
        from fairderm.runs import GATE_FILE, read_json_file

        gate = read_json_file(run.run_dir / GATE_FILE, what=GATE_FILE)
        rules = verdict_rules(run.verdict, [r for r in gate.get("rules", []) if isinstance(r, dict)])
        console.print(Text.assemble("verdict: ", (run.verdict, _VERDICT_STYLE.get(run.verdict, "bold")),
                                    f" (exit {run.exit_code})", f" {rules}" if rules else ""))


def audit_command(
    spec: Path = typer.Argument(..., help="Audit spec YAML (audits/NAME.yaml); see docs/audit.md."),
    runs_dir: Path | None = typer.Option(
        None, "--runs-dir", help="Put the run folder here (default: the spec's outputs.runs_dir, else "
        "NAME/runs beside the spec)."
    ),
    wait: float = typer.Option(
        0.0, "--wait", help="Seconds to wait for a stage that another audit is computing, then reuse it "
        "(default: refuse at once)."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="local or ray: run the tone and inference stages there instead of where the "
        "spec's engine: says (the run folder is the same)."
    ),
    ray_address: str | None = RAY_ADDRESS_OPTION,
) -> None:
    from fairderm.audit import run_audit

    where = engine_from_flags(engine or "local", ray_address) if engine or ray_address else None
    try:
        with progress_bar(transient=True) as bar:
            tasks: dict[str, object] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            run = run_audit(spec, runs_dir=runs_dir, progress=progress, log=bar.console.print, wait=wait,
                            engine=where)
    except (FairdermError, OSError) as exc:
        _err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
        _err_console.print(Text.assemble("verdict: ", ("ERROR", _VERDICT_STYLE["ERROR"]),
                                         f" (exit {EXIT_ERROR}); no run folder was written"))
        raise typer.Exit(EXIT_ERROR) from None
    print_audit_run(run)
    raise typer.Exit(run.exit_code)


def verify_command(
    run_dir: Path = typer.Argument(..., help="Run folder (audits/NAME/runs/RUN_ID)."),
    no_inputs: bool = typer.Option(
        False, "--no-inputs", help="Check only the run folder, not the original cohort, images, model and policy."
    ),
    no_images: bool = typer.Option(False, "--no-images", help="Do not re-hash every image (large cohorts)."),
    show_all: bool = typer.Option(False, "--all", help="List every check, not only those that did not pass."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="The producer's Ed25519 public key (PEM): RUN/evidence.sig must be its "
        "holder's signature of this evidence."
    ),
    inputs_root: Path | None = typer.Option(
        None, "--inputs-root", help="Read the original inputs only inside this folder (default: the folder "
        "holding RUN's audits folder)."
    ),
) -> None:
    from fairderm.audit import verify_run

    result = verify_run(run_dir, check_inputs=not no_inputs, check_images=not no_images, public_key=public_key,
                        inputs_root=inputs_root)
    table = Table(title=Text(f"verify {run_dir}"), title_justify="left")
    for column in ("status", "item", "key", "detail"):
        table.add_column(column, overflow="fold")
    shown = [c for c in result.checks if show_all or c.status != "ok"]
    for check in shown:
        table.add_row(Text(check.status, style=_STATUS_STYLE.get(check.status, "")), Text(check.item),
                      Text(check.key or ""), Text(check.detail))
    if shown:
        console.print(table)
    passed = sum(c.status == "ok" for c in result.checks)
    console.print(Text.assemble("evidence digest: ", (f"sha256:{result.evidence_sha256}", "bold"),
                                " (publish it with the verdict: it names this evidence and every file it hashes)"
                                if result.ok else ""))
    if result.ok:
        console.print(Text.assemble(("verified", "bold green"), f": {passed} checks match"
                                    + (f", {len(shown)} skipped" if shown and not show_all else "")))
    else:
        console.print(Text.assemble(("NOT verified", "bold red"),
                                    f": {len(result.problems)} problems, {passed} checks match"))
    raise typer.Exit(result.exit_code)


def sign_command(
    run_dir: Path = typer.Argument(..., help="Run folder (audits/NAME/runs/RUN_ID); verify it first."),
    key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM), from `fairderm keygen` or openssl."),
) -> None:
    from fairderm.audit import sign_run

    record = sign_run(run_dir, key)
    console.print(Text.assemble("signed evidence ", (f"sha256:{record['evidence_sha256']}", "bold"),
                                f" with key sha256:{record['public_key_sha256'][:12]}... -> "
                                f"{Path(run_dir) / 'evidence.sig'}"))


def keygen_command(
    key: Path = typer.Argument(..., help="Private key file to write (the public key goes to KEY.pub)."),
) -> None:
    from fairderm.audit import generate_key_pair

    private, public = generate_key_pair(key)
    console.print(f"private key: {private} (keep it secret)")
    console.print(f"public key:  {public} (give it to reviewers: fairderm verify RUN --public-key {public})")
