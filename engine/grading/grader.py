"""The four-stage colour grader.

A :class:`ColorGrader` holds the settings of the four stages and grades 8-bit RGB frames:

1. **primary** (:mod:`engine.grading.primary`): exposure, contrast, brightness,
   saturation, lift/gamma/gain, temperature/tint;
2. **secondary** (:mod:`engine.grading.secondary`): HSL qualifier with soft edges and a
   hue-vs-saturation curve;
3. **look** (:mod:`engine.grading.lut`): a ``.cube`` LUT (a file, or the name of a look
   shipped in ``resources/looks/``) with ``strength`` and interpolation;
4. **finishing** (:mod:`engine.grading.finishing`): halation, bloom, vignette, grain,
   letterbox.

Working space: float32 RGB, 0..1, sRGB-encoded display values; exposure and white
balance decode to linear light and back (see :mod:`engine.grading.primary`).
:meth:`ColorGrader.grade_float` runs the stages exactly in that space.

:meth:`ColorGrader.grade` gives the same picture faster: stages 1 to 3 are colour
functions of the pixel alone, so they are *compiled* once per setting into (a) three
256-entry per-channel curves for everything in stage 1 but saturation, applied with
``cv2.LUT``, and (b) one :class:`~engine.grading.lut.PackedCube` for the rest
(saturation, secondary, look), or a plain 3x3 matrix when saturation is all there is.
Compiling takes about a second when a cube is needed; a grading frame then costs one
table gather.  Compiled cubes (64 MiB each) are shared between graders with the same
settings in a small LRU cache (:data:`CUBE_CACHE_SIZE`).  Stage 4 runs per frame in
float32.  With nothing set, :meth:`grade` returns the very frame it was given.

Grades per shot, per section or globally: give each its own grader and combine them
with :meth:`ColorGrader.over`; a stage set on the narrower grade wins.

Example
-------
>>> grader = ColorGrader()
>>> grader.set_primary_correction(exposure=0.3, contrast=58, brightness=50, saturation=55)
>>> grader.apply_stage(4, {"vignette": {"amount": 0.25}, "letterbox": {"aspect": 2.39}})
True
>>> sorted(grader.to_dict())
['finishing', 'primary', 'schema']
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ParameterError
from engine.grading.finishing import (
    EFFECTS,
    FinishingSettings,
    apply_finishing,
    finish_in_place,
)
from engine.grading.lut import INTERPOLATIONS, Lut, PackedCube, apply_lut, load_cube
from engine.grading.params import reject_unknown_keys
from engine.grading.primary import PrimaryCorrection, apply_primary, saturation_matrix
from engine.grading.secondary import SecondaryCorrection, apply_secondary
from engine.resources import resources_dir

__all__ = [
    "CUBE_CACHE_SIZE",
    "LOOKS_DIR",
    "STAGES",
    "ColorGrader",
    "LookSettings",
    "shipped_looks",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STAGES: dict[int, str] = {1: "primary", 2: "secondary", 3: "look", 4: "finishing"}
LOOKS_DIR = resources_dir("looks")
CUBE_CACHE_SIZE = 3
# Stages 1-3 together are evaluated on every 3rd 8-bit level (86^3 points) and
# interpolated in between: a second instead of several, within 1/255 of exact.
COMPOSITE_STEP = 3


def shipped_looks() -> dict[str, Path]:
    """The looks in ``resources/looks/``, by name (file name without ``.cube``)."""
    if not LOOKS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(LOOKS_DIR.glob("*.cube"))}


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> Lut:
    return load_cube(path)


@dataclass(frozen=True, kw_only=True)
class LookSettings:
    """Stage 3 settings.

    Attributes
    ----------
    lut : str
        A ``.cube`` path, or the name of a shipped look (``"teal-orange"``...).
    strength : float
        0..1 blend between the input and the look.
    interpolation : {"trilinear", "tetrahedral"}
        How the table is interpolated.
    """

    lut: str
    strength: float = 1.0
    interpolation: str = "trilinear"

    def __post_init__(self) -> None:
        if not isinstance(self.lut, str | Path) or not str(self.lut):
            raise ParameterError("lut", self.lut, "a .cube path or a look name")
        object.__setattr__(self, "lut", str(self.lut))
        if isinstance(self.strength, bool) or not isinstance(self.strength, int | float):
            raise ParameterError("strength", self.strength, "a number in 0.0..1.0")
        if not (0.0 <= self.strength <= 1.0):
            raise ParameterError("strength", self.strength, "0.0..1.0")
        object.__setattr__(self, "strength", float(self.strength))
        if self.interpolation not in INTERPOLATIONS:
            raise ParameterError("interpolation", self.interpolation, " or ".join(INTERPOLATIONS))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LookSettings:
        """Build from a dict, rejecting unknown keys with :class:`ParameterError`."""
        reject_unknown_keys(cls, values, "look key")
        if "lut" not in values:
            raise ParameterError("lut", None, "a .cube path or a look name")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @property
    def path(self) -> Path:
        """The ``.cube`` file: a shipped look's when ``lut`` names one, else ``lut`` itself."""
        looks = shipped_looks()
        if self.lut in looks:
            return looks[self.lut]
        return Path(self.lut).expanduser()

    def load(self) -> Lut:
        """Parse (or fetch from a cache keyed by path, mtime and size) the table.

        Raises
        ------
        MediaInputError, LutParseError
            The file is missing or malformed.
        """
        path = self.path
        try:
            stat = path.stat()
        except OSError:
            return load_cube(path)  # raises the typed "not found / unreadable" error
        return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


# --------------------------------------------------------------------------- compiling


class _CubeCache:
    """A small thread-safe LRU of compiled cubes shared by every grader."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Any, PackedCube] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, build: Callable[[], PackedCube]) -> PackedCube:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            cube = build()
            self._items[key] = cube
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
            return cube

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CUBES = _CubeCache(CUBE_CACHE_SIZE)


@dataclass(frozen=True)
class _Compiled:
    curves: np.ndarray | None  # (256, 1, 3) uint8 for cv2.LUT
    matrix: np.ndarray | None  # 3x3 float32 for cv2.transform
    cube: PackedCube | None


def _curves_table(values: np.ndarray, *, exact: bool = False) -> np.ndarray:
    """``cv2.LUT`` table: uint8, or float32 in 0..255 (``exact``) for a matrix to follow."""
    if exact:
        return np.ascontiguousarray((values * 255.0).astype(np.float32).reshape(256, 1, 3))
    table = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(table.reshape(256, 1, 3))


# --------------------------------------------------------------------------- grader


class ColorGrader:
    """The four grading stages and their settings.

    Parameters
    ----------
    primary, secondary, look, finishing : optional
        Initial settings of each stage (``None``: neutral / off).

    Notes
    -----
    A grader can be shared between threads for :meth:`grade`; change its settings from
    one thread only.
    """

    def __init__(
        self,
        *,
        primary: PrimaryCorrection | None = None,
        secondary: SecondaryCorrection | None = None,
        look: LookSettings | None = None,
        finishing: FinishingSettings | None = None,
    ) -> None:
        self._primary = primary or PrimaryCorrection()
        self._secondary = secondary or SecondaryCorrection()
        self._look = look
        self._lut: Lut | None = look.load() if look is not None else None
        self._finishing = finishing or FinishingSettings()
        self._compiled: _Compiled | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- settings

    @property
    def primary(self) -> PrimaryCorrection:
        """Stage 1 settings."""
        return self._primary

    @property
    def secondary(self) -> SecondaryCorrection:
        """Stage 2 settings."""
        return self._secondary

    @property
    def look(self) -> LookSettings | None:
        """Stage 3 settings (``None``: no look)."""
        return self._look

    @property
    def finishing(self) -> FinishingSettings:
        """Stage 4 settings."""
        return self._finishing

    @property
    def is_identity(self) -> bool:
        """True when no stage changes anything: :meth:`grade` returns its input as is."""
        return (
            self._primary.is_identity
            and self._secondary.is_identity
            and (self._look is None or self._look.strength == 0.0)
            and self._finishing.is_identity
        )

    def _changed(self) -> None:
        self._compiled = None

    def set_primary_correction(
        self, exposure: float, contrast: float, brightness: float, saturation: float
    ) -> None:
        """Set the four main primary controls (other primary settings are kept).

        Parameters
        ----------
        exposure : float
            -2.0..2.0 stops; linear light times ``2 ** exposure``.
        contrast, brightness, saturation : float
            0..100 with 50 neutral: contrast slope ``contrast / 50`` around mid grey;
            brightness offset ``(brightness - 50) / 200``; chroma ``saturation / 50``.

        Raises
        ------
        ParameterError
            A value is out of range.
        """
        self.apply_stage(
            1,
            {
                "exposure": exposure,
                "contrast": contrast,
                "brightness": brightness,
                "saturation": saturation,
            },
        )

    def apply_lut(
        self, lut_path: Path | str, strength: float = 1.0, *, interpolation: str = "trilinear"
    ) -> bool:
        """Use a ``.cube`` file (or a shipped look's name) as the stage 3 look.

        Returns
        -------
        bool
            True once the look is set (every failure raises).

        Raises
        ------
        MediaInputError
            The file is missing or unreadable.
        LutParseError
            The file is malformed (the message names the line).
        ParameterError
            ``strength`` is outside 0..1 or ``interpolation`` is unknown.
        """
        return self.apply_stage(
            3, {"lut": str(lut_path), "strength": strength, "interpolation": interpolation}
        )

    def add_finishing_effect(self, effect_name: str, parameters: Mapping[str, Any]) -> bool:
        """Turn on (or re-set) one finishing effect: defaults plus ``parameters``.

        ``effect_name`` is one of ``halation``, ``bloom``, ``vignette``, ``grain``,
        ``letterbox``; see :mod:`engine.grading.finishing` for their parameters.

        Returns
        -------
        bool
            True once the effect is set (every failure raises).

        Raises
        ------
        ParameterError
            Unknown effect or parameter, or a value out of range.
        """
        if effect_name not in EFFECTS:
            raise ParameterError("effect_name", effect_name, "one of " + ", ".join(EFFECTS))
        return self.apply_stage(4, {effect_name: dict(parameters)})

    def remove_finishing_effect(self, effect_name: str) -> bool:
        """Turn one finishing effect off; returns whether it was on."""
        if effect_name not in EFFECTS:
            raise ParameterError("effect_name", effect_name, "one of " + ", ".join(EFFECTS))
        was_on = getattr(self._finishing, effect_name) is not None
        self.apply_stage(4, {effect_name: None})
        return was_on

    def apply_stage(self, stage: int, corrections: Mapping[str, Any]) -> bool:
        """Update one stage's settings with ``corrections`` (keys not given are kept).

        Parameters
        ----------
        stage : int
            1 primary, 2 secondary, 3 look, 4 finishing.
        corrections : dict
            Stage 1: any of ``exposure contrast brightness saturation lift gamma gain
            temperature tint``.  Stage 2: the fields of :class:`SecondaryCorrection`.
            Stage 3: ``lut`` (path or look name; ``None`` removes the look), ``strength``,
            ``interpolation``.  Stage 4: ``{effect: {parameter: value} or None}``.

        Returns
        -------
        bool
            True once applied (every failure raises and leaves the stage unchanged).

        Raises
        ------
        ParameterError
            Unknown stage or key, or a value out of range.
        MediaInputError, LutParseError
            Stage 3's file is missing or malformed.
        """
        if isinstance(stage, bool) or stage not in STAGES:
            raise ParameterError(
                "stage", stage, "1, 2, 3 or 4 (primary, secondary, look, finishing)"
            )
        if not isinstance(corrections, Mapping):
            raise ParameterError("corrections", corrections, "a dict of settings")
        if stage == 1:
            self._primary = PrimaryCorrection.from_mapping(
                {**self._primary.to_dict(), **corrections}
            )
        elif stage == 2:
            self._secondary = SecondaryCorrection.from_mapping(
                {**self._secondary.to_dict(), **corrections}
            )
        elif stage == 3:
            self._set_look(corrections)
        else:
            merged = {**self._finishing.to_dict(), **corrections}
            self._finishing = FinishingSettings.from_mapping(merged)
        self._changed()
        return True

    def _set_look(self, corrections: Mapping[str, Any]) -> None:
        if "lut" in corrections and corrections["lut"] is None:
            extra = set(corrections) - {"lut"}
            if extra:
                raise ParameterError("look", dict(corrections), "no other keys with lut=None")
            self._look, self._lut = None, None
            return
        current = self._look.to_dict() if self._look is not None else {}
        look = LookSettings.from_mapping({**current, **corrections})
        self._look, self._lut = look, look.load()  # parsed tables are cached by file stamp

    def reset_stage(self, stage: int) -> None:
        """Return one stage to neutral / off."""
        if isinstance(stage, bool) or stage not in STAGES:
            raise ParameterError(
                "stage", stage, "1, 2, 3 or 4 (primary, secondary, look, finishing)"
            )
        if stage == 1:
            self._primary = PrimaryCorrection()
        elif stage == 2:
            self._secondary = SecondaryCorrection()
        elif stage == 3:
            self._look, self._lut = None, None
        else:
            self._finishing = FinishingSettings()
        self._changed()

    def over(self, base: ColorGrader) -> ColorGrader:
        """A new grader: this grader's stages where set, ``base``'s elsewhere.

        ``shot.over(section.over(global_grade))`` is the grade of a shot.
        """
        look = self._look if self._look is not None else base._look
        return ColorGrader(
            primary=base._primary if self._primary.is_identity else self._primary,
            secondary=base._secondary if self._secondary.is_identity else self._secondary,
            look=look,
            finishing=base._finishing if self._finishing.is_identity else self._finishing,
        )

    # ----------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings; stages left neutral are omitted."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        if not self._primary.is_identity:
            out["primary"] = self._primary.to_dict()
        if not self._secondary.is_identity:
            out["secondary"] = self._secondary.to_dict()
        if self._look is not None:
            out["look"] = self._look.to_dict()
        if not self._finishing.is_identity:
            out["finishing"] = self._finishing.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColorGrader:
        """Rebuild a grader from :meth:`to_dict`'s output.

        Raises
        ------
        ParameterError
            Unknown schema or key, or an invalid value.
        MediaInputError, LutParseError
            The look's file is missing or malformed.
        """
        if not isinstance(data, Mapping):
            raise ParameterError("grade", data, "a dict from ColorGrader.to_dict()")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ParameterError("schema", schema, f"{SCHEMA_VERSION}")
        allowed = {"schema", *STAGES.values()}
        for key in data:
            if key not in allowed:
                raise ParameterError("grade key", key, "one of " + ", ".join(sorted(allowed)))
        look = data.get("look")
        return cls(
            primary=PrimaryCorrection.from_mapping(data.get("primary") or {}),
            secondary=SecondaryCorrection.from_mapping(data.get("secondary") or {}),
            look=LookSettings.from_mapping(look) if look else None,
            finishing=FinishingSettings.from_mapping(data.get("finishing") or {}),
        )

    # ----------------------------------------------------------------- grading

    def _colour_ops(self) -> list[Callable[[np.ndarray], np.ndarray]]:
        """The float functions after stage 1's curves: saturation, secondary, look."""
        ops: list[Callable[[np.ndarray], np.ndarray]] = []
        primary, secondary, look, lut = self._primary, self._secondary, self._look, self._lut
        if primary.saturation != 50.0:
            ops.append(primary.apply_saturation)
        if not secondary.is_identity:
            ops.append(functools.partial(apply_secondary, correction=secondary))
        if look is not None and lut is not None and look.strength > 0.0:

            def _look(rgb: np.ndarray) -> np.ndarray:
                out = apply_lut(rgb, lut, interpolation=look.interpolation, strength=look.strength)
                return np.clip(out, 0.0, 1.0)

            ops.append(_look)
        return ops

    def _compile(self) -> _Compiled:
        primary, secondary, look, lut = self._primary, self._secondary, self._look, self._lut
        curves = primary.curves() if primary.has_curves else None
        has_sat = primary.saturation != 50.0
        has_secondary = not secondary.is_identity
        has_look = look is not None and lut is not None and look.strength > 0.0
        if not has_sat and not has_secondary and not has_look:
            table = _curves_table(curves) if curves is not None else None
            return _Compiled(table, None, None)
        if has_sat and not has_secondary and not has_look:
            # Float curves into the matrix, one rounding at the end: within 1/2 level.
            table = _curves_table(curves if curves is not None else primary.curves(), exact=True)
            return _Compiled(table, saturation_matrix(primary.saturation / 50.0), None)
        if has_look and not has_sat and not has_secondary and lut is not None and look:
            if lut.kind == "1D":
                # A 1D look acts per channel too: fold it into the curves, exactly.
                base = curves if curves is not None else primary.curves()
                folded = np.clip(
                    apply_lut(base, lut, strength=look.strength, interpolation="trilinear"),
                    0.0,
                    1.0,
                )
                return _Compiled(_curves_table(folded), None, None)
            key = ("lut", self._look_key(), look.strength, look.interpolation)

            def build_lut() -> PackedCube:
                return PackedCube.from_lut(
                    lut, interpolation=look.interpolation, strength=look.strength
                )

            cube = _CUBES.get(key, build_lut)
            return _Compiled(_curves_table(curves) if curves is not None else None, None, cube)
        ops = self._colour_ops()

        def composite(rgb: np.ndarray) -> np.ndarray:
            for op in ops:
                rgb = op(rgb)
            return rgb

        key = (
            "ops",
            primary.saturation,
            secondary if has_secondary else None,
            (self._look_key(), look.strength, look.interpolation) if has_look and look else None,
        )
        # The curves go into the table's input levels, unrounded: one 8-bit rounding in all.
        levels = curves if curves is not None else primary.curves()
        key = (*key, levels.tobytes())
        cube = _CUBES.get(
            key, lambda: PackedCube.from_function(composite, step=COMPOSITE_STEP, levels=levels)
        )
        return _Compiled(None, None, cube)

    def _look_key(self) -> Any:
        if self._look is None:
            return None
        path = self._look.path
        try:
            stat = path.stat()
        except OSError:
            return (str(path), id(self._lut))
        return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def prepare(self) -> None:
        """Compile stages 1 to 3 now (otherwise the first :meth:`grade` call does)."""
        with self._lock:
            if self._compiled is None:
                self._compiled = self._compile()

    def grade(self, frame: np.ndarray, *, frame_index: int = 0) -> np.ndarray:
        """Grade one frame.

        Parameters
        ----------
        frame : np.ndarray
            ``(h, w, 3)`` uint8 RGB.
        frame_index : int
            The frame's position in the video (drives the grain, which changes every frame).

        Returns
        -------
        np.ndarray
            A new ``(h, w, 3)`` uint8 frame; ``frame`` itself when :attr:`is_identity`.

        Raises
        ------
        ParameterError
            ``frame`` is not ``(h, w, 3)`` uint8, or ``frame_index`` is negative.
        """
        import cv2

        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
            raise ParameterError("frame", getattr(frame, "shape", frame), "uint8 (h, w, 3) RGB")
        if frame.shape[2] != 3:
            raise ParameterError("frame", frame.shape, "uint8 (h, w, 3) RGB")
        if isinstance(frame_index, bool) or not isinstance(frame_index, int) or frame_index < 0:
            raise ParameterError("frame_index", frame_index, "a whole number >= 0")
        if self.is_identity:
            return frame
        frame = np.ascontiguousarray(frame)  # OpenCV refuses negative strides (x[..., ::-1])
        compiled = self._compiled
        if compiled is None:
            self.prepare()
            compiled = self._compiled
            assert compiled is not None
        out = frame
        if compiled.curves is not None:
            out = cv2.LUT(out, compiled.curves)
        if compiled.matrix is not None:
            mixed = cv2.transform(out, compiled.matrix)  # float32, 0..255 scale
            np.maximum(mixed, 0.0, out=mixed)  # then |x| below is x: rounds, saturates
            out = cv2.convertScaleAbs(mixed)
        if compiled.cube is not None:
            out = compiled.cube.apply(out)
        if not self._finishing.is_identity:
            image = np.multiply(out, np.float32(1.0 / 255.0), dtype=np.float32)
            image = finish_in_place(image, self._finishing, frame_index=frame_index)
            out = cv2.convertScaleAbs(image, alpha=255.0)  # clipped 0..1 above: rounds
        elif out is frame:
            out = frame.copy()
        return out

    def grade_float(self, image: np.ndarray, *, frame_index: int = 0) -> np.ndarray:
        """The exact reference: grade float32 RGB (0..1) with no 8-bit tables.

        Accepts uint8 too (divided by 255).  Returns float32, clipped to 0..1.
        """
        x = np.asarray(image)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ParameterError("image", x.shape, "(h, w, 3) RGB")
        x = apply_primary(x, self._primary)
        x = apply_secondary(x, self._secondary)
        if self._look is not None and self._lut is not None:
            x = apply_lut(
                x,
                self._lut,
                interpolation=self._look.interpolation,
                strength=self._look.strength,
            )
        x = np.clip(x, 0.0, 1.0)
        return apply_finishing(x, self._finishing, frame_index=frame_index)

    def __repr__(self) -> str:
        stages = [name for name in STAGES.values() if name in self.to_dict()]
        return f"ColorGrader(stages={stages or 'none'})"
