"""The compress report for people: a rich table per layer and for the model, and the
Pareto plot (accuracy or error against parameters) of a `--pareto` sweep, with the
same-size dense baseline as a second curve."""

from __future__ import annotations

from pathlib import Path

from toolchain.fileio import atomic_write_bytes


def _ranks(row: dict) -> str:
    return ":".join(map(str, row["ranks"])) if row.get("ranks") else "-"


def _search_cells(row: dict) -> list[str]:
    if "output_error_in_combination" not in row:
        return ["-", "-"]
    return [f"{row['output_error']:.4f}", f"{row['output_error_in_combination']:.4f}"]


def print_report(report: dict) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    console = make_console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
        console.width = 160
    table = Table(
        title=f"tinyrank compress: {report['model']} ({report['method']}, {report['rank_selection']})"
    )
    budget = report.get("budget") or {}
    device = "board" in budget and "original_instructions" in budget
    searched = any("output_error_in_combination" in row for row in report["layers"])
    columns = ["layer", "method", "ranks", "params", "MACs", "rel. error"]
    columns += ["output error alone", "in combination"] if searched else []
    columns += [f"{budget.get('core', '')} instructions (predicted)", "flash B"] if device else []
    for column in [*columns, "note"]:
        table.add_column(column, justify="left" if column in ("layer", "method", "note") else "right")
    for row in report["layers"]:
        note = row.get("reason") or ", ".join(row.get("layers", []))
        if "svd_rel_error" in row:
            note += f" (svd: {row['svd_rel_error']:.3f})"
        cells = [
            row["name"],
            row["method"] or "kept",
            _ranks(row),
            f"{row['params_before']:,} -> {row['params_after']:,}",
            f"{row['macs_before']:,} -> {row['macs_after']:,}",
            f"{row['rel_error']:.3f}",
            *(_search_cells(row) if searched else []),
        ]
        if device:
            cost = row.get("device")
            cells += (
                [
                    f"{cost['instructions_before']:,} -> {cost['instructions_after']:,}",
                    f"{cost['flash_bytes_before']:,} -> {cost['flash_bytes_after']:,}",
                ]
                if cost
                else ["-", "-"]
            )
        table.add_row(*cells, note)
    console.print(table)
    summary = Table(show_header=False, title="model")
    summary.add_column("what")
    summary.add_column("value", justify="right")
    for key in ("params", "macs", "int8_flash_bytes"):
        summary.add_row(key, f"{report[key]['before']:,} -> {report[key]['after']:,}")
    for fold in report["folded_batchnorm"]:
        summary.add_row("folded", f"{fold['batchnorm']} into {fold['into']}")
    search = report.get("search")
    if search:
        summary.add_row("whole-model output error", f"{search['joint_output_error']:.4f}")
        for neck in search["bottlenecks"]:
            summary.add_row(f"bottleneck {neck['layer']}", f"width {neck['width']}: {neck['kept_because']}")
    metric = report.get("metric")
    if metric:
        fmt = "{:.2%}" if metric == "accuracy" else "{:.5g}"
        for stage, value in report[metric].items():
            label = f"{metric}, {stage}"
            if stage == "baseline":
                label += f" (dense from scratch, {report['baseline']['params']:,} params)"
            summary.add_row(label, fmt.format(value))
    tuned = report.get("finetune")
    if tuned and "skipped" not in tuned:
        summary.add_row(
            "fine-tuning",
            f"{tuned['epochs_run']}/{tuned['epochs_cap']} epochs ({tuned['qat_epochs']} int8-aware), "
            f"peak LR {tuned['learning_rate']:.2g}"
            + (", undone: held-out worse" if tuned["kept_start_weights"] else ""),
        )
    other = report.get("compared_with")
    if other and tuned:
        summary.add_row(
            f"compared with {other['method']}",
            f"held-out loss {tuned.get('end_loss', float('nan')):.4f} here, "
            f"{other['held_out_loss']:.4f} there",
        )
    for what, value in device_rows(budget):
        summary.add_row(what, value)
    if report.get("labels", "from the data") != "from the data":
        summary.add_row("labels", report["labels"])
    summary.add_row("compression time (s)", f"{report['compress_seconds']:.2f}")
    console.print(summary)
    errors = make_console(stderr=True)
    for warning in report.get("warnings", []):
        errors.print(f"tinyrank compress: warning: {warning}", style="yellow", highlight=False)


def device_rows(budget: dict) -> list[tuple[str, str]]:
    """The board budget as asked and as the cost and budget models predict it."""
    if "original_instructions" not in budget:
        return []
    board = budget["board"]
    rows = [
        (
            f"predicted instructions on {board} ({budget['core']})",
            f"{budget['original_instructions']:,} -> {budget['predicted_instructions']:,}",
        )
    ]
    limit = budget.get("limits", {}).get("instructions")
    unit = budget["latency_unit"]
    if limit is not None:
        asked = (
            f"{budget['target_latency']:.0%} of the original"
            if "target_latency" in budget
            else f"{budget['max_latency_ms']} ms = {budget.get(unit, 0):,} {unit}"
        )
        rows.append(("latency budget", f"{asked}: {limit:,} instructions"))
    if unit == "cycles":
        rows.append(("predicted cycles (estimate)", f"{budget['predicted_latency']:,}"))
    for what, key in (("flash", "flash"), ("RAM", "ram")):
        original, limit = budget[f"original_{key}_bytes"], budget[f"{key}_limit"]
        generated = budget.get(f"generated_{key}_bytes")
        if generated is None:
            rows.append((f"{what}: original, limit", f"{original:,} B, {limit:,} B"))
        else:  # the compressed model generated and measured by the firmware budget model
            value = f"{original:,} -> {generated:,} B, {limit:,} B"
            rows.append((f"{what}: original -> compressed, limit", value))
    return rows


def plot_pareto(report: dict, path: str | Path) -> Path:
    """Accuracy (or MSE) against parameters for each budget of the sweep, plus the original."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report.get("pareto") or []
    metric = report.get("metric", "accuracy")
    if points and "predicted_instructions" in points[0]:
        fig = _device_pareto(plt, report, points, metric)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        plt.close(fig)
        return atomic_write_bytes(path, buffer.getvalue())
    fig, ax = plt.subplots(figsize=(6, 4))
    params = [p["params"] for p in points]
    ax.plot(params, [p["factored"] for p in points], "o-", label="factored")
    if any("finetuned" in p for p in points):
        ax.plot(params, [p.get("finetuned") for p in points], "s-", label="factored + fine-tuned")
    if any("baseline" in p for p in points):
        ax.plot(
            [p["baseline_params"] for p in points],
            [p["baseline"] for p in points],
            "^--",
            label="same design, trained from scratch",
        )
    if metric in report:
        ax.plot(
            [report["params"]["before"]], [report[metric]["original"]], "k*", markersize=12, label="original"
        )
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.set_title(f"{report['model']}: {metric} against size ({report['method']})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _device_pareto(plt, report: dict, points: list[dict], metric: str):
    """Two panels: the metric against predicted instructions on the board and against flash;
    filled markers fit the board (and the latency budget, if one was given), hollow ones do not."""
    budget = report["budget"]
    key = "finetuned" if any("finetuned" in p for p in points) else "factored"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    panels = (
        (
            axes[0],
            "predicted_instructions",
            f"predicted instructions on {budget['board']} ({budget['core']})",
        ),
        (axes[1], "flash_bytes", f"flash bytes on {budget['board']}"),
    )
    limits = {
        "predicted_instructions": budget.get("limits", {}).get("instructions"),
        "flash_bytes": budget.get("flash_limit"),
    }
    originals = {
        "predicted_instructions": budget["original_instructions"],
        "flash_bytes": budget["original_flash_bytes"],
    }
    for ax, field, label in panels:
        for fits, marker in ((True, "o"), (False, "o")):
            chosen = [p for p in points if p["fits"] == fits]
            ax.plot(
                [p[field] for p in chosen],
                [p.get(key) for p in chosen],
                marker,
                fillstyle="full" if fits else "none",
                color="#4c72b0",
                label="fits the board" if fits else "does not fit",
            )
        if metric in report:
            ax.plot([originals[field]], [report[metric]["original"]], "k*", markersize=12, label="original")
        if limits[field]:
            ax.axvline(limits[field], color="#c44e52", linestyle="--", label="limit")
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"{metric} ({key})")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['model']}: {metric} against on-device cost ({report['method']})")
    fig.tight_layout()
    return fig
