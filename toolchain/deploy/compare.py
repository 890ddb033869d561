"""Before and after on the device: the original int8 model next to the compressed one.

`comparison(report)` reads a deploy report that holds both (`original` and the top-level
stages) and returns one row per figure with both values and their ratio (compressed /
original); `print_comparison` shows it as a table. Figures a stage did not measure are None.
"""

from __future__ import annotations

from typing import Any


def _get(section: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(section, dict) or section.get(key) is None:
            return None
        section = section[key]
    return section


def _score(scores: Any) -> tuple[str | None, float | None]:
    """('accuracy' or 'mse', value) of a convert report's score dict."""
    if not isinstance(scores, dict):
        return None, None
    for metric in ("accuracy", "mse"):
        if isinstance(scores.get(metric), float):
            return metric, scores[metric]
    return None, None


def _row(what: str, unit: str, original: Any, compressed: Any) -> dict[str, Any]:
    ratio = None
    if isinstance(original, (int, float)) and isinstance(compressed, (int, float)) and original:
        ratio = round(compressed / original, 4)
    return {"what": what, "unit": unit, "original": original, "compressed": compressed, "ratio": ratio}


def comparison(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: accuracy (float, int8 on the host, on the device), parameters, flash, RAM, latency."""
    before = report.get("original") or {}
    metric, float_after = _score(_get(report, "convert", "float"))
    _, float_before = _score(_get(before, "convert", "float"))
    _, int8_after = _score(_get(report, "convert", "int8"))
    _, int8_before = _score(_get(before, "convert", "int8"))
    metric = metric or "accuracy"
    unit = (
        _get(report, "bench", "latency", "unit") or _get(before, "bench", "latency", "unit") or "instructions"
    )
    rows = [
        _row(f"{metric}, float", metric, float_before, float_after),
        _row(f"{metric}, int8 on the host", metric, int8_before, int8_after),
        _row(
            f"{metric}, int8 on the device",
            metric,
            _get(before, "bench", "accuracy"),
            _get(report, "bench", "accuracy"),
        ),
        _row(
            "parameters",
            "",
            _get(report, "compress", "params", "before"),
            _get(report, "compress", "params", "after"),
        ),
        _row("flash", "bytes", _get(before, "build", "flash_bytes"), _get(report, "build", "flash_bytes")),
        _row(
            "RAM (static + stack high-water)",
            "bytes",
            _get(before, "bench", "ram_bytes"),
            _get(report, "bench", "ram_bytes"),
        ),
        _row(
            f"{unit} per inference",
            unit,
            _get(before, "bench", "latency", "median"),
            _get(report, "bench", "latency", "median"),
        ),
    ]
    predicted = (
        _get(before, "bench", "cost_model", "predicted"),
        _get(report, "bench", "cost_model", "predicted"),
    )
    if any(v is not None for v in predicted):
        rows.append(_row("instructions predicted by the cost model", "instructions", *predicted))
    return rows


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "accuracy":
        return f"{value:.2%}"
    if unit == "mse":
        return f"{value:.5g}"
    return f"{value:,}"


def print_comparison(report: dict[str, Any], console: Any = None) -> None:
    from rich.table import Table

    from toolchain.console import make_console

    console = console or make_console()  # plain and 120 columns wide in logs and CI
    table = Table(
        title=f"tinyrank deploy on {report['board']}: original and compressed, same board, same run"
    )
    for column in ("", "original (int8)", "compressed (int8)", "ratio"):
        table.add_column(column, justify="left" if not column else "right")
    for row in report["comparison"]:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        table.add_row(
            row["what"], _cell(row["original"], row["unit"]), _cell(row["compressed"], row["unit"]), ratio
        )
    bench = report.get("bench") or {}
    if bench:
        table.add_row(
            "outputs match the host reference", _matches(report.get("original")), _matches(report), ""
        )
    console.print(table)
    reason = (report.get("original") or {}).get("does_not_fit")
    if reason:
        console.print(f"[yellow]the original does not fit {report['board']}[/yellow]: {reason}")


def _matches(section: Any) -> str:
    bench = _get(section, "bench")
    return f"{bench['matches']}/{bench['samples']}" if bench else "-"
