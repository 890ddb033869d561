"""The compress benchmark's verdicts: each target decided by the rows it names, the keyword
DS-CNN held to the CNN's targets (it has no default-options target)."""

from __future__ import annotations

import pytest

from benchmarks.bench_compress import MODELS, TARGETS, main, mean_rows, verdicts


def row(model: str, budget: float, *, original=0.95, flt=0.95, int8=0.95, baseline=0.94) -> dict:
    return {
        "model": model,
        "target_params": budget,
        "float_original": original,
        "float": flt,
        "int8": int8,
        "baseline_int8": baseline,
    }


def test_every_model_has_targets() -> None:
    assert set(TARGETS["max_drop_down_to"]) == set(MODELS)


def test_all_met() -> None:
    rows = [row("mlp", 0.25), row("cnn", 0.33), row("kws", 0.5), row("kws", 0.3)]
    assert all(v["met"] for v in verdicts(rows).values())


def test_kws_row_below_its_baseline_fails_that_target_only() -> None:
    rows = [row("mlp", 0.25), row("kws", 0.3, int8=0.93)]
    found = verdicts(rows)
    assert found["int8_at_least_baseline"] == {"met": False, "failing": ["kws@0.3"]}
    assert found["int8_within_0.2_points_of_float"]["failing"] == ["kws@0.3"]
    assert found["within_1_point_down_to_10x_mlp_5x_cnn"]["met"]


def test_kws_is_held_to_one_point_down_to_5x_only() -> None:
    rows = [
        row("kws", 0.3, flt=0.93, int8=0.93, baseline=0.9),
        row("kws", 0.1, flt=0.5, int8=0.5, baseline=0.4),
    ]
    found = verdicts(rows)
    assert found["within_1_point_down_to_10x_mlp_5x_cnn"]["failing"] == ["kws@0.3"]
    assert found["defaults_mlp_0.25_cnn_0.33_lose_at_most_0.5_points"]["met"]


def test_default_options_target_reads_only_its_budget() -> None:
    rows = [row("cnn", 0.33, flt=0.944), row("cnn", 0.3, flt=0.93, int8=0.93, baseline=0.9)]
    assert verdicts(rows)["defaults_mlp_0.25_cnn_0.33_lose_at_most_0.5_points"]["failing"] == ["cnn@0.33"]


def test_unknown_model_is_refused(capsys) -> None:
    try:
        main(["--models", "resnet"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("--models resnet was accepted")
    assert "invalid choice" in capsys.readouterr().err


def test_verdicts_read_the_mean_over_seeds() -> None:
    # seed 0 below its baseline, seed 1 above by more: the mean meets the target, the worst seed shows a miss
    rows = [
        {**row("mlp", 0.1, int8=0.93, baseline=0.94), "seed": 0},
        {**row("mlp", 0.1, int8=0.96, baseline=0.94), "seed": 1},
    ]
    assert verdicts(rows)["int8_at_least_baseline"]["met"]
    (mean,) = mean_rows(rows)
    assert mean["seeds"] == 2
    assert abs(mean["int8"] - 0.945) < 1e-12
    assert abs(mean["int8_gap_min"] + 0.01) < 1e-12
    rows[1]["int8"] = 0.94
    assert verdicts(rows)["int8_at_least_baseline"]["failing"] == ["mlp@0.1"]


def test_seeds_must_be_positive(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--seeds", "0"])
    assert stopped.value.code == 2
    assert "at least 1" in capsys.readouterr().err
