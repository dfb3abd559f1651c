"""``hashee-report SWEEP_DIR``: turn the results.json files of a (possibly partial) sweep into a report.

Writes ``<out>/report.md``, ``report.html``, ``runs.csv`` and the plots (:mod:`hashee.reports.build`).
``--wandb`` logs the same tables and plots to a W&B run in the sweep's group (offline unless ``--online``);
``--wandb-report`` also builds a W&B Report of that group (online, with an entity; needs the ``report`` extra).

Canonical results and the docs (:mod:`hashee.reports.export`, :mod:`hashee.reports.docs`):
``hashee-report SWEEP_DIR --export results/<study>`` copies its complete runs there, small and portable;
``hashee-report --markdown SECTION STUDY`` prints one report section's table; ``hashee-report --docs FILE
[--check]`` regenerates (or only compares) every generated table of a docs file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hashee.reports.build import build_report, load_rows, markdown_sections
from hashee.reports.docs import update_docs
from hashee.reports.export import export_study
from hashee.reports.render import markdown_table
from hashee.reports.wandb_report import OFFLINE_MODES, log_to_wandb, wandb_report_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hashee-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: SWEEP_DIR/report)")
    parser.add_argument("--wandb", action="store_true", help="also log tables and plots to W&B")
    parser.add_argument("--online", action="store_true", help="W&B online instead of offline")
    parser.add_argument("--wandb-report", action="store_true", help="also build a W&B Report of the sweep's "
                        "group (implies --wandb; needs --online, an entity and the `report` extra)")
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"),
                        help="W&B entity of the W&B Report (default: $WANDB_ENTITY)")
    parser.add_argument("--curve-targets", default="1.5,2,3",
                        help="extra target speed-ups read off the curves of methods with an operating point")
    parser.add_argument("--export", type=Path, default=None, help="copy the complete runs into this study folder")
    parser.add_argument("--markdown", default=None, metavar="SECTION",
                        help="print one report section as markdown (equal, runs, families, intervals, pareto, heads)")
    parser.add_argument("--docs", type=Path, default=None, help="regenerate the generated tables of this docs file")
    parser.add_argument("--check", action="store_true", help="with --docs: compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    if args.docs is not None:
        return docs_command(args.docs, args.check)
    if args.sweep_dir is None or not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    if args.export is not None:
        print(f"exported {export_study(args.sweep_dir, args.export)} runs to {args.export}")
        return 0
    targets = [float(t) for t in args.curve_targets.split(",") if t.strip()]
    if args.markdown is not None:
        print(markdown_sections(load_rows(args.sweep_dir, targets)[0]).get(args.markdown, ""))
        return 0
    report = build_report(args.sweep_dir, args.out or args.sweep_dir / "report", targets)
    print(markdown_table(report["table"]) if report["table"] else (Path(report["out"]) / "report.md").read_text())
    print(f"report: {Path(report['out']) / 'report.md'} ({len(report['images'])} plots)")
    online = args.online and os.environ.get("WANDB_MODE", "").strip().lower() not in OFFLINE_MODES
    if args.wandb or args.wandb_report:
        log_to_wandb(report, args.sweep_dir, online)
    if args.wandb_report:
        print(wandb_report_line(report, args.sweep_dir.name, online, args.entity))
    return 0


def docs_command(doc: Path, check: bool) -> int:
    """``--docs FILE [--check]``: 0 when every generated table is current (or was rewritten), 1 when a check fails."""
    changed = update_docs(doc, check)
    for block in changed:
        print(f"{doc}: table '{block}' {'differs from its runs' if check else 'rewritten'}")
    if check and changed:
        print(f"{doc}: {len(changed)} table(s) out of date; run: hashee-report --docs {doc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
