"""``.cube`` look-up tables: parse, write, apply (float reference) and bake for 8-bit frames.

The parser follows the Adobe Cube LUT Specification 1.0 and accepts the Resolve
variants seen in the wild:

* ``TITLE "text"`` (optional), ``#`` comments anywhere (also after data on a line),
  blank lines, Windows line ends;
* ``LUT_1D_SIZE N`` (2..65536) or ``LUT_3D_SIZE N`` (2..65), exactly one of them;
* ``DOMAIN_MIN r g b`` / ``DOMAIN_MAX r g b`` (default 0 0 0 / 1 1 1), or Resolve's
  ``LUT_1D_INPUT_RANGE lo hi`` / ``LUT_3D_INPUT_RANGE lo hi``;
* data lines of three numbers; in a 3D table red changes fastest, then green, then blue.

Anything else (a wrong number of entries, a word where a number belongs, a size of 0 or
200, data before the size) raises :class:`LutParseError`, whose message names the line.

Two ways to apply a table:

:func:`apply_lut`
    the float32 reference (any input values, trilinear or tetrahedral interpolation,
    ``strength`` blend with the input), used by tests and by the exact grading path;
:class:`PackedCube`
    a colour function baked into a 256x256x256 table indexed by the 8-bit input, so
    grading a 1920x1080 frame is one table gather (about 6 ms here, measured in
    ``docs/grading.md``) whatever the function cost to evaluate.

Examples
--------
>>> lut = identity_lut(17)
>>> lut.kind, lut.size, lut.table.shape
('3D', 17, (17, 17, 17, 3))
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from engine.errors import MediaInputError, ParameterError

__all__ = [
    "INTERPOLATIONS",
    "MAX_1D_SIZE",
    "MAX_3D_SIZE",
    "Lut",
    "LutParseError",
    "PackedCube",
    "apply_lut",
    "format_cube",
    "identity_lut",
    "load_cube",
    "parse_cube",
    "write_cube",
]

log = logging.getLogger(__name__)

Interpolation = Literal["trilinear", "tetrahedral"]
INTERPOLATIONS: tuple[str, ...] = ("trilinear", "tetrahedral")

MAX_3D_SIZE = 65
MAX_1D_SIZE = 65536
_MAX_FILE_BYTES = 64 * 1024 * 1024

_KEYWORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TITLE = re.compile(r'^TITLE\s+"(.*)"\s*$')
_KNOWN_KEYWORDS = frozenset(
    {
        "TITLE",
        "LUT_1D_SIZE",
        "LUT_3D_SIZE",
        "DOMAIN_MIN",
        "DOMAIN_MAX",
        "LUT_1D_INPUT_RANGE",
        "LUT_3D_INPUT_RANGE",
    }
)


class LutParseError(MediaInputError):
    """A ``.cube`` file is malformed.

    Attributes
    ----------
    path : Path
        The file.
    line : int
        1-based line number of the problem (the last line for a missing entry).
    reason : str
        What is wrong, and what to do.
    """

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.line = line
        super().__init__(path, f"line {line}: {reason}")


@dataclass(frozen=True, eq=False)
class Lut:
    """A parsed look-up table.

    Attributes
    ----------
    title : str
        The ``TITLE`` line's text ("" when absent).
    kind : {"1D", "3D"}
        Table kind.
    size : int
        Entries per axis.
    domain_min, domain_max : tuple of 3 floats
        Input values that map to the first and last entry of each axis.
    table : np.ndarray
        float32; shape ``(size, 3)`` for 1D, ``(size, size, size, 3)`` indexed
        ``[r, g, b]`` for 3D.  Read-only.
    comments : tuple of str
        The file's ``#`` comment lines, without the ``#``.
    """

    title: str
    kind: Literal["1D", "3D"]
    size: int
    domain_min: tuple[float, float, float]
    domain_max: tuple[float, float, float]
    table: np.ndarray = field(repr=False)
    comments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("1D", "3D"):
            raise ParameterError("kind", self.kind, '"1D" or "3D"')
        limit = MAX_1D_SIZE if self.kind == "1D" else MAX_3D_SIZE
        if not (2 <= self.size <= limit):
            raise ParameterError("size", self.size, f"2..{limit} for a {self.kind} LUT")
        shape = (self.size, 3) if self.kind == "1D" else (self.size,) * 3 + (3,)
        table = np.ascontiguousarray(self.table, dtype=np.float32)
        if table.shape != shape:
            raise ParameterError("table", table.shape, f"shape {shape}")
        if not np.isfinite(table).all():
            raise ParameterError("table", "non-finite values", "finite numbers")
        for lo, hi in zip(self.domain_min, self.domain_max, strict=True):
            if not hi > lo:
                raise ParameterError(
                    "domain", (self.domain_min, self.domain_max), "DOMAIN_MAX > DOMAIN_MIN"
                )
        table.setflags(write=False)
        object.__setattr__(self, "table", table)


def identity_lut(size: int, *, kind: Literal["1D", "3D"] = "3D") -> Lut:
    """A table that maps every input to itself (useful as a base to build looks on)."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    if kind == "1D":
        table = np.repeat(ramp[:, None], 3, axis=1)
    else:
        r, g, b = np.meshgrid(ramp, ramp, ramp, indexing="ij")
        table = np.stack([r, g, b], axis=-1)
    return Lut(
        title="identity",
        kind=kind,
        size=size,
        domain_min=(0.0, 0.0, 0.0),
        domain_max=(1.0, 1.0, 1.0),
        table=table,
    )


# --------------------------------------------------------------------------- parsing


def load_cube(path: Path | str) -> Lut:
    """Read a ``.cube`` file.

    Parameters
    ----------
    path : Path or str
        The file.

    Returns
    -------
    Lut

    Raises
    ------
    MediaInputError
        The file is missing, unreadable or too large.
    LutParseError
        The file is not a valid ``.cube`` table; the message names the line.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise MediaInputError(
                path, f"{size} bytes is too large for a .cube file (65x65x65 is about 10 MB)"
            )
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise MediaInputError(path, "LUT file not found; check the path") from err
    except OSError as err:
        raise MediaInputError(path, f"cannot read the LUT file ({err.strerror})") from err
    # Titles and comments are free text; a stray Latin-1 byte must not reject the table.
    return parse_cube(data.decode("utf-8", errors="replace"), path=path)


def _numbers(path: Path, line_no: int, parts: list[str], count: int, what: str) -> list[float]:
    if len(parts) != count:
        raise LutParseError(path, line_no, f"{what} needs {count} numbers, found {len(parts)}")
    try:
        values = [float(p) for p in parts]
    except ValueError as err:
        raise LutParseError(path, line_no, f"{what}: {' '.join(parts)!r} is not a number") from err
    if not all(math.isfinite(v) for v in values):
        raise LutParseError(path, line_no, f"{what}: {' '.join(parts)!r} is not finite")
    return values


def parse_cube(text: str, *, path: Path | str = "<string>") -> Lut:
    """Parse the text of a ``.cube`` file (see the module docstring for the grammar).

    Raises
    ------
    LutParseError
        With the 1-based line number of the first problem.
    """
    path = Path(path)
    title = ""
    comments: list[str] = []
    kind: Literal["1D", "3D"] | None = None
    size = 0
    size_line = 0
    domain_min = [0.0, 0.0, 0.0]
    domain_max = [1.0, 1.0, 1.0]
    data: list[list[str]] = []
    data_lines: list[int] = []
    expected = 0
    lines = text.splitlines()
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if "#" in line and not line.startswith("TITLE"):
            line = line.split("#", 1)[0].strip()
        parts = line.split()
        head = parts[0]
        is_keyword = head in _KNOWN_KEYWORDS or (
            not data and _KEYWORD.match(head) is not None and not _looks_numeric(head)
        )
        if is_keyword:
            if data:
                raise LutParseError(
                    path, line_no, f"keyword {head} after the table data; keywords go first"
                )
            if head == "TITLE":
                match = _TITLE.match(line)
                if not match:
                    raise LutParseError(path, line_no, 'TITLE must be followed by "quoted text"')
                title = match.group(1)
            elif head in ("LUT_1D_SIZE", "LUT_3D_SIZE"):
                new_kind: Literal["1D", "3D"] = "1D" if head == "LUT_1D_SIZE" else "3D"
                if kind is not None:
                    raise LutParseError(
                        path,
                        line_no,
                        f"second size line ({head}); a file holds one 1D or one 3D table "
                        "(shaper plus cube files are not supported)",
                    )
                limit = MAX_1D_SIZE if new_kind == "1D" else MAX_3D_SIZE
                if len(parts) != 2 or not parts[1].isdigit():
                    raise LutParseError(path, line_no, f"{head} needs one whole number")
                size = int(parts[1])
                if not (2 <= size <= limit):
                    raise LutParseError(
                        path, line_no, f"{head} {size} is out of range: expected 2..{limit}"
                    )
                kind, size_line = new_kind, line_no
                expected = size if kind == "1D" else size**3
            elif head == "DOMAIN_MIN":
                domain_min = _numbers(path, line_no, parts[1:], 3, "DOMAIN_MIN")
            elif head == "DOMAIN_MAX":
                domain_max = _numbers(path, line_no, parts[1:], 3, "DOMAIN_MAX")
            elif head in ("LUT_1D_INPUT_RANGE", "LUT_3D_INPUT_RANGE"):
                lo, hi = _numbers(path, line_no, parts[1:], 2, head)
                domain_min, domain_max = [lo] * 3, [hi] * 3
            else:
                # The spec lets vendors add keywords; skipping them is what Resolve does.
                log.debug("%s:%d: ignoring unknown keyword %s", path, line_no, head)
            continue
        if kind is None:
            raise LutParseError(
                path, line_no, "table data before LUT_3D_SIZE or LUT_1D_SIZE; add the size line"
            )
        if len(data) >= expected:
            raise LutParseError(
                path,
                line_no,
                f"too many entries: {kind} size {size} (line {size_line}) needs exactly {expected}",
            )
        if len(parts) != 3:
            raise LutParseError(path, line_no, f"an entry needs 3 numbers, found {len(parts)}")
        data.append(parts)
        data_lines.append(line_no)
    if kind is None:
        raise LutParseError(
            path, max(len(lines), 1), "no LUT_3D_SIZE or LUT_1D_SIZE line; is this a .cube file?"
        )
    if len(data) != expected:
        raise LutParseError(
            path,
            max(len(lines), 1),
            f"too few entries: {kind} size {size} (line {size_line}) needs {expected}, "
            f"the file ends after {len(data)}",
        )
    for axis, (lo, hi) in enumerate(zip(domain_min, domain_max, strict=True)):
        if not hi > lo:
            raise LutParseError(
                path,
                size_line,
                f"DOMAIN_MAX {domain_max} must exceed DOMAIN_MIN {domain_min} "
                f"(channel {'RGB'[axis]})",
            )
    try:
        values = np.array(data, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        # Find the culprit only on failure: one float() per number is slow for 65^3.
        for parts, line_no in zip(data, data_lines, strict=True):
            _numbers(path, line_no, parts, 3, "entry")
        raise AssertionError("unreachable: a bad number was not found")  # pragma: no cover
    values = values.astype(np.float32)
    # 3D file order: red fastest, then green, then blue -> array [b, g, r]; store [r, g, b].
    cube = kind == "3D"
    table = values.reshape(size, size, size, 3).transpose(2, 1, 0, 3) if cube else values
    return Lut(
        title=title,
        kind=kind,
        size=size,
        domain_min=(domain_min[0], domain_min[1], domain_min[2]),
        domain_max=(domain_max[0], domain_max[1], domain_max[2]),
        table=table,
        comments=tuple(comments),
    )


def _looks_numeric(token: str) -> bool:
    # "nan", "inf", "e5" look like identifiers; treat them as (bad) numbers, not keywords,
    # so the error says "not a number / not finite" on the right line.
    try:
        float(token)
    except ValueError:
        return False
    return True


def format_cube(lut: Lut, *, decimals: int = 6) -> str:
    """The text of a ``.cube`` file for ``lut`` (the inverse of :func:`parse_cube`)."""
    head: list[str] = []
    if lut.title:
        head.append(f'TITLE "{lut.title}"')
    head.extend(f"# {c}" if c else "#" for c in lut.comments)
    head.append(f"LUT_{lut.kind}_SIZE {lut.size}")
    if lut.domain_min != (0.0, 0.0, 0.0) or lut.domain_max != (1.0, 1.0, 1.0):
        head.append("DOMAIN_MIN " + " ".join(f"{v:.{decimals}f}" for v in lut.domain_min))
        head.append("DOMAIN_MAX " + " ".join(f"{v:.{decimals}f}" for v in lut.domain_max))
    rows = lut.table if lut.kind == "1D" else lut.table.transpose(2, 1, 0, 3).reshape(-1, 3)
    # One %-format over all rows: about ten times faster than a join of f-strings.
    row = f"%.{decimals}f %.{decimals}f %.{decimals}f\n"
    body = (row * len(rows)) % tuple(np.asarray(rows, dtype=np.float64).ravel().tolist())
    return "\n".join(head) + "\n" + body


def write_cube(path: Path | str, lut: Lut, *, decimals: int = 6) -> None:
    """Write ``lut`` as a ``.cube`` file, atomically."""
    from engine.atomic_files import atomic_write_text

    atomic_write_text(path, format_cube(lut, decimals=decimals))


# --------------------------------------------------------------------------- applying


def _check_strength(strength: float) -> float:
    if not (0.0 <= strength <= 1.0):
        raise ParameterError("strength", strength, "0.0..1.0")
    return float(strength)


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ParameterError("interpolation", interpolation, " or ".join(INTERPOLATIONS))


def _grid_positions(lut: Lut, rgb: np.ndarray) -> np.ndarray:
    """Map input values to fractional table coordinates in ``[0, size - 1]`` (clamped)."""
    lo = np.asarray(lut.domain_min, dtype=np.float32)
    hi = np.asarray(lut.domain_max, dtype=np.float32)
    scale = (lut.size - 1) / (hi - lo)
    pos = (rgb - lo) * scale
    return np.clip(pos, 0.0, lut.size - 1, out=pos)


def _apply_1d(lut: Lut, pos: np.ndarray) -> np.ndarray:
    i0 = np.minimum(pos.astype(np.int32), lut.size - 2)
    frac = pos - i0
    out = np.empty_like(pos)
    for c in range(3):
        column = lut.table[:, c]
        lo = column[i0[:, c]]
        out[:, c] = lo + (column[i0[:, c] + 1] - lo) * frac[:, c]
    return out


def _apply_trilinear(lut: Lut, pos: np.ndarray) -> np.ndarray:
    n = lut.size
    flat = lut.table.reshape(-1, 3)
    i0 = np.minimum(pos.astype(np.int32), n - 2)
    f = pos - i0
    base = (i0[:, 0] * n + i0[:, 1]) * n + i0[:, 2]
    fr, fg, fb = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    sr, sg = n * n, n

    def corner(offset: int) -> np.ndarray:
        return flat[base + offset]

    # Interpolate along b, then g, then r.
    c00 = corner(0) + (corner(1) - corner(0)) * fb
    c01 = corner(sg) + (corner(sg + 1) - corner(sg)) * fb
    c10 = corner(sr) + (corner(sr + 1) - corner(sr)) * fb
    c11 = corner(sr + sg) + (corner(sr + sg + 1) - corner(sr + sg)) * fb
    c0 = c00 + (c01 - c00) * fg
    c1 = c10 + (c11 - c10) * fg
    return c0 + (c1 - c0) * fr


def _apply_tetrahedral(lut: Lut, pos: np.ndarray) -> np.ndarray:
    n = lut.size
    flat = lut.table.reshape(-1, 3)
    i0 = np.minimum(pos.astype(np.int32), n - 2)
    f = pos - i0
    fr, fg, fb = f[:, 0], f[:, 1], f[:, 2]
    sr, sg, sb = n * n, n, 1
    base = i0[:, 0] * sr + i0[:, 1] * sg + i0[:, 2]
    # The cube splits into six tetrahedra along its main diagonal; the one holding the
    # point is set by the order of the three fractions.  Walk from the base corner along
    # the largest fraction's axis, then the middle one's, to the far corner.
    r_max = (fr >= fg) & (fr >= fb)
    g_max = ~r_max & (fg >= fb)
    b_min = (fb <= fg) & (fb <= fr)
    g_min = ~b_min & (fg <= fr)
    s_max = np.where(r_max, sr, np.where(g_max, sg, sb))
    s_min = np.where(b_min, sb, np.where(g_min, sg, sr))
    f_max = np.maximum(np.maximum(fr, fg), fb)
    f_min = np.minimum(np.minimum(fr, fg), fb)
    f_mid = fr + fg + fb - f_max - f_min
    far = base + (sr + sg + sb)
    v0 = flat[base]
    out = v0 * (1.0 - f_max)[:, None]
    out += flat[base + s_max] * (f_max - f_mid)[:, None]
    out += flat[far - s_min] * (f_mid - f_min)[:, None]
    out += flat[far] * f_min[:, None]
    return out


def apply_lut(
    image: np.ndarray,
    lut: Lut,
    *,
    interpolation: Interpolation | str = "trilinear",
    strength: float = 1.0,
) -> np.ndarray:
    """Apply ``lut`` to a float image (the reference implementation).

    Parameters
    ----------
    image : np.ndarray
        ``(..., 3)`` float RGB, in the table's domain (values outside it are clamped for
        the lookup).
    lut : Lut
        The table.
    interpolation : {"trilinear", "tetrahedral"}
        How a 3D table is interpolated between entries (1D tables are always linear).
        Tetrahedral uses 4 entries instead of 8 and keeps the grey axis exactly on the
        table's grey entries.
    strength : float
        0..1: blend between the input (0) and the table's output (1).

    Returns
    -------
    np.ndarray
        float32, same shape as ``image``; not clipped.
    """
    _check_interpolation(interpolation)
    strength = _check_strength(strength)
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1:] != (3,):
        raise ParameterError("image", image.shape, "an array of shape (..., 3)")
    if strength == 0.0:
        return image.copy()
    rgb = image.reshape(-1, 3)
    pos = _grid_positions(lut, rgb)
    if lut.kind == "1D":
        out = _apply_1d(lut, pos)
    elif interpolation == "tetrahedral":
        out = _apply_tetrahedral(lut, pos)
    else:
        out = _apply_trilinear(lut, pos)
    if strength != 1.0:
        out = rgb + (out - rgb) * np.float32(strength)
    return out.reshape(image.shape)


# --------------------------------------------------------------------------- 8-bit baking

_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


def _axis_lerp(size: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """For each 8-bit level: the table entry below it and the fraction toward the next."""
    pos = np.clip((_LEVELS.astype(np.float64) - lo) * (size - 1) / (hi - lo), 0.0, size - 1)
    i0 = np.minimum(np.floor(pos).astype(np.intp), size - 2)
    return i0, (pos - i0).astype(np.float32)


class PackedCube:
    """A colour function of 8-bit RGB, tabulated for all 16.7 million inputs.

    The table holds one ``uint32`` per input (R, G, B and a spare byte), 64 MiB, indexed
    by ``r + 256 g + 65536 b``: exactly the bytes of a pixel of an RGBA frame with the
    alpha byte masked off.  Applying it is one gather, so its cost does not depend on
    how the function was built (a 65^3 table, a grade of four stages...).

    Build one with :meth:`from_lut` or :meth:`from_function`; apply with :meth:`apply`.
    """

    def __init__(self, packed: np.ndarray) -> None:
        if packed.dtype != np.uint32 or packed.shape != (256**3,):
            raise ParameterError("packed", (packed.dtype, packed.shape), "uint32 (16777216,)")
        self._table = packed

    @property
    def nbytes(self) -> int:
        """Memory held by the table."""
        return int(self._table.nbytes)

    @classmethod
    def from_lut(
        cls,
        lut: Lut,
        *,
        interpolation: Interpolation | str = "trilinear",
        strength: float = 1.0,
    ) -> PackedCube:
        """Tabulate ``apply_lut(x, lut, ...)`` for every 8-bit input (values / 255).

        Trilinear 3D tables are upsampled axis by axis (trilinear interpolation is
        separable), about 0.7 s; other cases evaluate :func:`apply_lut` on the full grid
        in slices, a few seconds.
        """
        _check_interpolation(interpolation)
        strength = _check_strength(strength)
        if lut.kind == "3D" and interpolation == "trilinear":
            return cls(_bake_trilinear(lut, strength))

        def fn(rgb: np.ndarray) -> np.ndarray:
            return apply_lut(rgb, lut, interpolation=interpolation, strength=strength)

        return cls.from_function(fn)

    @classmethod
    def from_function(
        cls,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        step: int = 1,
        levels: np.ndarray | None = None,
    ) -> PackedCube:
        """Tabulate a float RGB -> RGB function of ``(n, 3)`` arrays with values in 0..1.

        Parameters
        ----------
        fn : callable
            Takes and returns ``(n, 3)`` float32 arrays.
        step : int
            Evaluate ``fn`` on every ``step``-th 8-bit level of each channel (a divisor
            of 255: 1, 3, 5, 15, 17, 51, 85) and interpolate trilinearly in between.
            1 evaluates all 16.7 million inputs (exact, a few seconds); 3 evaluates
            86^3 = 636,056 (26 times fewer) and differs from exact by well under one
            8-bit level for smooth grades.
        levels : np.ndarray, optional
            ``(256, 3)``: the value ``fn`` receives for each 8-bit level of each channel
            (default ``level / 255``).  Folds a per-channel curve into the table without
            rounding its output to 8 bits first.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 1 or 255 % step:
            raise ParameterError("step", step, "a divisor of 255: 1, 3, 5, 15, 17, 51 or 85")
        if levels is not None:
            levels = np.asarray(levels, dtype=np.float32)
            if levels.shape != (256, 3):
                raise ParameterError("levels", levels.shape, "shape (256, 3)")
        else:
            levels = np.repeat(_LEVELS[:, None], 3, axis=1)
        if step > 1:
            nodes = levels[::step]
            n = len(nodes)
            r, g, b = np.meshgrid(nodes[:, 0], nodes[:, 1], nodes[:, 2], indexing="ij")
            points = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1)
            values = np.empty_like(points)
            chunk = 1 << 16
            for start in range(0, len(points), chunk):
                part = np.array(points[start : start + chunk])
                values[start : start + chunk] = fn(part)
            lerp = _step_lerp(step)
            return cls(_bake_lattice(values.reshape(n, n, n, 3), (lerp,) * 3, 1.0))
        out = np.empty((256, 256 * 256, 4), dtype=np.uint8)
        r2, g2 = np.meshgrid(levels[:, 0], levels[:, 1], indexing="xy")  # [g, r], r fastest
        slice_points = np.empty((256 * 256, 3), dtype=np.float32)
        for blue in range(256):
            # fn may work in place on its argument: refill every slice.
            slice_points[:, 0] = r2.ravel()
            slice_points[:, 1] = g2.ravel()
            slice_points[:, 2] = levels[blue, 2]
            _quantise_into(np.asarray(fn(slice_points), dtype=np.float32), out[blue, :, :3])
        return cls(out.view(np.uint32).reshape(-1))

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Map an ``(h, w, 3)`` uint8 RGB frame through the table; returns a new frame."""
        import cv2

        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ParameterError("frame", (frame.dtype, frame.shape), "uint8 (h, w, 3)")
        height, width = frame.shape[:2]
        index = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2RGBA)
        index32 = index.view(np.uint32).reshape(height, width)
        np.bitwise_and(index32, np.uint32(0x00FFFFFF), out=index32)
        np.take(self._table, index32, out=index32)
        return cv2.cvtColor(index, cv2.COLOR_RGBA2RGB)


def _quantise_into(values: np.ndarray, out: np.ndarray) -> None:
    scaled = values * np.float32(255.0)
    scaled += np.float32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    out[...] = scaled.reshape(out.shape)


def _step_lerp(step: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_axis_lerp` for a lattice on every ``step``-th 8-bit level."""
    n = 255 // step + 1
    pos = np.arange(256, dtype=np.float64) / step
    i0 = np.minimum(np.floor(pos).astype(np.intp), n - 2)
    return i0, (pos - i0).astype(np.float32)


def _bake_trilinear(lut: Lut, strength: float) -> np.ndarray:
    """Upsample a 3D table to 256^3 packed uint32, axis by axis (exact trilinear)."""
    lerps = tuple(
        _axis_lerp(lut.size, lo, hi) for lo, hi in zip(lut.domain_min, lut.domain_max, strict=True)
    )
    return _bake_lattice(lut.table, lerps, strength)


def _lerp(array: np.ndarray, lerp: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    i0, frac = lerp
    shape = [1] * array.ndim
    shape[axis] = frac.size
    f = frac.reshape(shape)
    low = np.take(array, i0, axis=axis)
    high = np.take(array, i0 + 1, axis=axis)
    high -= low
    high *= f
    high += low
    return high


def _bake_lattice(
    table_rgb: np.ndarray, lerps: tuple[tuple[np.ndarray, np.ndarray], ...], strength: float
) -> np.ndarray:
    """Interpolate an ``[r, g, b, c]`` lattice to every 8-bit input, packed as uint32.

    ``lerps`` holds, per axis, each level's lattice entry and fraction; trilinear
    interpolation is separable, so it is three linear interpolations, one per axis.
    """
    lerp_r, lerp_g, lerp_b = lerps
    table = np.ascontiguousarray(table_rgb.transpose(2, 1, 0, 3), dtype=np.float32)  # [b,g,r,c]
    along_r = _lerp(table, lerp_r, axis=2)  # [b, g, R, c]
    along_g = _lerp(along_r, lerp_g, axis=1)  # [b, G, R, c]
    flat = along_g.reshape(along_g.shape[0], -1)
    if strength != 1.0:
        flat *= np.float32(strength)
    out = np.empty((256, 256 * 256, 4), dtype=np.uint8)
    # The input itself, for strength < 1: channel c of level (b, g, r) is that axis' level.
    keep = np.float32(1.0 - strength)
    ident_rg = None
    if strength < 1.0:
        r, g = np.meshgrid(_LEVELS, _LEVELS, indexing="xy")
        ident_rg = np.stack([r.ravel(), g.ravel()], axis=-1) * keep
    chunk = 32
    i0_b, frac_b = lerp_b
    for b0 in range(0, 256, chunk):
        part = (i0_b[b0 : b0 + chunk], frac_b[b0 : b0 + chunk])
        values = _lerp(flat, part, axis=0).reshape(chunk, 256 * 256, 3)
        if ident_rg is not None:
            values[:, :, :2] += ident_rg
            values[:, :, 2] += (_LEVELS[b0 : b0 + chunk] * keep)[:, None]
        _quantise_into(values, out[b0 : b0 + chunk, :, :3])
    return out.view(np.uint32).reshape(-1)
