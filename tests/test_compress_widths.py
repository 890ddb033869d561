"""Widths in the rank search: bottlenecks against the layers beside them in the model (depthwise
ones included), and one width for every factored layer as a second start for the trained repair."""

from __future__ import annotations

import pytest

from toolchain.compress.budget import Candidate
from toolchain.compress.search import BOTTLENECK_RATIO, Width, bottleneck_rows, width_of


def _svd(rank: int, per_rank: int = 1) -> Candidate:
    return Candidate("svd", (rank,), float("nan"), rank * per_rank, 0, rank * per_rank)


KEPT = Candidate(None, (), 0.0, 100, 0, 100)


def _ds_cnn_widths() -> dict[str, Width]:
    """conv_1 (10x4 over one channel, 64 out), dw_1, pw_1, dw_2, pw_2, classes (64 -> 12)."""
    return {
        "conv_1": Width(40, {"tucker": (1, 64), "cp": (40,)}),
        "dw_1": Width(64),
        "pw_1": Width(64, {"svd": (64,), "seminmf": (64,)}),
        "dw_2": Width(64),
        "pw_2": Width(64, {"svd": (64,), "seminmf": (64,)}),
        "classes": Width(12, {"svd": (12,), "seminmf": (12,)}),
    }


def test_a_factor_at_its_largest_rank_narrows_nothing():
    widths = _ds_cnn_widths()
    tucker = Candidate("tucker", (1, 8), float("nan"), 0, 0, 0)
    assert width_of(tucker, widths["conv_1"]) == 8  # the input rank is the one input channel
    assert width_of(Candidate("tucker", (1, 80), float("nan"), 0, 0, 0), widths["conv_1"]) == 40
    assert width_of(_svd(6), widths["pw_1"]) == 6
    assert width_of(KEPT, widths["pw_1"]) == 64 and width_of(None, widths["dw_1"]) == 64


def test_a_pointwise_rank_is_a_bottleneck_against_the_depthwise_layers_beside_it():
    widths = _ds_cnn_widths()
    # each factored layer is as wide as the factored one next to it in the table, so a check that
    # skipped the depthwise layers would find no bottleneck here
    choice = {
        "conv_1": Candidate("tucker", (1, 6), float("nan"), 0, 0, 0),
        "pw_1": _svd(6),
        "pw_2": _svd(6),
        "classes": _svd(6),
    }
    rows = {row["layer"]: row for row in bottleneck_rows(choice, widths, "measured")}
    # pw_2 is no narrower than the classifier after it, and the classifier not than pw_2
    assert set(rows) == {"conv_1", "pw_1"}
    assert rows["pw_1"]["neighbour_widths"] == [64, 64] and rows["pw_1"]["width"] == 6
    assert rows["conv_1"]["neighbour_widths"] == [64]
    wide = dict(choice, pw_1=_svd(int(BOTTLENECK_RATIO * 64)))
    assert "pw_1" not in {row["layer"] for row in bottleneck_rows(wide, widths, "measured")}
    kept = dict(choice, pw_1=KEPT)
    assert "pw_1" not in {row["layer"] for row in bottleneck_rows(kept, widths, "measured")}


def test_layer_widths_of_a_depthwise_separable_model_list_every_layer_in_order():
    import keras

    from toolchain.compress.plan import describe_model, layer_widths

    inputs = keras.Input((12, 8, 1))
    x = keras.layers.Conv2D(16, (5, 4), padding="same", name="conv_1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw_1")(x)
    x = keras.layers.Conv2D(16, 1, name="pw_1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, name="classes")(x)
    widths = layer_widths(describe_model(keras.Model(inputs, outputs)))
    assert list(widths) == ["conv_1", "dw_1", "pw_1", "classes"]
    assert widths["conv_1"].full == 16 and widths["conv_1"].tops["tucker"] == (1, 16)
    assert widths["dw_1"].full == 16 and widths["dw_1"].tops == {}
    assert widths["pw_1"].tops["svd"] == (16,) and widths["classes"].full == 5


def _at_width(width: int) -> dict[str, Candidate]:
    return {"a": _svd(min(width, 20), 10), "b": _svd(min(width, 8), 4)}


def test_uniform_width_is_the_widest_that_keeps_every_limit():
    from toolchain.compress.trained_search import uniform_width

    found = uniform_width(_at_width, {"params": 14 * 5 + 3}, {"params": 0}, 20)
    assert found is not None
    width, choice = found
    assert width == 5 and choice["a"].ranks == (5,) and choice["b"].ranks == (5,)
    # layer b tops out at 8: above that only layer a grows
    assert uniform_width(_at_width, {"params": 10 * 9 + 4 * 8}, {"params": 0}, 20)[0] == 9
    assert uniform_width(_at_width, {"params": 10}, {"params": 0}, 20) is None
    assert uniform_width(_at_width, {"params": 14 * 5}, {"params": 14}, 20)[0] == 4  # fixed costs count


@pytest.mark.parametrize("better", [True, False])
def test_trained_repair_starts_from_an_alternative_only_when_it_trains_clearly_better(better):
    from toolchain.compress.trained_search import TRAINED_MIN_GAIN, trained_repair

    search_choice, balanced = _at_width(3) | {"a": _svd(1, 10)}, _at_width(3)
    margin = 0.5 if better else TRAINED_MIN_GAIN / 2

    def loss(choice: dict[str, Candidate]) -> float:
        return 1.0 - margin if choice == balanced else 1.0

    def no_steps(name: str, cand: Candidate) -> list[Candidate]:
        return []

    chosen, info = trained_repair(
        search_choice,
        no_steps,
        {"params": 100},
        {"params": 0},
        loss,
        alternatives={"one width of 3": balanced},
    )
    assert [s["from"] for s in info["starts"]] == ["search", "one width of 3"]
    assert info["starts"][1]["held_out_loss"] == pytest.approx(1.0 - margin)
    assert (chosen is balanced) == better
    assert info["started_from"] == ("one width of 3" if better else "search")
    assert info["trials"] == 2
