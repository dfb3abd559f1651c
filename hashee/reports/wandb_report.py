"""A sweep's report to W&B: the tables and plots as a run in the sweep's group (offline unless asked), and a
W&B Report of that group (online, with an entity, the ``report`` extra). Never fatal."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from hashee.reports.aggregate import COLUMNS

PROJECT = "hashee-bench"  # the W&B project of the report run and of the W&B Report
OFFLINE_MODES = ("offline", "disabled", "dryrun")


def log_to_wandb(report: dict[str, Any], sweep_dir: Path, online: bool) -> None:
    """Log the comparison table and plots to a W&B run in the sweep's group; never fatal."""
    try:
        import wandb

        run = wandb.init(project=PROJECT, group=sweep_dir.name, job_type="report", name=f"report-{sweep_dir.name}",
                         mode="online" if online else "offline", dir=report["out"])
        table = wandb.Table(columns=COLUMNS, data=[[r[c] for c in COLUMNS] for r in report["table"]])
        extra = {name: wandb_table(rows) for name, rows in {**report.get("statistics", {}),
                                                            "exit_heads": report.get("exit_heads", [])}.items() if rows}
        run.log({"comparison": table, **extra,
                 **{f"plots/{i}": wandb.Image(str(Path(report["out"]) / i)) for i in report["images"]}})
        run.finish()
        print(f"W&B: logged the report to a run in group '{sweep_dir.name}' ({'online' if online else 'offline'})")
    except Exception as exc:  # noqa: BLE001
        print(f"W&B: not logged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); the local report is written")
        return


def wandb_table(rows: list[dict[str, Any]]) -> Any:
    """A W&B Table of uniform dict rows (the statistics and exit-head tables)."""
    import wandb

    columns = list(rows[0])
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])


def wandb_report_blocker(online: bool, entity: str | None) -> str | None:
    """Why a W&B Report cannot be built here (None: try it)."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in OFFLINE_MODES:
        return f"W&B is offline (WANDB_MODE={mode})"
    if not online:
        return "W&B is offline (pass --online)"
    if not entity:
        return "no W&B entity (pass --entity or set WANDB_ENTITY)"
    return None


def build_wandb_report(report: dict[str, Any], group: str, entity: str, project: str = PROJECT) -> str:
    """Save a W&B Report of the sweep's group: the comparison table and every plot (as logged by
    :func:`log_to_wandb`), above the runs of the group. Returns its URL."""
    wr = importlib.import_module("wandb_workspaces.reports.v2")
    quoted = group.replace("\\", "\\\\").replace("'", "\\'")
    runset = wr.Runset(entity=entity, project=project, name=group, filters=f"Group = '{quoted}'")
    panels = [wr.WeavePanelSummaryTable(table_name="comparison", layout=wr.Layout(w=24, h=12))]
    panels += [wr.MediaBrowser(title=image, media_keys=[f"plots/{image}"], num_columns=1) for image in report["images"]]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(report["statuses"].items()))
    blocks = [wr.H1(f"Sweep {group}"),
              wr.P(f"Runs found: {counts}. Primary metric (mean ± std over seeds) against FLOPs and measured "
                   "speed-up, per task and method; the exit-layer histograms of the HashEE hashes."),
              wr.PanelGrid(runsets=[runset], panels=panels)]
    document = wr.Report(project=project, entity=entity, title=f"hashee-bench report: {group}",
                         description=f"Comparison table and plots of the sweep {group}", blocks=blocks)
    document.save()
    return str(document.url)


def wandb_report_line(report: dict[str, Any], group: str, online: bool, entity: str | None) -> str:
    """Build the W&B Report if possible; the one line to print either way (never fatal)."""
    blocker = wandb_report_blocker(online, entity)
    if blocker is None:
        try:
            return f"W&B Report: {build_wandb_report(report, group, str(entity))}"
        except ImportError:
            blocker = "wandb-workspaces is not installed (pip install -e '.[report]')"
        except Exception as exc:  # noqa: BLE001 - no network, not logged in, unknown entity
            blocker = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"W&B Report not built: {blocker}; the local report is written"
