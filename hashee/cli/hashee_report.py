"""``hashee-report SWEEP_DIR``: turn the results.json files of a (possibly partial) sweep into a report.

Writes ``<out>/report.md``, ``report.html``, ``runs.csv`` and the plots (:mod:`hashee.reports.build`).
``--wandb`` logs the same tables and plots to a W&B run in the sweep's group (offline unless ``--online``);
``--wandb-report`` also builds a W&B Report of that group (online, with an entity; needs the ``report`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hashee.reports.build import build_report
from hashee.reports.render import markdown_table
from hashee.reports.wandb_report import OFFLINE_MODES, log_to_wandb, wandb_report_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hashee-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: SWEEP_DIR/report)")
    parser.add_argument("--wandb", action="store_true", help="also log tables and plots to W&B")
    parser.add_argument("--online", action="store_true", help="W&B online instead of offline")
    parser.add_argument("--wandb-report", action="store_true", help="also build a W&B Report of the sweep's "
                        "group (implies --wandb; needs --online, an entity and the `report` extra)")
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"),
                        help="W&B entity of the W&B Report (default: $WANDB_ENTITY)")
    parser.add_argument("--curve-targets", default="1.5,2,3",
                        help="extra target speed-ups read off the curves of methods with an operating point")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    targets = [float(t) for t in args.curve_targets.split(",") if t.strip()]
    report = build_report(args.sweep_dir, args.out or args.sweep_dir / "report", targets)
    print(markdown_table(report["table"]))
    print(f"report: {Path(report['out']) / 'report.md'} ({len(report['images'])} plots)")
    online = args.online and os.environ.get("WANDB_MODE", "").strip().lower() not in OFFLINE_MODES
    if args.wandb or args.wandb_report:
        log_to_wandb(report, args.sweep_dir, online)
    if args.wandb_report:
        print(wandb_report_line(report, args.sweep_dir.name, online, args.entity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
