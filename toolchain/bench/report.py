"""Showing a benchmark: a table a person reads at a glance, and the per-op bar chart."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from toolchain.errors import TinyrankError
from toolchain.fileio import atomic_write_bytes


def _latency_text(latency: dict[str, Any]) -> str:
    unit = latency["unit"]
    spread = f"min {latency['min']:,}, max {latency['max']:,}, {latency['runs']} runs"
    text = f"{latency['median']:,} {unit} ({spread})"
    us = latency.get("microseconds")
    if us:
        text += f" = {us['median']:,} µs"
    elif unit == "instructions":
        text += ", emulated: not time"
    return text


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) pairs of the summary table; also what tests check."""
    rows = [
        ("board", f"{report['board_name']} ({report['board']})"),
        ("latency per inference", _latency_text(report["latency"])),
    ]
    estimate = report.get("cycle_estimate")
    if estimate:
        rows.append(
            (
                "estimated cycles per inference",
                f"{estimate['estimated_cycles']:,} (estimate: {estimate['cycles_per_instruction']:.2f} "
                f"cycles per instruction, {estimate['timing_model']})",
            )
        )
    ram = (
        f"{report['ram_bytes']:,} B = static {report['static_ram_bytes']:,} + "
        f"stack high-water {report['stack_high_water_bytes']:,}"
    )
    if report.get("bench_app_ram_bytes"):
        ram += f" (the benchmark app's buffers: {report['bench_app_ram_bytes']:,} of the static)"
    rows.append(("RAM", ram))
    if report.get("flash_bytes") is not None:
        rows.append(("flash", f"{report['flash_bytes']:,} B"))
    if report["samples"]:
        rows.append(("outputs match the host reference", f"{report['matches']}/{report['samples']}"))
    else:
        rows.append(("outputs match the host reference", "not checked (no --data)"))
    if report.get("accuracy") is not None:
        rows.append(("accuracy on device", f"{report['accuracy']:.2%}"))
    link = report.get("link", {})
    if link.get("retries") or link.get("bad_frames") or link.get("resets"):
        rows.append(
            (
                "link trouble survived",
                f"{link['retries']} retries, {link['bad_frames']} bad frames, {link['resets']} resets",
            )
        )
    return rows


def print_report(report: dict[str, Any], console: Any = None) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    if console is None:
        console = make_console()
        if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
            console.width = 180
    table = Table(title="tinyrank bench", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for what, value in summary_rows(report):
        table.add_row(what, value)
    console.print(table)
    if report.get("mismatches"):
        first = ", ".join(f"#{m['index']} (max diff {m['max_abs_diff']})" for m in report["mismatches"])
        console.print(f"[red]mismatching samples[/red]: {first}")
    if report.get("per_op"):
        unit = report["latency"]["unit"]
        ops = Table(title=f"per op ({unit}, least over the runs)")
        estimated = all("estimated_cycles" in row for row in report["per_op"])
        predicted = any("predicted" in row for row in report["per_op"])
        columns = ["#", "op", "kernel", "MACs", unit, f"{unit}/MAC", "share"]
        if estimated:
            columns[6:6] = ["est. cycles", "est. cycles/MAC"]
        if predicted:
            columns += ["predicted", "error"]
        longest_op = max(len(row["opcode"]) for row in report["per_op"])
        for column in columns:
            ops.add_column(
                column,
                justify="left" if column in ("op", "kernel") else "right",
                min_width=longest_op if column == "op" else None,  # the TFLite op name is never cut
            )
        for row in report["per_op"]:
            per_mac = f"{row['count'] / row['macs']:.2f}" if row["macs"] else "-"
            cells = [str(row["index"]), row["opcode"], str(row["kernel"]), f"{row['macs']:,}"]
            cells += [f"{row['count']:,}", per_mac, f"{row['share']:.1%}"]
            if estimated:
                cycles_per_mac = f"{row['estimated_cycles'] / row['macs']:.2f}" if row["macs"] else "-"
                cells[6:6] = [f"{row['estimated_cycles']:,}", cycles_per_mac]
            if predicted:
                error = row.get("prediction_error")
                cells.append(f"{row['predicted']:,}" if "predicted" in row else "-")
                cells.append(f"{error:+.1%}" if error is not None else "-")
            ops.add_row(*cells)
        console.print(ops)
        model = report.get("cost_model")
        if model:
            skipped = model.get("unpredicted_ops") or []
            scope = f" (without ops {', '.join(map(str, skipped))}: no prediction)" if skipped else ""
            error = f"{model['error']:+.1%}" if model["error"] is not None else "-"
            console.print(
                f"cost model ({model['core']}): predicted {model['predicted']:,} {unit} per inference"
                f"{scope}, measured {model['measured']:,} ({error})"
            )


def plot_per_op(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a horizontal bar chart of where the time goes, one bar per op, as a PNG."""
    rows = report.get("per_op")
    if not rows:
        raise TinyrankError("--plot needs per-op timings; add --per-op")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"#{r['index']} {r['opcode']}" for r in rows]
    counts = [r["count"] for r in rows]
    unit = report["latency"]["unit"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    try:
        bars = ax.barh(range(len(rows)), counts, color="#4c72b0")
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()  # op 0 on top, in execution order
        ax.set_xlabel(unit)
        ax.set_title(f"where the {unit} go: {report['board']}, {sum(counts):,} {unit} in total")
        ax.bar_label(bars, labels=[f"{r['share']:.0%}" for r in rows], padding=3)
        ax.margins(x=0.12)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
