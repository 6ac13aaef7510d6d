from __future__ import annotations

import numpy as np

from engine.audio.spectral import spectral_curves


def test_curves_follow_the_sound() -> None:
    sr, fps = 22050, 30.0
    y = np.zeros(sr * 6, np.float32)
    t = np.arange(int(0.08 * sr)) / sr
    kick = (np.sin(2 * np.pi * 60 * t) * np.exp(-t * 30)).astype(np.float32)
    rng = np.random.default_rng(0)
    hat = (rng.normal(0, 1, t.size) * np.exp(-t * 80)).astype(np.float32)
    hat = np.diff(hat, prepend=0.0).astype(np.float32)  # high-passed noise
    for second in (1, 2, 3):  # kicks at 1, 2, 3 s; hats at 4 and 5 s
        y[second * sr : second * sr + kick.size] += kick
    for second in (4, 5):
        y[second * sr : second * sr + hat.size] += 0.5 * hat
    curves = spectral_curves(y, sr, fps=fps, duration=6.0)
    assert len(curves) == 180
    onset_peaks = sorted(np.argsort(curves.onset)[-5:])
    assert all(any(abs(p - s * fps) <= 2 for s in (1, 2, 3, 4, 5)) for p in onset_peaks)
    assert curves.at(1.02, "low") > 0.5 and curves.at(4.01, "low") < 0.2
    assert curves.at(4.01, "high") > curves.at(1.02, "high")
    assert curves.at(4.01, "centroid") > curves.at(1.02, "centroid")
    assert curves.at(0.5, "rms") == 0.0
