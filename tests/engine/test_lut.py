"""The ``.cube`` parser and the LUT appliers (float reference and the 8-bit packed cube)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engine.errors import MediaInputError
from engine.grading.grader import LOOKS_DIR, shipped_looks
from engine.grading.lut import (
    Lut,
    LutParseError,
    PackedCube,
    apply_lut,
    format_cube,
    identity_lut,
    load_cube,
    parse_cube,
    write_cube,
)

ROOT = Path(__file__).resolve().parents[2]


def _swap_rb(size: int = 17) -> Lut:
    """A 3D table whose output is (b, g, r): red and blue swapped."""
    ident = identity_lut(size)
    return Lut(
        title="swap red and blue",
        kind="3D",
        size=size,
        domain_min=(0.0, 0.0, 0.0),
        domain_max=(1.0, 1.0, 1.0),
        table=ident.table[..., ::-1],
    )


def _cube_text(size: int, *, kind: str = "3D", header: str = "", rows: list[str] | None = None):
    if rows is None:
        count = size if kind == "1D" else size**3
        rows = ["0.5 0.5 0.5"] * count
    return f"{header}LUT_{kind}_SIZE {size}\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    image[0, :4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]
    return image


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("kind", ["1D", "3D"])
@pytest.mark.parametrize("size", [2, 17, 33, 65])
def test_sizes_parse(tmp_path: Path, kind: str, size: int) -> None:
    lut = identity_lut(size, kind=kind)  # type: ignore[arg-type]
    path = tmp_path / f"ident_{kind}_{size}.cube"
    write_cube(path, lut)
    loaded = load_cube(path)
    assert (loaded.kind, loaded.size) == (kind, size)
    assert loaded.table.shape == lut.table.shape
    np.testing.assert_allclose(loaded.table, lut.table, atol=1e-6)


def test_title_comments_domain_and_layout(tmp_path: Path) -> None:
    # Red changes fastest in the file: the second entry is r=1, g=0, b=0.
    rows = [f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    rows[1] = "0.9 0.1 0.2  # inline comment"
    text = (
        '# made by hand\r\nTITLE "My # look"\r\n\r\nDOMAIN_MIN 0 0 0\r\nDOMAIN_MAX 1 1 1\r\n'
        "LUT_3D_SIZE 2\r\n" + "\r\n".join(rows) + "\r\n"
    )
    path = tmp_path / "hand.cube"
    path.write_bytes(text.encode())
    lut = load_cube(path)
    assert lut.title == "My # look"
    assert lut.comments == ("made by hand",)
    np.testing.assert_allclose(lut.table[1, 0, 0], [0.9, 0.1, 0.2], atol=1e-6)
    np.testing.assert_allclose(lut.table[0, 1, 0], [0, 1, 0])
    np.testing.assert_allclose(lut.table[0, 0, 1], [0, 0, 1])


def test_unknown_keywords_before_the_data_are_skipped() -> None:
    lut = parse_cube(_cube_text(2, header="LUT_IN_VIDEO_RANGE\nMY_VENDOR_FLAG 3\n"))
    assert lut.size == 2


def test_format_and_parse_round_trip_with_domain() -> None:
    ident = identity_lut(5)
    lut = Lut(
        title="t",
        kind="3D",
        size=5,
        domain_min=(-0.25, 0.0, 0.0),
        domain_max=(1.5, 1.0, 2.0),
        table=ident.table * 0.5,
        comments=("a", "b"),
    )
    back = parse_cube(format_cube(lut))
    assert (back.title, back.comments, back.domain_min, back.domain_max) == (
        "t",
        ("a", "b"),
        (-0.25, 0.0, 0.0),
        (1.5, 1.0, 2.0),
    )
    np.testing.assert_allclose(back.table, lut.table, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # wrong count: one entry short, then one too many
        (_cube_text(2, rows=["0 0 0"] * 7), 8, "too few entries.*needs 8"),
        (_cube_text(2, rows=["0 0 0"] * 9), 10, "too many entries"),
        (_cube_text(3, kind="1D", rows=["0 0 0"] * 2), 3, "too few entries"),
        # bad numbers
        (_cube_text(2, rows=["0 0 0"] * 4 + ["0.5 abc 0.5"] + ["0 0 0"] * 3), 6, "not a number"),
        (_cube_text(2, rows=["0 0 0", "nan 0 0"] + ["0 0 0"] * 6), 3, "not finite"),
        (_cube_text(2, rows=["0 0 0", "0.5 0.5"] + ["0 0 0"] * 6), 3, "3 numbers, found 2"),
        (_cube_text(2, rows=["0 0 0", "0,5 0 0"] + ["0 0 0"] * 6), 3, "not a number"),
        # sizes
        (_cube_text(0, rows=[]), 1, r"LUT_3D_SIZE 0 is out of range: expected 2\.\.65"),
        (_cube_text(200, rows=[]), 1, r"LUT_3D_SIZE 200 is out of range"),
        (_cube_text(0, kind="1D", rows=[]), 1, r"LUT_1D_SIZE 0 is out of range"),
        ('TITLE "x"\nLUT_3D_SIZE 2.5\n', 2, "one whole number"),
        # missing size: data comes first
        ('TITLE "x"\n0 0 0\n1 1 1\n', 2, "before LUT_3D_SIZE"),
        ("# nothing\n", 1, "no LUT_3D_SIZE or LUT_1D_SIZE"),
        # other structure
        ("LUT_3D_SIZE 2\nLUT_1D_SIZE 2\n", 2, "second size line"),
        ("LUT_3D_SIZE 2\n0 0 0\nDOMAIN_MIN 0 0 0\n", 3, "after the table data"),
        ("DOMAIN_MIN 0 0\nLUT_1D_SIZE 2\n0 0 0\n1 1 1\n", 1, "DOMAIN_MIN needs 3 numbers"),
        ("DOMAIN_MIN 1 1 1\nDOMAIN_MAX 0 0 0\nLUT_1D_SIZE 2\n0 0 0\n1 1 1\n", 3, "must exceed"),
        ("TITLE unquoted\nLUT_1D_SIZE 2\n0 0 0\n1 1 1\n", 1, "quoted"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(LutParseError, match=rf"bad\.cube: line {line}: .*{message}") as info:
        load_cube(path)
    assert info.value.line == line
    assert isinstance(info.value, MediaInputError) and isinstance(info.value, ValueError)


def test_missing_file_is_a_media_input_error(tmp_path: Path) -> None:
    with pytest.raises(MediaInputError, match="LUT file not found"):
        load_cube(tmp_path / "nope.cube")


# ------------------------------------------------------------------ applying (float)


@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
def test_identity_lut_leaves_frames_unchanged(frame: np.ndarray, interpolation: str) -> None:
    image = frame.astype(np.float32) / 255.0
    for lut in (identity_lut(33), identity_lut(2), identity_lut(17, kind="1D")):
        out = apply_lut(image, lut, interpolation=interpolation)
        assert np.abs(out - image).max() <= 1 / 255


@pytest.mark.parametrize("interpolation", ["trilinear", "tetrahedral"])
def test_channel_swap_lut_swaps_channels(frame: np.ndarray, interpolation: str) -> None:
    image = frame.astype(np.float32) / 255.0
    out = apply_lut(image, _swap_rb(), interpolation=interpolation)
    np.testing.assert_allclose(out, image[..., ::-1], atol=1e-5)


def test_trilinear_and_tetrahedral_agree_on_linear_tables() -> None:
    points = np.random.default_rng(3).random((5000, 3), dtype=np.float32)
    for lut in (identity_lut(9), _swap_rb(9)):
        tri = apply_lut(points, lut, interpolation="trilinear")
        tet = apply_lut(points, lut, interpolation="tetrahedral")
        np.testing.assert_allclose(tri, tet, atol=1e-5)


def test_both_interpolations_hit_the_table_on_its_nodes() -> None:
    rng = np.random.default_rng(4)
    table = rng.random((5, 5, 5, 3), dtype=np.float32)
    lut = Lut(title="", kind="3D", size=5, domain_min=(0, 0, 0), domain_max=(1, 1, 1), table=table)
    idx = rng.integers(0, 5, size=(200, 3))
    points = (idx / 4.0).astype(np.float32)
    for interpolation in ("trilinear", "tetrahedral"):
        out = apply_lut(points, lut, interpolation=interpolation)
        np.testing.assert_allclose(out, table[idx[:, 0], idx[:, 1], idx[:, 2]], atol=1e-5)
    # Between nodes the two methods differ on a non-linear table.
    mid = rng.random((200, 3), dtype=np.float32)
    tri = apply_lut(mid, lut, interpolation="trilinear")
    tet = apply_lut(mid, lut, interpolation="tetrahedral")
    assert np.abs(tri - tet).max() > 1e-3


def test_domain_min_max_are_honoured() -> None:
    # Table spans inputs -1..1 and outputs where in that span the input sits (0..1).
    header = "DOMAIN_MIN -1 -1 -1\nDOMAIN_MAX 1 1 1\n"
    ident = identity_lut(3, kind="1D")
    text = _cube_text(
        3, kind="1D", header=header, rows=[" ".join(map(str, r)) for r in ident.table]
    )
    lut = parse_cube(text)
    assert lut.domain_min == (-1.0, -1.0, -1.0)
    out = apply_lut(np.array([[-1.0, 0.0, 0.5]], dtype=np.float32), lut)
    np.testing.assert_allclose(out, [[0.0, 0.5, 0.75]], atol=1e-6)
    # Resolve's LUT_3D_INPUT_RANGE means the same.
    lut3 = parse_cube(
        "LUT_3D_INPUT_RANGE 0 2\nLUT_3D_SIZE 2\n"
        + "\n".join(f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1))
    )
    out3 = apply_lut(np.array([[1.0, 2.0, 0.0]], dtype=np.float32), lut3)
    np.testing.assert_allclose(out3, [[0.5, 1.0, 0.0]], atol=1e-6)


def test_strength_blends_with_the_input() -> None:
    red = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    swap = _swap_rb()
    np.testing.assert_allclose(apply_lut(red, swap, strength=0.0), red)
    np.testing.assert_allclose(apply_lut(red, swap, strength=0.5), [[0.5, 0.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(apply_lut(red, swap, strength=1.0), [[0.0, 0.0, 1.0]], atol=1e-6)
    with pytest.raises(ValueError, match=r"strength=1\.5 is not allowed: expected 0\.0\.\.1\.0"):
        apply_lut(red, swap, strength=1.5)
    with pytest.raises(ValueError, match="interpolation='cubic'"):
        apply_lut(red, swap, interpolation="cubic")


# ------------------------------------------------------------------ packed 8-bit cube


def test_packed_cube_matches_the_reference(frame: np.ndarray) -> None:
    identity = PackedCube.from_lut(identity_lut(33))
    assert np.array_equal(identity.apply(frame), frame)
    swap = PackedCube.from_lut(_swap_rb(), strength=0.5)
    expected = apply_lut(frame.astype(np.float32) / 255.0, _swap_rb(), strength=0.5)
    got = swap.apply(frame).astype(np.float32) / 255.0
    assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6


def test_packed_cube_from_function_tetrahedral(frame: np.ndarray) -> None:
    cube = PackedCube.from_lut(_swap_rb(), interpolation="tetrahedral")
    assert np.array_equal(cube.apply(frame), frame[..., ::-1])


# ------------------------------------------------------------------ shipped looks


def test_shipped_looks_parse_and_match_their_generator() -> None:
    looks = shipped_looks()
    assert set(looks) >= {"teal-orange", "bleach-bypass", "warm-film", "cool-night"}
    spec = importlib.util.spec_from_file_location("make_looks", LOOKS_DIR / "make_looks.py")
    assert spec and spec.loader
    make_looks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_looks)
    readme = (LOOKS_DIR / "README.md").read_text()
    for name, path in looks.items():
        lut = load_cube(path)
        assert (lut.kind, lut.size, lut.title) == ("3D", 33, f"APEX {name}")
        np.testing.assert_allclose(lut.table, make_looks.make_look(name).table, atol=1e-5)
        assert f"`{name}`" in readme
        # Tasteful: mid grey stays near grey, and nothing is pushed to a pure primary.
        grey = apply_lut(np.array([[0.5, 0.5, 0.5]], dtype=np.float32), lut)[0]
        assert np.ptp(grey) < 0.06 and 0.25 < grey.mean() < 0.65
