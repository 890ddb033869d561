"""The compress report for people: a rich table per layer and for the model, and the
Pareto plot (accuracy or error against parameters) of a `--pareto` sweep."""

from __future__ import annotations

from pathlib import Path

from toolchain.fileio import atomic_write_bytes


def _ranks(row: dict) -> str:
    return ":".join(map(str, row["ranks"])) if row.get("ranks") else "-"


def print_report(report: dict) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    console = make_console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
        console.width = 160
    table = Table(
        title=f"tinyrank compress: {report['model']} ({report['method']}, {report['rank_selection']})"
    )
    for column in ("layer", "method", "ranks", "params", "MACs", "rel. error", "note"):
        table.add_column(column, justify="left" if column in ("layer", "method", "note") else "right")
    for row in report["layers"]:
        note = row.get("reason") or ", ".join(row.get("layers", []))
        if "svd_rel_error" in row:
            note += f" (svd: {row['svd_rel_error']:.3f})"
        table.add_row(
            row["name"],
            row["method"] or "kept",
            _ranks(row),
            f"{row['params_before']:,} -> {row['params_after']:,}",
            f"{row['macs_before']:,} -> {row['macs_after']:,}",
            f"{row['rel_error']:.3f}",
            note,
        )
    console.print(table)
    summary = Table(show_header=False, title="model")
    summary.add_column("what")
    summary.add_column("value", justify="right")
    for key in ("params", "macs", "int8_flash_bytes"):
        summary.add_row(key, f"{report[key]['before']:,} -> {report[key]['after']:,}")
    for fold in report["folded_batchnorm"]:
        summary.add_row("folded", f"{fold['batchnorm']} into {fold['into']}")
    metric = report.get("metric")
    if metric:
        fmt = "{:.2%}" if metric == "accuracy" else "{:.5g}"
        for stage, value in report[metric].items():
            summary.add_row(f"{metric}, {stage}", fmt.format(value))
    summary.add_row("compression time (s)", f"{report['compress_seconds']:.2f}")
    console.print(summary)


def plot_pareto(report: dict, path: str | Path) -> Path:
    """Accuracy (or MSE) against parameters for each budget of the sweep, plus the original."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report.get("pareto") or []
    metric = report.get("metric", "accuracy")
    fig, ax = plt.subplots(figsize=(6, 4))
    params = [p["params"] for p in points]
    ax.plot(params, [p["factored"] for p in points], "o-", label="factored")
    if any("finetuned" in p for p in points):
        ax.plot(params, [p.get("finetuned") for p in points], "s-", label="factored + fine-tuned")
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
