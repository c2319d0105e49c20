"""The card's Mitigation section: the router evaluation's methods, judged against ERM."""

from __future__ import annotations

from fairderm.cards._blocks import Block, Bullets, Figure, Paragraph, Section, Table
from fairderm.cards._content import CardData, baseline_fallbacks, fmt_interval, levelling_down_rows
from fairderm.cards._text import tradeoffs


def mitigation_section(data: CardData) -> Section | None:
    """The card's Mitigation section, from the run's mitigation.json (a router evaluation), if it has one."""
    methods = (data.run.mitigation or {}).get("methods")
    if not isinstance(methods, dict) or not methods:
        return None
    rows = []
    for name, result in methods.items():
        if not isinstance(result, dict):
            continue
        cells = [name]
        for key in ("accuracy", "gap", "gap_diff_vs_erm"):
            value = result.get(key) if isinstance(result.get(key), dict) else {}
            cells.append(fmt_interval(value.get("estimate"), value.get("ci_low"), value.get("ci_high")))
        rows.append(cells)
    blocks: list[Block] = [
        Paragraph("Mitigations trained on the same features and split (router evaluation): accuracy, the gap "
                  "between the best and worst tone group, and the paired change in that gap against ERM."),
        Table(["Method", "Accuracy (95% CI)", "Tone gap (95% CI)", "Gap change vs ERM (95% CI)"], rows),
        Figure("mitigation", "Accuracy against tone gap, with 95% intervals, per method."),
    ]
    views = (data.run.mitigation or {}).get("views")
    if isinstance(views, dict) and views.get("rows_added"):
        per_case = ", ".join(f"{g} {n}" for g, n in (views.get("per_case") or {}).items())
        blocks.insert(2, Paragraph(
            f"moe_parity also trained on {views['rows_added']} turned or mirrored views of the smaller tone "
            f"groups' training images (views per case: {per_case}); the other methods trained on the images "
            "alone."
        ))
    levelling = levelling_down_rows(data.run.mitigation)
    if levelling:
        blocks += [
            Paragraph("Against ERM, as fairness research judges a mitigation (Zietlow et al. 2022, \"Leveling down "
                      "in computer vision\"): the change in accuracy of ERM's worst and best tone groups, paired "
                      "over the same test cases, and overall. A method levels down when its best group's whole "
                      "interval is below 0: it narrows the gap by making the best-served group worse."),
            Table(["Method", "Worst group", "Its change (95% CI)", "Best group", "Its change (95% CI)",
                   "Overall change (95% CI)", "Levelled down"], levelling),
        ]
    fallbacks = baseline_fallbacks(data.run.mitigation)
    if fallbacks:
        blocks += [Paragraph("Baselines that could not be fitted for every class:"), Bullets(fallbacks)]
    split_note = ((data.run.mitigation or {}).get("dataset") or {}).get("split_note")
    if split_note:
        blocks.append(Paragraph(f"Split: {split_note}"))
    trade = tradeoffs(data)
    if trade:
        blocks.append(Bullets(trade))
    return Section("Mitigation", blocks)
