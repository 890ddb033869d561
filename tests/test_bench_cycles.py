"""The Cortex-M4 timing model behind `tinyrank bench`'s estimated cycles, on hand-made traces."""

from __future__ import annotations

import pytest

from toolchain.bench.cycles import Instruction, base_mnemonic, instruction_cycles, parse_block, replay


def _insn(text: str, address: int = 0x100) -> Instruction:
    mnemonic, _, operands = text.partition(" ")
    name, conditional = base_mnemonic(mnemonic)
    return Instruction(address, 2, name, operands.strip(), conditional)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ldr.w", ("ldr", False)),
        ("bne", ("b", True)),
        ("bls", ("b", True)),
        ("bl", ("bl", False)),
        ("smlad", ("smlad", False)),
        ("smlal", ("smlal", False)),  # ends in "al" but is no conditional "sml"
        ("movgt", ("mov", True)),
        ("ldrhs", ("ldr", True)),  # LDR if higher or same, not LDRH
        ("ldrsb.w", ("ldrsb", False)),
        ("cbz", ("cbz", False)),
    ],
)
def test_mnemonics_lose_width_and_condition(text: str, expected: tuple[str, bool]) -> None:
    assert base_mnemonic(text) == expected


def test_what_each_instruction_costs() -> None:
    load, store, alu = _insn("ldr r3, [r0, #4]"), _insn("str r3, [sp, #4]"), _insn("adds r0, r0, #1")
    assert instruction_cycles(load, alu, False) == (2, "load")
    assert instruction_cycles(load, load, False) == (1, "load")  # pipelined behind a load
    assert instruction_cycles(load, store, False) == (1, "load")
    assert instruction_cycles(store, alu, False) == (1, "store")
    assert instruction_cycles(_insn("str r3, [r0, r1]"), alu, False) == (2, "store")
    assert instruction_cycles(_insn("ldrd r2, r3, [r0]"), alu, False)[0] == 3
    assert instruction_cycles(_insn("push {r4, r5, r6, lr}"), alu, False) == (5, "load/store multiple")
    assert instruction_cycles(_insn("pop {r4-r7, pc}"), alu, True) == (8, "branch")  # 1 + 5 + refill
    assert instruction_cycles(_insn("smlad r0, r1, r2, r0"), alu, False) == (1, "other")
    assert instruction_cycles(_insn("sdiv r0, r1, r2"), alu, False) == (12, "divide")
    assert instruction_cycles(_insn("bne #0x100"), alu, True) == (3, "branch")
    assert instruction_cycles(_insn("bne #0x100"), alu, False) == (1, "branch")


LOOP_LOG = """\
----------------
IN: kernel
0x00000100:  6803       ldr      r3, [r0]
0x00000102:  3801       subs     r0, #1
0x00000104:  d1fc       bne      #0x100

Trace 0: 0x7f0000000100 [00800400/00000100/00000010/ff020200] kernel
Trace 0: 0x7f0000000100 [00800400/00000100/00000010/ff020200] kernel
Trace 0: 0x7f0000000100 [00800400/00000100/00000010/ff020200] kernel
----------------
IN: kernel
0x00000106:  bd10       pop      {r4, pc}

Trace 0: 0x7f0000000200 [00800400/00000106/00000010/ff020200] kernel
"""


def test_replay_counts_taken_and_fallen_through_branches() -> None:
    estimate = replay(LOOP_LOG.splitlines(keepends=True))
    # Three passes of (ldr 2, subs 1, bne): taken twice (3), not taken once (1); then pop {r4, pc}: 1+2+2.
    assert estimate.instructions == 3 * 3 + 1
    assert estimate.cycles == 3 * (2 + 1) + 3 + 3 + 1 + 5
    assert estimate.by_function == {"kernel": [10, estimate.cycles]}
    assert estimate.by_class["branch"] == 3 + 3 + 1 + 5
    assert estimate.cpi == pytest.approx(estimate.cycles / 10)


def test_blocks_parse_thumb2_encodings() -> None:
    block = parse_block(
        [
            "0x000008f8:  e92d 43f0  push.w   {r4, r5, r6, r7, r8, sb, lr}\n",
            "0x000008fc:  2000       movs     r0, #0\n",
        ]
    )
    assert [(i.address, i.size, i.mnemonic) for i in block] == [(0x8F8, 4, "push"), (0x8FC, 2, "movs")]
