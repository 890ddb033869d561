"""Choosing ranks by training: where the whole-model error before fine-tuning stops ranking choices.

Far from the original (a joint output error of 0.1 and more) the error `search.joint_search`
minimizes no longer predicts accuracy after fine-tuning: the digits MLP at a tenth of its size
ends at 96.7% with ranks 5/6/5 and at 98.1% with 6/4/8. Here choices are scored by the held-out
loss after a short fine-tune instead: first the search's choice against other starting points
(`uniform_width`: one width for every factored layer, as a small dense model has), then
one-up-one-down rank moves from the best of them, taken while that loss falls.
"""

from __future__ import annotations

from collections.abc import Callable

from toolchain.compress.budget import Candidate
from toolchain.compress.search import candidate_size, overage

TRAINED_ROUNDS = 3  # hill-climbing steps of the trained repair (each fine-tunes every move once)
TRAINED_MIN_GAIN = 0.02  # a move must lower the held-out loss by 2% (less is within run-to-run noise)
# Trials (short fine-tunes) the trained repair may spend: a 6-layer DS-CNN has 30 moves a round, and
# at ~25 s a trial on 2 cores three full rounds took longer than everything else in compress.
TRAINED_MAX_TRIALS = 12


def trained_repair(
    choice: dict[str, Candidate],
    steps: Callable[[str, Candidate], list[Candidate]],
    limits: dict[str, float],
    fixed: dict[str, float],
    held_out_loss: Callable[[dict[str, Candidate]], float],
    rounds: int = TRAINED_ROUNDS,
    max_trials: int = TRAINED_MAX_TRIALS,
    alternatives: dict[str, dict[str, Candidate]] | None = None,
) -> tuple[dict[str, Candidate], dict]:
    """Move size between two layers while the held-out loss after a short fine-tune falls.

    `steps(layer, candidate)` gives the candidates one rank step above and below it (finer
    than the search's grid: at a tenth of the size one grid step of the first layer costs
    what three ranks of the last one do). `held_out_loss(choice)` builds the model of a
    choice, fine-tunes it briefly and returns its loss on held-out samples (never the test
    split). Every move keeps every limit. `alternatives` are other starting points, by label
    (`uniform_width`): the hill climb starts from the one that trained best, since one-rank
    steps cannot climb from a crushed layer back to a balanced choice within a few trials.
    The result is the start unless a move measured better by TRAINED_MIN_GAIN; what was
    measured is returned for the report. At most `max_trials` moves are trained (the best of
    those measured in a cut-short round still counts).
    """
    start = _key(choice)
    scores = {start: held_out_loss(choice)}
    ranks = {start: _ranks(choice)}
    starts = [{"from": "search", "ranks": ranks[start], "held_out_loss": scores[start]}]
    started_from = "search"
    for label, other in (alternatives or {}).items():
        key = _key(other)
        if key not in scores:
            scores[key], ranks[key] = held_out_loss(other), _ranks(other)
        starts.append({"from": label, "ranks": ranks[key], "held_out_loss": scores[key]})
        if scores[key] < scores[_key(choice)] * (1 - TRAINED_MIN_GAIN):
            choice, started_from = other, label
    moves = []
    for _ in range(rounds):
        current = scores[_key(choice)]
        best = None
        for trial in _moves(choice, steps, limits, fixed):
            key = _key(trial)
            if key not in scores:
                if len(scores) > max_trials:
                    continue
                scores[key], ranks[key] = held_out_loss(trial), _ranks(trial)
            if scores[key] < current * (1 - TRAINED_MIN_GAIN) and (best is None or scores[key] < best[0]):
                best = (scores[key], trial)
        if best is None:
            break
        moves.append({"ranks": _ranks(best[1]), "held_out_loss": best[0], "from": current})
        choice = best[1]
    return choice, {
        "trials": len(scores),
        "start_held_out_loss": scores[start],
        "starts": starts,
        "started_from": started_from,
        "moves": moves,
        "held_out_loss": scores[_key(choice)],
        "measured": [{"ranks": ranks[key], "held_out_loss": loss} for key, loss in scores.items()],
    }


def uniform_width(
    at_width: Callable[[int], dict[str, Candidate]],
    limits: dict[str, float],
    fixed: dict[str, float],
    widest: int,
) -> tuple[int, dict[str, Candidate]] | None:
    """The widest choice `at_width(w)` that keeps every limit: every factored layer narrowed to
    the same width w, as a dense model trained small is. None if no width fits.

    At a tenth of the size the whole-model error before fine-tuning no longer ranks choices (a
    keyword DS-CNN at 0.3 of its parameters: the search's ranks 4/6/16/6/3/2 end at 51% after
    fine-tuning, one width of 6 everywhere at 72%), so this is a second start for
    `trained_repair`, chosen by measurement there."""
    for width in range(widest, 0, -1):
        choice = at_width(width)
        if overage(choice, limits, fixed) == 0:
            return width, choice
    return None


def _moves(choice, steps, limits, fixed) -> list[dict[str, Candidate]]:
    """Every choice with one layer a step bigger and another lowered just enough to fit."""
    found = []
    for up in choice:
        for bigger in (
            c for c in steps(up, choice[up]) if candidate_size(c, limits) > candidate_size(choice[up], limits)
        ):
            raised = dict(choice, **{up: bigger})
            if overage(raised, limits, fixed) == 0:
                found.append(raised)
                continue
            for down in choice:
                if down != up and (trial := _lower_until_fit(raised, down, steps, limits, fixed)) is not None:
                    found.append(trial)
    return found


def _lower_until_fit(choice, name, steps, limits, fixed, most: int = 8) -> dict[str, Candidate] | None:
    """`choice` with layer `name` lowered step by step until every limit holds (None: it cannot be)."""
    cand = choice[name]
    for _ in range(most):
        smaller = [c for c in steps(name, cand) if candidate_size(c, limits) < candidate_size(cand, limits)]
        if not smaller:
            return None
        cand = max(smaller, key=lambda c: candidate_size(c, limits))
        trial = dict(choice, **{name: cand})
        if overage(trial, limits, fixed) == 0:
            return trial
    return None


def _key(choice: dict[str, Candidate]) -> tuple:
    return tuple((name, choice[name].method, choice[name].ranks) for name in sorted(choice))


def _ranks(choice: dict[str, Candidate]) -> dict[str, list[int] | None]:
    return {name: (list(c.ranks) if c.method else None) for name, c in choice.items()}
