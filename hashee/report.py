"""``hashee-report SWEEP_DIR``: turn the results.json files of a (possibly partial) sweep into a report.

Writes ``<out>/report.md``, ``report.html`` (self-contained: plots embedded), ``runs.csv`` and PNG
plots: per task, primary metric vs FLOPs speed-up and vs measured speed-up (one line per method, the
full model as a dashed reference), every operating point with the Pareto front, each exit head on its
own, and the training exit-layer histogram of every HashEE hash. Sections: the comparison table,
intervals, paired comparisons and Pareto scores (:mod:`hashee.report_stats`), and the per-exit
diagnostics (:mod:`hashee.report_diagnostics`). ``--wandb`` logs the same
tables and plots to a W&B run in the sweep's group (offline unless ``--online``); ``--wandb-report``
also builds a W&B Report of that group (online, with an entity; needs the ``report`` extra).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import importlib
import itertools
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from hashee import report_diagnostics, report_stats
from hashee.operating_points import test_point_for_target
from hashee.plots import save_plot

PROJECT = "hashee-bench"  # the W&B project of the report run and of the W&B Report
OFFLINE_MODES = ("offline", "disabled", "dryrun")
COLUMNS = ["task", "method", "target", "seeds", "primary_metric", "primary_mean", "primary_std",
           "flops_speedup", "measured_speedup", "efficiency"]


def method_label(results: dict[str, Any]) -> str:
    """``hashee[frequency]`` for HashEE (the hash matters), the method name otherwise."""
    config = results.get("config", {})
    if results.get("method") == "hashee":
        return f"hashee[{config.get('hash', {}).get('name', '?')}]"
    return str(results.get("method"))


def requested_target(results: dict[str, Any]) -> float | None:
    """The target speed-up a run was asked for (None for the full model, which has none)."""
    config = results.get("config", {})
    if results.get("method") == "full":
        return None
    value = config.get("hashee", {}).get("target_speedup") if results.get("method") == "hashee" else None
    value = value if value is not None else config.get("target_speedup")
    return None if value is None else float(value)


def curve_rows(results: dict[str, Any], base: dict[str, Any], targets: Iterable[float]) -> list[dict[str, Any]]:
    """Extra rows at other target speed-ups from a run's curves: the knob is chosen on the
    validation curve (same rule as the run), the test point at that knob is reported.
    One trained model serves its whole curve; wall-clock is only measured at the run's own point."""
    info = results.get("method_info", {})
    val_curve = (info.get("operating_point") or {}).get("val_curve")
    test_curve = info.get("test_curve")
    rows = []
    for target in targets:
        if base["target"] is not None and abs(target - base["target"]) < 1e-9:
            continue
        found = test_point_for_target(val_curve, test_curve, target)
        if found is None:
            continue
        point, _ = found
        rows.append({**base, "target": target, "primary": point["primary"], "flops_speedup": point["flops_speedup"],
                     "measured_speedup": None, "efficiency": None, "source": "curve",
                     **{f"metric.{k}": v for k, v in point.get("metrics", {}).items()}})
    return rows


def collect_runs(sweep_dir: Path, curve_targets: Iterable[float] = ()) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Flat rows of every complete run under ``sweep_dir`` (plus rows read off the curves of methods
    with an operating point at ``curve_targets``) and a count of runs by status."""
    rows, statuses = [], defaultdict(int)
    for path in sorted(sweep_dir.rglob("results.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            statuses["unreadable"] += 1
            continue
        statuses[results.get("status", "unknown")] += 1
        if results.get("status") != "complete":
            continue
        cost = results.get("cost", {})
        described = results.get("method_info", {}).get("prepare", {}).get("hash") or {}
        row = {
            "task": results["task"], "method": method_label(results), "target": requested_target(results),
            "seed": results.get("seed"), "primary_metric": results.get("primary_metric"), "primary": results.get("primary"),
            "flops_speedup": cost.get("flops_speedup"), "measured_speedup": cost.get("measured_speedup"),
            "efficiency": cost.get("efficiency"), "run_dir": str(path.parent), "source": "run",
            "exit_histogram": described.get("train_exit_histogram"),
            "exit_diagnostics": results.get("method_info", {}).get("exit_diagnostics"),
            "primary_ci95": results.get("primary_ci95"),
            **{f"metric.{k}": v for k, v in results.get("metrics", {}).items()},
        }
        rows.append(row)
        rows.extend(curve_rows(results, row, curve_targets))
    return rows, dict(statuses)


def deduplicate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, method, target, seed): a measured run wins over a point read off a curve
    (several jobs of a method whose training does not depend on the target share the same curve)."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["task"], row["method"], row["target"], row["seed"])
        if key not in chosen or (chosen[key]["source"] == "curve" and row["source"] == "run"):
            chosen[key] = row
    return list(chosen.values())


def _mean(values: Iterable[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.fmean(clean) if clean else None


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std over seeds for every (task, method, target)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["method"], row["target"])].append(row)
    table = []
    for (task, method, target), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        primaries = [m["primary"] for m in members]
        table.append({
            "task": task, "method": method, "target": target, "seeds": len(members),
            "primary_metric": members[0]["primary_metric"], "primary_mean": statistics.fmean(primaries),
            "primary_std": statistics.stdev(primaries) if len(primaries) > 1 else 0.0,
            "flops_speedup": _mean(m["flops_speedup"] for m in members),
            "measured_speedup": _mean(m["measured_speedup"] for m in members),
            "efficiency": _mean(m["efficiency"] for m in members),
        })
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if not math.isnan(value) else "nan"
    return str(value)


def markdown_table(table: list[dict[str, Any]]) -> str:
    lines = ["| task | method | target | seeds | metric | mean ± std | FLOPs speed-up | measured speed-up | efficiency |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['task']} | {r['method']} | {_fmt(r['target'])} | {r['seeds']} | {r['primary_metric']} | "
                     f"{r['primary_mean']:.4f} ± {r['primary_std']:.4f} | {_fmt(r['flops_speedup'])} | "
                     f"{_fmt(r['measured_speedup'])} | {_fmt(r['efficiency'])} |")
    return "\n".join(lines)


def html_page(title: str, markdown_text: str, out: Path) -> str:
    """report.md as one self-contained HTML page: every plot embedded as a data URI, no external file."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    for image in sorted({p.name for p in out.glob("*.png")}):
        data = base64.b64encode((out / image).read_bytes()).decode("ascii")
        body = body.replace(f'src="{html.escape(image)}"', f'src="data:image/png;base64,{data}" width="720"')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            f"padding:3px 8px;text-align:right}}</style></head><body>{body}</body></html>")


def plot_task(task: str, table: list[dict[str, Any]], axis: str, out: Path) -> Path | None:
    """Primary metric vs a speed-up axis, one line per method, the full model as a dashed reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r["task"] == task and r[axis] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    for method, members in sorted(by_method.items()):
        members.sort(key=lambda r: r[axis])
        if method == "full":
            ax.axhline(statistics.fmean(m["primary_mean"] for m in members), color="black", linestyle="--",
                       linewidth=1, label="full model")
            continue
        ax.errorbar([m[axis] for m in members], [m["primary_mean"] for m in members],
                    yerr=[m["primary_std"] for m in members], marker="o", capsize=3, label=method)
    ax.set_xlabel("FLOPs speed-up" if axis == "flops_speedup" else "measured wall-clock speed-up")
    ax.set_ylabel(rows[0]["primary_metric"])
    ax.set_title(f"{task}: {rows[0]['primary_metric']} vs {'FLOPs' if axis == 'flops_speedup' else 'measured'} speed-up")
    return save_plot(fig, ax, out / f"{task}_{axis}.png")


def exit_histogram_panels(rows: list[dict[str, Any]]) -> dict[tuple[str, float | None], dict[str, list[int]]]:
    """HashEE training exit histograms grouped into panels: (task, target) -> {method label: counts}."""
    panels: dict[tuple[str, float | None], dict[str, list[int]]] = defaultdict(dict)
    for row in rows:
        if row["exit_histogram"] and row["method"].startswith("hashee"):
            panels[(row["task"], row["target"])].setdefault(row["method"], row["exit_histogram"])
    return dict(panels)


def plot_exit_histograms(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """Training exit-layer histograms: a panel per task and target, a bar per hash (same colour everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = exit_histogram_panels(rows)
    if not panels:
        return None
    tasks = sorted({task for task, _ in panels})
    targets = sorted({target for _, target in panels}, key=lambda t: (t is None, t or 0.0))
    methods = sorted({m for members in panels.values() for m in members})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    depth = max(len(counts) for members in panels.values() for counts in members.values())
    fig, axes = plt.subplots(len(tasks), len(targets), figsize=(3.6 * len(targets) + 0.4, 3.0 * len(tasks) + 1.0),
                             sharey=True, squeeze=False)
    for (r, task), (c, target) in itertools.product(enumerate(tasks), enumerate(targets)):
        ax, members = axes[r][c], panels.get((task, target), {})
        width = 0.8 / max(1, len(members))
        for i, (method, counts) in enumerate(sorted(members.items())):
            total = sum(counts) or 1
            ax.bar([layer + 1 + i * width - 0.4 + width / 2 for layer in range(len(counts))],
                   [n / total for n in counts], width=width, color=colours[method])
        ax.set_xticks(range(1, depth + 1))
        ax.set_xlim(0.5, depth + 0.5)
        ax.set_title(f"{task}, target {target:g}x" if target is not None else task, fontsize=10)
        ax.set_xlabel("exit layer")
        ax.grid(alpha=0.3, axis="y")
        if c == 0:
            ax.set_ylabel("share of training tokens")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in methods]
    fig.legend(handles, methods, fontsize=8, loc="lower center", ncol=min(len(methods), 5))
    fig.suptitle("HashEE: training tokens per exit layer")
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    path = out / "exit_histograms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = sorted({k for r in rows for k in r if k not in ("exit_histogram", "exit_diagnostics")},
                  key=lambda k: (k.startswith("metric."), k))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def build_report(sweep_dir: Path, out: Path, curve_targets: Iterable[float] = (1.5, 2.0, 3.0)) -> dict[str, Any]:
    """Write the report files; return what was written and the run counts."""
    rows, statuses = collect_runs(sweep_dir, curve_targets)
    rows = deduplicate(rows)
    if not rows:
        raise SystemExit(f"error: no complete results.json under {sweep_dir} (found: {statuses or 'none'})")
    out.mkdir(parents=True, exist_ok=True)
    table = aggregate(rows)
    images = []
    for task in sorted({r["task"] for r in table}):
        for axis in ("flops_speedup", "measured_speedup"):
            path = plot_task(task, table, axis, out)
            if path:
                images.append(path.name)
    hist = plot_exit_histograms(rows, out)
    if hist:
        images.append(hist.name)
    stats = report_stats.statistics_sections(rows, out)
    heads = report_diagnostics.head_rows([r for r in rows if r["source"] == "run"])
    head_images = [p.name for task in sorted({h["task"] for h in heads})
                   if (p := report_diagnostics.plot_task_heads(task, heads, out))]
    images += stats["images"] + head_images
    title = f"hashee-bench report: {sweep_dir.name}"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
    md = [f"# {title}", "", f"Runs found: {counts}. Rows without a measured speed-up are read off a trained "
          "model's curves (knob chosen on validation, test point reported).", "", markdown_table(table), ""]
    md += [f"![{i}]({i})" for i in images if i not in stats["images"] + head_images]
    md += ["", stats["markdown"], ""] + [f"![{i}]({i})" for i in stats["images"]]
    if heads:
        md += ["", report_diagnostics.markdown_section(heads), ""] + [f"![{i}]({i})" for i in head_images]
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(html_page(title, text, out))
    write_csv(rows, out / "runs.csv")
    return {"out": str(out), "table": table, "images": images, "statuses": statuses, "rows": rows,
            "statistics": stats["tables"], "exit_heads": heads}


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
