"""A synthetic keyword-spotting data set: espeak-ng speech, noise, MFCCs, one cached `.npz`.

The task is MLPerf Tiny's keyword spotting: ten keywords, "unknown" (other words) and
"silence" (noise only), 1 s of 16 kHz audio as 49x10 MFCC features. The speech is
synthesized offline by espeak-ng (not human speech): many accents and voice variants, at
random speeds, pitches and amplitudes, shifted in time and mixed with generated background
noise (white, pink, brown, mains hum, babble of other words) at random signal-to-noise
ratios, so the classes overlap and the task is not trivial. Train and test use different
voices (a fixed, seeded split), so the test accuracy is that of voices the model never heard.

The `.npz` follows tinyrank's data contract (x_train, y_train, x_test, y_test), plus
`labels` and `generator` (the settings that made it: a file made with other settings is
made again, never silently reused).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LABELS = (*KEYWORDS, "unknown", "silence")
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero", "one",
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "learn", "follow", "forward",
    "backward", "visual", "know", "top", "dune", "light", "bright", "goal", "yet",
)  # fmt: skip
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
    "en-us-nyc",
)  # fmt: skip
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "klatt",
    "klatt2", "klatt3", "grandma", "grandpa", "Alex", "Andy", "belinda", "david", "linda", "max",
    "steph", "travis", "victor", "whisper", "Annie",
)  # fmt: skip
TEST_VARIANTS = ("m4", "f3", "klatt2", "grandma", "linda", "travis")  # voices the model never trains on

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
# MLPerf Tiny keyword spotting: 30 ms windows every 20 ms, 40 mel bands from 20 Hz to 4 kHz, 10 MFCCs.
FRAME_LENGTH, FRAME_STEP, FFT_LENGTH = 480, 320, 512
MEL_BINS, MEL_LOW_HZ, MEL_HIGH_HZ, MFCC_COUNT = 40, 20.0, 4000.0, 10
FRAMES = 1 + (CLIP_SAMPLES - FRAME_LENGTH) // FRAME_STEP  # 49
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
SYNTH_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Settings:
    """Everything that decides the data set's content; stored in the file and checked on reuse."""

    per_class: int = 400
    snr_db: tuple[float, float] = (0.0, 20.0)
    seed: int = 0
    version: int = 1


@dataclass(frozen=True)
class Utterance:
    """One clip to make: the word (None for silence), the voice and how it is spoken and mixed."""

    label: int
    word: str | None
    voice: str
    speed: int
    pitch: int
    amplitude: int
    shift: float  # where the word starts, as a fraction of the room left in the clip
    noise: str
    snr_db: float
    noise_seed: int
    test: bool


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed: run `make setup` (or `apt-get install espeak-ng`) first"
        )
    return path


def synthesize(word: str, voice: str, speed: int, pitch: int, amplitude: int) -> np.ndarray:
    """The word spoken by espeak-ng, as float32 samples at 16 kHz in [-1, 1]."""
    from scipy.signal import resample_poly

    result = subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude), "--stdout"],
        input=word.encode(),
        capture_output=True,
        timeout=SYNTH_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0 or len(result.stdout) < 44:
        raise RuntimeError(
            f"espeak-ng -v {voice} failed on '{word}': {result.stderr.decode(errors='replace')}"
        )
    with wave.open(io.BytesIO(result.stdout)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        divisor = np.gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)
    return audio


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of one kind (white, pink, brown or mains hum); babble is made from speech."""
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        mains = rng.choice((50.0, 60.0))
        hum = sum(
            rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.3))
            for h in (1, 2, 3, 5)
        )
        noise = hum + 0.05 * rng.standard_normal(n)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 1.0)
        exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
        noise = np.fft.irfft(spectrum / freqs**exponent, n)
    noise = np.asarray(noise, dtype=np.float64)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def _place(audio: np.ndarray, shift: float) -> np.ndarray:
    """The speech inside a 1 s clip, starting `shift` of the way into the room left (cropped if longer)."""
    trimmed = _trim(audio)[:CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    start = int(shift * (CLIP_SAMPLES - len(trimmed)))
    clip[start : start + len(trimmed)] = trimmed
    return clip


def _trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold * (np.abs(audio).max() + 1e-12))
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio


def mix(speech: np.ndarray | None, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Speech plus noise at `snr_db` (speech power over its active part), scaled to a random level."""
    if speech is None:
        clip = noise * rng.uniform(0.001, 0.3)
    else:
        active = np.abs(speech) > 1e-4
        power = float(np.mean(speech[active] ** 2)) if active.any() else 1e-8
        clip = speech + noise * np.sqrt(power / 10 ** (snr_db / 10))
    peak = float(np.abs(clip).max()) + 1e-9
    level = rng.uniform(0.05, 0.95) if speech is not None else 1.0
    clip = clip * (level / peak) if speech is not None else clip
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def plan(settings: Settings) -> list[Utterance]:
    """Every clip of the data set, decided up front from the seed (so the set is reproducible)."""
    rng = np.random.default_rng(settings.seed)
    voices = [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]
    utterances = []
    for label, name in enumerate(LABELS):
        for _ in range(settings.per_class):
            voice = str(rng.choice(voices))
            if name == "silence":
                word = None
            elif name == "unknown":
                word = str(rng.choice(UNKNOWN_WORDS))
            else:
                word = name
            utterances.append(
                Utterance(
                    label=label,
                    word=word,
                    voice=voice,
                    speed=int(rng.integers(110, 230)),
                    pitch=int(rng.integers(15, 85)),
                    amplitude=int(rng.integers(40, 200)),
                    shift=float(rng.uniform()),
                    noise=str(rng.choice(NOISE_KINDS)),
                    snr_db=float(rng.uniform(*settings.snr_db)),
                    noise_seed=int(rng.integers(2**31)),
                    test=voice.split("+")[1] in TEST_VARIANTS,
                )
            )
    return utterances


def render(utterance: Utterance, babble_pool: list[np.ndarray]) -> np.ndarray:
    """One 1 s clip of an utterance: synthesized, placed, and mixed with its noise."""
    rng = np.random.default_rng(utterance.noise_seed)
    speech = None
    if utterance.word is not None:
        audio = synthesize(
            utterance.word, utterance.voice, utterance.speed, utterance.pitch, utterance.amplitude
        )
        speech = _place(audio, utterance.shift)
    if utterance.noise == "babble":
        picks = rng.choice(len(babble_pool), size=3, replace=False)
        babble = sum(np.roll(babble_pool[i], int(rng.integers(CLIP_SAMPLES))) for i in picks)
        noise = babble / (np.sqrt(np.mean(babble**2)) + 1e-12)
    else:
        noise = colored_noise(utterance.noise, CLIP_SAMPLES, rng)
    return mix(speech, noise.astype(np.float32), utterance.snr_db, rng)


def babble(seed: int, count: int = 24) -> list[np.ndarray]:
    """Clips of unrelated words in many voices, mixed as background chatter."""
    rng = np.random.default_rng(seed + 1)
    words = ("weather", "tomorrow", "station", "kitchen", "music", "window", "morning", "coffee")
    pool = []
    for i in range(count):
        voice = f"{ACCENTS[i % len(ACCENTS)]}+{VARIANTS[(i * 7) % len(VARIANTS)]}"
        phrase = " ".join(rng.choice(words, size=3))
        pool.append(_place(synthesize(phrase, voice, int(rng.integers(140, 200)), 50, 100), 0.5))
    return pool


def mfcc(clips: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, 16000) float waveforms -> (N, 49, 10) MFCCs, MLPerf Tiny's keyword-spotting features."""
    import tensorflow as tf

    weights = tf.signal.linear_to_mel_weight_matrix(
        MEL_BINS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, MEL_LOW_HZ, MEL_HIGH_HZ
    )
    out = []
    for start in range(0, len(clips), batch):
        stft = tf.signal.stft(tf.constant(clips[start : start + batch]), FRAME_LENGTH, FRAME_STEP, FFT_LENGTH)
        mel = tf.tensordot(tf.abs(stft), weights, 1)
        log_mel = tf.math.log(mel + 1e-6)
        out.append(tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :MFCC_COUNT].numpy())
    return np.concatenate(out).astype(np.float32)


def generate(
    settings: Settings, workers: int = 2, progress: Callable[[int, int], None] | None = None
) -> dict[str, np.ndarray]:
    """All clips rendered and turned into features: the arrays of the `.npz`."""
    utterances = plan(settings)
    pool = babble(settings.seed)
    clips = np.zeros((len(utterances), CLIP_SAMPLES), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=workers) as executor:  # espeak-ng runs as a child: threads suffice
        for done, (i, clip) in enumerate(
            executor.map(lambda item: (item[0], render(item[1], pool)), enumerate(utterances)), 1
        ):
            clips[i] = clip
            if progress is not None:
                progress(done, len(utterances))
    features = mfcc(clips)[..., None]
    labels = np.array([u.label for u in utterances], dtype=np.int64)
    test = np.array([u.test for u in utterances])
    order = np.random.default_rng(settings.seed + 2).permutation(len(utterances))
    train_idx, test_idx = order[~test[order]], order[test[order]]
    return {
        "x_train": features[train_idx],
        "y_train": labels[train_idx],
        "x_test": features[test_idx],
        "y_test": labels[test_idx],
    }


def load_or_generate(
    path: Path, settings: Settings = Settings(), workers: int = 2, progress=None
) -> tuple[Path, dict]:
    """The data set at `path`, made (and cached) only if missing or made with other settings.

    The settings, labels and facts live beside it in `<name>.json` (the `.npz` holds only the
    arrays of tinyrank's data contract). Returns the path and those facts.
    """
    from toolchain.fileio import atomic_write_bytes, atomic_write_text

    path = Path(path)
    sidecar = path.with_suffix(".json")
    wanted = asdict(settings)
    if path.is_file() and sidecar.is_file():
        try:
            facts = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            facts = {}
        if facts.get("settings") == json.loads(json.dumps(wanted)):
            return path, {**facts, "cached": True}
    start = time.perf_counter()
    arrays = generate(settings, workers, progress)
    seconds = time.perf_counter() - start
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    facts = {
        "settings": wanted,
        "labels": list(LABELS),
        "train": int(len(arrays["y_train"])),
        "test": int(len(arrays["y_test"])),
        "feature_shape": list(arrays["x_train"].shape[1:]),
        "seconds": round(seconds, 1),
        "workers": workers,
    }
    atomic_write_text(sidecar, json.dumps(facts, indent=2) + "\n")
    return path, {**facts, "cached": False}
