"""The keyword-spotting example's data set: a reproducible plan, speaker-disjoint split, clips, MFCC shapes,
and the cache (a tiny set: two clips per class)."""

from __future__ import annotations

import json

import numpy as np

from examples.kws import dataset
from toolchain.data import load_dataset

TINY = dataset.Settings(per_class=2, seed=3)


def test_plan_is_reproducible_and_test_voices_never_train():
    plan = dataset.plan(dataset.Settings(per_class=40))
    assert plan == dataset.plan(dataset.Settings(per_class=40))
    assert {u.label for u in plan} == set(range(len(dataset.LABELS)))
    train_voices = {u.voice for u in plan if not u.test}
    test_voices = {u.voice for u in plan if u.test}
    assert test_voices and not train_voices & test_voices
    assert all((u.word is None) == (dataset.LABELS[u.label] == "silence") for u in plan)
    assert {u.word for u in plan if dataset.LABELS[u.label] == "unknown"} <= set(dataset.UNKNOWN_WORDS)
    assert len({u.noise for u in plan}) == len(dataset.NOISE_KINDS) and len({u.speed for u in plan}) > 20


def test_clips_are_one_second_of_speech_in_noise():
    plan = dataset.plan(TINY)
    pool = dataset.babble(0, count=4)
    word = next(u for u in plan if u.word == "left")
    silence = next(u for u in plan if u.word is None)
    clip = dataset.render(word, pool)
    assert clip.shape == (dataset.CLIP_SAMPLES,) and clip.dtype == np.float32
    assert np.abs(clip).max() <= 1.0 and np.std(clip) > 1e-3
    assert dataset.render(silence, pool).shape == (dataset.CLIP_SAMPLES,)
    features = dataset.mfcc(np.stack([clip, clip * 0.5]))
    assert features.shape == (2, 49, 10) and np.all(np.isfinite(features))


def test_data_set_is_cached_and_remade_when_settings_change(tmp_path):
    path, facts = dataset.load_or_generate(tmp_path / "kws.npz", TINY, workers=2)
    data = load_dataset(path)
    assert data.x_train.shape[1:] == (49, 10, 1) and data.x_test.shape[1:] == (49, 10, 1)
    assert len(data.x_train) + len(data.x_test) == 2 * len(dataset.LABELS) and not facts["cached"]
    assert json.loads(path.with_suffix(".json").read_text())["labels"] == list(dataset.LABELS)
    mtime = path.stat().st_mtime_ns
    assert dataset.load_or_generate(path, TINY)[1]["cached"] and path.stat().st_mtime_ns == mtime
    other = dataset.Settings(per_class=1, seed=3)
    assert not dataset.load_or_generate(path, other)[1]["cached"]
    assert len(load_dataset(path).y_train) + len(load_dataset(path).y_test) == len(dataset.LABELS)
