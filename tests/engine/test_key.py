"""Tests of key estimation on synthesized songs whose key is known."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.key import estimate_key
from engine.audio.synth import SectionSpec, SongSpec, parse_key, synthesize_song

SR = 22050

# Both modes, sharps and flats, the synthesizer's kick tuned to each tonic (41..78 Hz).
KEYS = ("A minor", "C major", "Eb major", "F# minor", "B major", "D minor")


def song(key: str, seed: int) -> np.ndarray:
    """A 12-bar song at 120 BPM (about 26 s): intro, verse, chorus."""
    spec = SongSpec(
        tempo=120.0,
        key=key,
        seed=seed,
        sample_rate=SR,
        sections=(
            SectionSpec(label="intro", bars=2, energy=0.2),
            SectionSpec(label="verse", bars=6, energy=0.55),
            SectionSpec(label="chorus", bars=4, energy=0.9),
        ),
    )
    return synthesize_song(spec).audio.mean(axis=0)


@pytest.fixture(scope="module")
def estimates() -> dict[str, tuple[str, float]]:
    return {key: estimate_key(song(key, seed), SR) for seed, key in enumerate(KEYS)}


@pytest.mark.parametrize("key", KEYS)
def test_the_key_is_found(estimates: dict[str, tuple[str, float]], key: str) -> None:
    name, confidence = estimates[key]
    assert parse_key(name)[:2] == parse_key(key)[:2], f"{key}: estimated {name}"
    assert 0.0 < confidence <= 1.0


def test_confidence_is_lower_for_ambiguous_material() -> None:
    """A lone fifth (A and E) fits A major and A minor alike: less sure than a full song."""
    t = np.arange(8 * SR) / SR
    fifth = 0.2 * (np.sin(2 * np.pi * 220.0 * t) + np.sin(2 * np.pi * 329.63 * t))
    _, ambiguous = estimate_key(fifth.astype(np.float32), SR)
    _, clear = estimate_key(song("A minor", 0), SR)
    assert ambiguous < clear


def test_silence_is_unknown() -> None:
    assert estimate_key(np.zeros(4 * SR, dtype=np.float32), SR) == ("unknown", 0.0)
    assert estimate_key(np.zeros(0, dtype=np.float32), SR) == ("unknown", 0.0)
