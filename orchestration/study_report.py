"""A study's report (placeholder for the engine's own tests).

The statistics engineer's `orchestration/study_report.py` replaces this file when the branches
merge; it keeps the same contract (`Design`, `Report`, `build_report`). This one writes only
n and mean per cell as Markdown, so the study engine can be run and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Design:
    metric: str
    mode: str
    baseline: str
    factors: list[str]
    arms: list[str]
    aux_tasks: list[str]
    arm_aux: dict[str, dict[str, bool]] = field(default_factory=dict)


@dataclass
class Report:
    markdown: str
    files: list[Path]


def build_report(rows: list[dict], design: Design, out_dir: Path) -> Report:
    """n and mean of the metric per cell, as `out_dir/report.md`."""
    cells: dict[str, list[float]] = {}
    arms: dict[str, str] = {}
    for row in rows:
        cells.setdefault(row["cell"], [])
        arms[row["cell"]] = row["arm"]
        if row["value"] is not None:
            cells[row["cell"]].append(float(row["value"]))
    lines = [f"# {design.metric} per cell", "", "| cell | arm | n | mean |", "|---|---|---|---|"]
    for cell, values in cells.items():
        mean = f"{sum(values) / len(values):.4f}" if values else "-"
        lines.append(f"| {cell} | {arms[cell]} | {len(values)} | {mean} |")
    markdown = "\n".join(lines) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text(markdown)
    return Report(markdown, [path])
