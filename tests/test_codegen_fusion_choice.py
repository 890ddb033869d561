"""Which factored layers codegen fuses: each group on its own, where the arena shrinks, or stays
the same and the cost model of the path generated for (a Cortex-M4's for the DSP path, a
Cortex-M3's for the plain C path) predicts the fused call faster by a share of the model's
instructions worth the flash fusing costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolchain.codegen import fusion_choice
from toolchain.codegen.ops.fully_connected import THIN_DEEP_SOURCE


@dataclass
class _Op:
    index: int


@dataclass
class _Item:
    op: _Op


@dataclass
class _Plan:
    fused: frozenset[int]
    arena_bytes: int
    ops: list[_Item] = field(default_factory=list)
    weights_bytes: int = 0


GROUPS = [[_Op(0), _Op(1)], [_Op(2)], [_Op(3), _Op(4)], [_Op(5), _Op(6)], [_Op(7), _Op(8)]]
ARENA = {0: 0, 3: 64, 5: 0, 7: -32}  # arena a fused group adds over the unfused plan


def _lower_and_plan(fuse: bool | frozenset[int]) -> _Plan:
    fused = frozenset(ARENA) if fuse is True else frozenset() if fuse is False else fuse
    ops = [
        _Item(op)
        for group in GROUPS
        for op in (group if min(o.index for o in group) not in fused else group[:1])
    ]
    return _Plan(fused, 1000 + sum(ARENA[i] for i in fused), ops)


@pytest.mark.parametrize("dsp", [True, False])
@pytest.mark.parametrize("pays", [{0, 3, 5}, {5}, set()])
def test_a_group_is_fused_where_the_arena_shrinks_or_it_pays_at_the_same_arena(
    monkeypatch, pays, dsp
) -> None:
    monkeypatch.setattr(fusion_choice.fusion, "schedule", lambda graph, fuse: GROUPS)
    asked = []

    def predicted_instructions(items, on_dsp) -> float:
        assert on_dsp is dsp  # the path generated for
        return 100.0 * len(items)

    def fusing_pays(fused_item, unfused_items, model_instructions, flash_share, on_dsp) -> bool:
        assert flash_share == 0.0  # the same weights, no thin stream
        assert model_instructions == 900.0  # the model, unfused: its 9 ops
        assert on_dsp is dsp
        asked.append((fused_item.op.index, [item.op.index for item in unfused_items]))
        return fused_item.op.index in pays

    monkeypatch.setattr(fusion_choice, "predicted_instructions", predicted_instructions)
    monkeypatch.setattr(fusion_choice, "fusing_pays", fusing_pays)
    chosen = fusion_choice.choose(None, _lower_and_plan, dsp)
    # group 3 would add 64 bytes of arena; group 7 saves 32, so it is fused whatever its speed
    assert chosen.fused == frozenset(pays - {3}) | {7}
    assert chosen.arena_bytes == 1000 - 32
    assert asked == [(0, [0, 1]), (5, [5, 6])]  # only at the same arena, each against its own ops


def test_each_path_asks_its_own_cores_cost_model() -> None:
    """The DSP path's choice asks a Cortex-M4's cost model, the plain C path's a Cortex-M3's."""
    assert fusion_choice._cost_model(True).core == "m4"
    assert fusion_choice._cost_model(False).core == "m3"


@pytest.mark.parametrize("dsp, board", [(True, "nano33"), (False, "qemu_m3")])
def test_choice_is_never_predicted_slower_nor_larger_than_either_plan(
    tmp_path: Path, dsp: bool, board: str
) -> None:
    from benchmarks.mlperf_tiny import build_tflite
    from toolchain.codegen import generate
    from toolchain.firmware.costmodel import load_cost_model

    data, _ = build_tflite("fc_autoencoder_factored", samples=16, rank=16)
    tflite = tmp_path / "factored.tflite"
    tflite.write_bytes(data)
    model = load_cost_model(board)
    plans = {
        fuse: generate(tflite, tmp_path / str(fuse), tflm_arena=False, fuse=fuse, dsp=dsp)
        for fuse in (None, False, True)
    }
    predicted = {fuse: sum(model.predict_ops(info)) for fuse, info in plans.items()}
    assert plans[None]["arena_bytes"] <= min(plans[False]["arena_bytes"], plans[True]["arena_bytes"])
    if plans[None]["arena_bytes"] == plans[False]["arena_bytes"]:
        assert predicted[None] <= predicted[False]
    if plans[True]["arena_bytes"] == plans[None]["arena_bytes"]:  # fusing everything is free
        # each group left apart gives up less than MIN_SAVING of the model's instructions
        groups = len(plans[False]["ops"]) - len(plans[True]["ops"])
        assert predicted[None] - predicted[True] < groups * fusion_choice.MIN_SAVING * predicted[False]


def test_a_saving_too_small_to_notice_does_not_pay_for_the_flash(monkeypatch) -> None:
    monkeypatch.setattr(fusion_choice, "_cost_model", lambda dsp=True: object())
    cost = {"fused": 90.0, "a": 60.0, "b": 50.0, "rest": 4890.0}  # 20 of 5,000 instructions: 0.4%
    monkeypatch.setattr(fusion_choice, "_predicted", lambda model, item: cost[item])
    whole = fusion_choice.predicted_instructions(["a", "b", "rest"])
    assert whole == 5000.0
    assert not fusion_choice.fusing_pays("fused", ["a", "b"], whole)
    cost["rest"] = 890.0  # the same 20 of 1,000: 2%
    whole = fusion_choice.predicted_instructions(["a", "b", "rest"])
    assert fusion_choice.fusing_pays("fused", ["a", "b"], whole)
    cost["fused"] = 111.0  # slower fused
    assert not fusion_choice.fusing_pays("fused", ["a", "b"], whole)


def test_a_saving_smaller_than_the_flash_its_code_costs_does_not_pay(monkeypatch) -> None:
    from types import SimpleNamespace

    def plan(weights: int, thin: bool, deep: bool = False) -> SimpleNamespace:
        fields = {"first_thin": "fc_first_thin" if thin else "NULL", "second_thin": "NULL"}
        extra = (THIN_DEEP_SOURCE,) if deep else ()
        call = SimpleNamespace(params=SimpleNamespace(fields=fields), extra_sources=extra)
        return SimpleNamespace(
            weights_bytes=weights, ops=[SimpleNamespace(call=call), SimpleNamespace(call=None)]
        )

    thin, code = fusion_choice.THIN_CODE_BYTES, fusion_choice.CODE_BYTES  # per path: dsp or not
    apart, fused = plan(6_000, thin=False), plan(7_800, thin=True)
    share = fusion_choice.flash_share(apart, fused)  # the thin loops, brought in by this call
    assert share == pytest.approx(thin[True] / (6_000 + code[True]))
    assert fusion_choice.flash_share(plan(6_000, thin=True), plan(7_800, thin=True)) == 0.0  # linked already
    assert fusion_choice.flash_share(fused, apart) == 0.0
    # a thin layer of more than 128 inputs brings in the deep forms too, once
    deep = plan(7_800, thin=True, deep=True)
    both = thin[True] + fusion_choice.THIN_DEEP_CODE_BYTES
    assert fusion_choice.flash_share(apart, deep) == pytest.approx(both / (6_000 + code[True]))
    deep_only = fusion_choice.THIN_DEEP_CODE_BYTES / (7_800 + code[True])  # thin loops linked
    assert fusion_choice.flash_share(fused, deep) == pytest.approx(deep_only)
    assert fusion_choice.flash_share(deep, plan(9_000, thin=True, deep=True)) == 0.0
    # the plain C path's loops and firmware are smaller (a Cortex-M3's)
    plain = fusion_choice.flash_share(apart, fused, dsp=False)
    assert plain == pytest.approx(thin[False] / (6_000 + code[False]))
    assert plain < share

    monkeypatch.setattr(fusion_choice, "_cost_model", lambda dsp=True: object())
    cost = {"fused": 400.0, "a": 600.0, "b": 500.0}  # 700 of 5,000 instructions: 14%
    monkeypatch.setattr(fusion_choice, "_predicted", lambda model, item: cost[item])
    assert fusion_choice.fusing_pays("fused", ["a", "b"], 5000.0, flash_share=0.10)
    assert not fusion_choice.fusing_pays("fused", ["a", "b"], 5000.0, flash_share=share)  # 17% more flash
