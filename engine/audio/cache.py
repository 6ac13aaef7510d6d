"""Analysis cache: results stored by the hash of the file's content and the analyser's
version and parameters, so a second analysis of the same song is instant and a new
analyser version never serves stale results."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic_files import atomic_write_bytes, atomic_write_text
from engine.audio.decode import AudioSource, file_digest, source_digest
from engine.audio.types import AudioAnalysis, AudioSection, BeatMarker, SpectralFeatures

__all__ = ["AnalysisCache", "file_digest"]

log = logging.getLogger(__name__)

_CURVES = ("rms", "onset", "low", "mid", "high", "centroid")


def _from_dict(data: dict[str, Any], curves: SpectralFeatures | None) -> AudioAnalysis:
    return AudioAnalysis(
        duration=float(data["duration"]),
        tempo=float(data["tempo"]),
        key=str(data["key"]),
        time_signature=str(data["time_signature"]),
        sections=[AudioSection(**s) for s in data["sections"]],
        beats=[BeatMarker(**b) for b in data["beats"]],
        spectral_features=curves,
        sample_rate=int(data["sample_rate"]),
        analyzer_version=str(data["analyzer_version"]),
        warnings=list(data.get("warnings", [])),
        key_confidence=float(data.get("key_confidence", 0.0)),
    )


class AnalysisCache:
    """A folder of ``<key>.json`` (the analysis) and ``<key>.npz`` (its curves)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, audio_path: AudioSource, *, version: str, params: dict[str, Any]) -> str:
        """The entry's name: the hash of the song's content (a file or bytes in memory),
        the analyser's version and its parameters; never the path or the file's date."""
        payload = json.dumps(
            {"content": source_digest(audio_path), "version": version, "params": params},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def load(self, key: str) -> AudioAnalysis | None:
        meta, arrays = self.folder / f"{key}.json", self.folder / f"{key}.npz"
        if not meta.exists():
            return None
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            curves = None
            if arrays.exists():
                with np.load(arrays) as npz:
                    curves = SpectralFeatures(
                        fps=float(npz["fps"]), **{name: npz[name] for name in _CURVES}
                    )
            return _from_dict(data, curves)
        except (OSError, ValueError, KeyError, TypeError) as err:
            # A damaged cache entry is not the user's problem: analyse again.
            log.warning("ignoring damaged analysis cache entry %s (%s)", meta.name, err)
            return None

    def store(self, key: str, analysis: AudioAnalysis) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        curves = analysis.spectral_features
        if curves is not None:
            buffer = io.BytesIO()
            np.savez_compressed(
                buffer, fps=np.float64(curves.fps), **{n: getattr(curves, n) for n in _CURVES}
            )
            atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())
        data = analysis.to_dict(precise=True)
        atomic_write_text(self.folder / f"{key}.json", json.dumps(data))
