"""The four grading stages and the ColorGrader."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ParameterError
from engine.grading.finishing import (
    Bloom,
    FinishingSettings,
    Grain,
    Halation,
    Letterbox,
    Vignette,
    apply_finishing,
    letterbox_bars,
)
from engine.grading.grader import ColorGrader
from engine.grading.lut import Lut, LutParseError, identity_lut, write_cube
from engine.grading.primary import (
    LUMA_709,
    PrimaryCorrection,
    apply_primary,
    linear_to_srgb,
    srgb_to_linear,
)
from engine.grading.secondary import SecondaryCorrection, apply_secondary, qualify


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, size=(36, 64, 3), dtype=np.uint8)
    image[:4, :4] = 128
    return image


@pytest.fixture
def swap_cube(tmp_path: Path) -> Path:
    ident = identity_lut(9)
    lut = Lut(
        title="swap",
        kind="3D",
        size=9,
        domain_min=(0, 0, 0),
        domain_max=(1, 1, 1),
        table=ident.table[..., ::-1],
    )
    path = tmp_path / "swap.cube"
    write_cube(path, lut)
    return path


def _hue_ring(n: int = 360) -> np.ndarray:
    """Fully saturated colours at HSL lightness 0.5, one per degree of hue."""
    return np.array([colorsys.hls_to_rgb(h / n, 0.5, 1.0) for h in range(n)], dtype=np.float32)


# ------------------------------------------------------------------ stage 1


def test_srgb_transfer_round_trips() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)


@pytest.mark.parametrize(("stops", "factor"), [(1.0, 2.0), (-1.0, 0.5), (0.5, 2**0.5)])
def test_exposure_scales_linear_light(stops: float, factor: float) -> None:
    # Encoded values whose scaled linear light stays below 1 (no clipping).
    x = np.random.default_rng(1).uniform(0.0, 0.7, size=(100, 3)).astype(np.float32)
    out = apply_primary(x, PrimaryCorrection(exposure=stops))
    np.testing.assert_allclose(
        srgb_to_linear(out), srgb_to_linear(x) * factor, rtol=1e-4, atol=1e-6
    )


def test_saturation_zero_gives_grey_and_neutral_is_identity() -> None:
    x = np.random.default_rng(2).random((50, 3), dtype=np.float32)
    grey = apply_primary(x, PrimaryCorrection(saturation=0))
    np.testing.assert_allclose(grey[:, 0], grey[:, 1], atol=1e-6)
    np.testing.assert_allclose(grey[:, 1], grey[:, 2], atol=1e-6)
    np.testing.assert_allclose(grey[:, 0], x @ LUMA_709, atol=1e-6)
    assert PrimaryCorrection().is_identity
    np.testing.assert_array_equal(apply_primary(x, PrimaryCorrection()), x)


def test_contrast_brightness_lift_gamma_gain() -> None:
    x = np.array([[0.0, 0.25, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(apply_primary(x, PrimaryCorrection(contrast=0)), [[0.5] * 3])
    np.testing.assert_allclose(
        apply_primary(x, PrimaryCorrection(contrast=100)), [[0.0, 0.0, 1.0]], atol=1e-6
    )
    np.testing.assert_allclose(
        apply_primary(x, PrimaryCorrection(brightness=70)), [[0.1, 0.35, 1.0]], atol=1e-6
    )
    np.testing.assert_allclose(
        apply_primary(x, PrimaryCorrection(gain=2.0)), [[0.0, 0.5, 1.0]], atol=1e-6
    )
    np.testing.assert_allclose(
        apply_primary(x, PrimaryCorrection(lift=0.2)), [[0.2, 0.4, 1.0]], atol=1e-6
    )
    np.testing.assert_allclose(
        apply_primary(x, PrimaryCorrection(gamma=2.0)), [[0.0, 0.5, 1.0]], atol=1e-6
    )
    # Per-channel triples: only blue's gain changes.
    out = apply_primary(x[:, [1, 1, 1]], PrimaryCorrection(gain=(1.0, 1.0, 2.0)))
    np.testing.assert_allclose(out, [[0.25, 0.25, 0.5]], atol=1e-6)


def test_temperature_and_tint_move_white_balance() -> None:
    grey = np.full((1, 3), 0.5, dtype=np.float32)
    warm = apply_primary(grey, PrimaryCorrection(temperature=60))[0]
    assert warm[0] > 0.5 > warm[2]
    magenta = apply_primary(grey, PrimaryCorrection(tint=60))[0]
    assert magenta[1] < min(magenta[0], magenta[2])
    # Normalised gains keep the luminance of a grey near where it was.
    lin = srgb_to_linear(warm) @ LUMA_709
    assert lin == pytest.approx(float(srgb_to_linear(np.float32(0.5))), rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exposure": 3.0}, r"exposure=3\.0 is not allowed: expected -2\.0\.\.2\.0"),
        ({"contrast": -1}, r"contrast=-1 is not allowed: expected 0\.0\.\.100\.0"),
        ({"saturation": "high"}, r"saturation='high' is not allowed: expected a number"),
        ({"gamma": (1.0, 0.0, 1.0)}, r"gamma=\(1\.0, 0\.0, 1\.0\) is not allowed"),
        ({"lift": (0.1, 0.2)}, r"lift=\(0\.1, 0\.2\) is not allowed"),
    ],
)
def test_primary_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        PrimaryCorrection(**kwargs)


# ------------------------------------------------------------------ stage 2


def test_qualifier_selects_the_hue_range_with_soft_edges() -> None:
    ring = _hue_ring()
    corr = SecondaryCorrection(hue_center=120, hue_width=40, hue_softness=20, saturation_gain=0)
    matte = qualify(ring, corr)
    distance = np.abs((np.arange(360) - 120 + 180) % 360 - 180)
    assert (matte[distance <= 19] > 0.99).all()  # inside the band (1 degree of slack)
    assert (matte[distance >= 41] < 0.01).all()  # beyond band plus softness
    edge = matte[100 - 18 : 100 - 1]  # hues 82..98 rise through the soft edge
    assert ((edge > 0.0) & (edge < 1.0)).sum() >= 10
    assert (np.diff(edge) >= -1e-6).all()
    # Applied: greens lose their colour, reds and blues keep theirs.
    out = apply_secondary(ring, corr)
    assert np.ptp(out[120]) < 1e-3
    np.testing.assert_allclose(out[0], ring[0], atol=1e-6)
    np.testing.assert_allclose(out[240], ring[240], atol=1e-6)


def test_qualifier_wraps_around_red_and_respects_lightness() -> None:
    ring = _hue_ring()
    corr = SecondaryCorrection(hue_center=350, hue_width=20, hue_softness=5, lightness_offset=0.2)
    matte = qualify(ring, corr)
    # Band 340..360 (through 0 = 360), then 5 degrees of softness: to 335 and to 5.
    assert matte[345] == pytest.approx(1.0) and matte[0] == pytest.approx(1.0)
    assert 0.0 < matte[2] < 1.0 and 0.0 < matte[338] < 1.0
    assert matte[6] == 0.0 and matte[180] == 0.0
    dark = SecondaryCorrection(lum_high=0.3, range_softness=0.05, lightness_offset=0.1)
    assert qualify(np.array([[0.1, 0.1, 0.1], [0.9, 0.9, 0.9]], np.float32), dark).tolist() == [
        1.0,
        0.0,
    ]


def test_hue_shift_and_hue_vs_sat() -> None:
    ring = _hue_ring()
    shifted = apply_secondary(ring, SecondaryCorrection(hue_shift=30))
    # Red moves toward yellow; greys are untouched.
    assert shifted[0][1] > ring[0][1]
    grey = np.full((1, 3), 0.4, np.float32)
    np.testing.assert_allclose(apply_secondary(grey, SecondaryCorrection(hue_shift=90)), grey)
    curve = SecondaryCorrection(hue_vs_sat=[(240, 0.0), (0, 1.0), (120, 1.0)])
    out = apply_secondary(ring, curve)
    assert np.ptp(out[240]) < 1e-3  # blue desaturated to grey
    np.testing.assert_allclose(out[0], ring[0], atol=1e-6)  # red keeps its gain of 1
    assert 0 < np.ptp(out[200]) < np.ptp(ring[200])  # in between: partly


def test_secondary_rejects_bad_values() -> None:
    with pytest.raises(ParameterError, match=r"hue_center=400 is not allowed: expected 0\.0"):
        SecondaryCorrection(hue_center=400)
    with pytest.raises(ParameterError, match=r"sat_low=0\.8 is not allowed: expected <= sat_high"):
        SecondaryCorrection(sat_low=0.8, sat_high=0.5)
    with pytest.raises(ParameterError, match=r"hue_vs_sat=\(10, 5\.0\) is not allowed"):
        SecondaryCorrection(hue_vs_sat=[(10, 5.0)])


# ------------------------------------------------------------------ stage 4


def test_grain_is_seeded_per_frame() -> None:
    image = np.full((40, 60, 3), 0.5, dtype=np.float32)
    settings = FinishingSettings(grain=Grain(amount=0.5, seed=3))
    a0 = apply_finishing(image, settings, frame_index=0)
    a0_again = apply_finishing(image, settings, frame_index=0)
    a1 = apply_finishing(image, settings, frame_index=1)
    other_seed = apply_finishing(
        image, FinishingSettings(grain=Grain(amount=0.5, seed=4)), frame_index=0
    )
    np.testing.assert_array_equal(a0, a0_again)
    assert np.abs(a0 - a1).mean() > 0.005
    assert np.abs(a0 - other_seed).mean() > 0.005
    # Zero mean, about the documented strength: 0.06 * amount at mid grey.
    assert abs(float((a0 - image).mean())) < 0.005
    assert 0.015 < float((a0 - image).std()) < 0.045


def test_vignette_darkens_corners_not_the_centre() -> None:
    image = np.full((90, 160, 3), 0.6, dtype=np.float32)
    out = apply_finishing(image, FinishingSettings(vignette=Vignette(amount=0.5)))
    assert out[45, 80] == pytest.approx([0.6, 0.6, 0.6])
    for y, x in ((0, 0), (0, 159), (89, 0), (89, 159)):
        assert (out[y, x] < 0.45).all()
    assert out[0, 80, 0] > out[0, 0, 0]  # edge middle is between centre and corner


@pytest.mark.parametrize(
    ("shape", "aspect", "rows", "cols"),
    [((270, 480), 2.39, 35, 0), ((1080, 1920), 2.39, 138, 0), ((360, 640), 1.0, 0, 140)],
)
def test_letterbox_bars_are_black_and_sized(
    shape: tuple[int, int], aspect: float, rows: int, cols: int
) -> None:
    height, width = shape
    assert letterbox_bars(height, width, aspect) == (rows, cols)
    image = np.full((height, width, 3), 0.7, dtype=np.float32)
    out = apply_finishing(
        image,
        FinishingSettings(letterbox=Letterbox(aspect=aspect), grain=Grain(amount=1.0)),
    )
    if rows:
        assert (out[:rows] == 0).all() and (out[height - rows :] == 0).all()
        assert (out[rows : height - rows].mean(axis=(1, 2)) > 0.5).all()
        visible = height - 2 * rows
        assert abs(width / visible - aspect) < 0.02
    if cols:
        assert (out[:, :cols] == 0).all() and (out[:, width - cols :] == 0).all()
        assert abs((width - 2 * cols) / height - aspect) < 0.02


def test_halation_and_bloom_glow_around_highlights_only() -> None:
    # Radius is a fraction of the height: sigma 4.3 px (halation), 14.4 px (bloom) here.
    image = np.full((360, 480, 3), 0.1, dtype=np.float32)
    image[170:190, 230:250] = 1.0
    for effect in ({"halation": Halation(amount=0.8)}, {"bloom": Bloom(amount=0.8)}):
        out = apply_finishing(image, FinishingSettings(**effect))
        assert out[180, 226, 0] > 0.12  # next to the highlight: lit
        np.testing.assert_allclose(out[5, 5], image[5, 5], atol=2e-3)  # far away: not
    halo = apply_finishing(image, FinishingSettings(halation=Halation(amount=0.8)))
    assert halo[180, 226, 0] - 0.1 > 2 * (halo[180, 226, 2] - 0.1)  # red-orange


def test_finishing_rejects_bad_values() -> None:
    with pytest.raises(ParameterError, match=r"vignette\.amount=2 is not allowed: expected 0"):
        Vignette(amount=2)
    with pytest.raises(ParameterError, match=r"grain parameter='sigma' is not allowed"):
        Grain.from_mapping({"sigma": 1})
    with pytest.raises(ParameterError, match=r"grain\.seed=-1 is not allowed"):
        Grain(seed=-1)


# ------------------------------------------------------------------ ColorGrader


def test_neutral_grader_returns_the_frame_untouched(frame: np.ndarray) -> None:
    grader = ColorGrader()
    assert grader.is_identity
    assert grader.grade(frame) is frame
    grader.set_primary_correction(exposure=0.0, contrast=50, brightness=50, saturation=50)
    assert grader.is_identity and grader.grade(frame) is frame


def test_identity_lut_through_the_grader(frame: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "identity.cube"
    write_cube(path, identity_lut(33))
    grader = ColorGrader()
    assert grader.apply_lut(path) is True
    out = grader.grade(frame)
    assert out is not frame
    assert np.abs(out.astype(int) - frame.astype(int)).max() <= 1


def test_swap_lut_through_the_grader_and_strength(frame: np.ndarray, swap_cube: Path) -> None:
    grader = ColorGrader()
    grader.apply_lut(swap_cube)
    np.testing.assert_array_equal(grader.grade(frame), frame[..., ::-1])
    grader.apply_stage(3, {"strength": 0.0})
    assert grader.is_identity
    grader.apply_stage(3, {"lut": None})
    assert grader.look is None


def test_1d_look_folds_into_the_curves(frame: np.ndarray, tmp_path: Path) -> None:
    ramp = np.linspace(1.0, 0.0, 17, dtype=np.float32)
    lut = Lut(
        title="negative",
        kind="1D",
        size=17,
        domain_min=(0, 0, 0),
        domain_max=(1, 1, 1),
        table=np.repeat(ramp[:, None], 3, axis=1),
    )
    write_cube(tmp_path / "negative.cube", lut)
    grader = ColorGrader()
    grader.apply_lut(tmp_path / "negative.cube")
    view = frame[:, ::-1]  # a non-contiguous view is fine too
    out = grader.grade(view)
    assert np.abs(out.astype(int) - (255 - view.astype(int))).max() <= 1


def test_fast_grade_matches_the_exact_float_path(frame: np.ndarray, swap_cube: Path) -> None:
    grader = ColorGrader()
    grader.set_primary_correction(exposure=0.4, contrast=60, brightness=48, saturation=65)
    grader.apply_stage(1, {"temperature": 20, "lift": [0.02, 0.0, -0.01]})
    exact = grader.grade_float(frame) * 255.0
    assert np.abs(grader.grade(frame) - exact).max() <= 0.51  # curves + matrix
    grader.apply_stage(2, {"hue_center": 30, "hue_width": 60, "hue_shift": 10})
    grader.apply_lut(swap_cube, 0.6, interpolation="tetrahedral")
    exact = grader.grade_float(frame) * 255.0
    # One cube for all the rest, evaluated on every 3rd level: within 1.5 levels of exact
    # even on this frame of random colours (the hardest case for the lattice).
    error = np.abs(grader.grade(frame) - exact)
    assert error.max() <= 1.5 and error.mean() <= 0.35


def test_grain_changes_per_frame_through_the_grader(frame: np.ndarray) -> None:
    grader = ColorGrader()
    grader.add_finishing_effect("grain", {"amount": 0.6, "seed": 9})
    a, b = grader.grade(frame, frame_index=10), grader.grade(frame, frame_index=11)
    np.testing.assert_array_equal(a, grader.grade(frame, frame_index=10))
    assert not np.array_equal(a, b)
    assert grader.remove_finishing_effect("grain") is True
    assert grader.is_identity


def test_json_round_trip(frame: np.ndarray, swap_cube: Path) -> None:
    grader = ColorGrader()
    grader.set_primary_correction(exposure=-0.5, contrast=55, brightness=52, saturation=40)
    grader.apply_stage(2, {"hue_vs_sat": [[200, 1.2], [20, 0.9]]})
    grader.apply_lut(swap_cube, strength=0.25)
    grader.add_finishing_effect("vignette", {"amount": 0.4})
    grader.add_finishing_effect("letterbox", {"aspect": 2.0})
    data = json.loads(json.dumps(grader.to_dict()))
    again = ColorGrader.from_dict(data)
    assert again.to_dict() == grader.to_dict()
    assert again.primary == grader.primary and again.finishing == grader.finishing
    assert ColorGrader.from_dict({"schema": 1}).is_identity
    with pytest.raises(ParameterError, match=r"grade key='colour' is not allowed"):
        ColorGrader.from_dict({"colour": {}})
    with pytest.raises(ParameterError, match=r"schema=99 is not allowed"):
        ColorGrader.from_dict({"schema": 99})


def test_over_layers_shot_on_section_on_global(swap_cube: Path) -> None:
    global_grade = ColorGrader()
    global_grade.apply_lut(swap_cube)
    global_grade.add_finishing_effect("grain", {})
    shot = ColorGrader()
    shot.set_primary_correction(exposure=1.0, contrast=50, brightness=50, saturation=50)
    combined = shot.over(global_grade)
    assert combined.primary.exposure == 1.0
    assert combined.look == global_grade.look
    assert combined.finishing.grain is not None


@pytest.mark.parametrize(
    ("stage", "corrections", "message"),
    [
        (5, {}, r"stage=5 is not allowed: expected 1, 2, 3 or 4"),
        (True, {}, r"stage=True is not allowed"),
        (1, {"exposur": 1}, r"primary key='exposur' is not allowed: expected one of exposure"),
        (1, {"exposure": 2.5}, r"exposure=2\.5 is not allowed: expected -2\.0\.\.2\.0"),
        (2, {"hue": 3}, r"secondary key='hue' is not allowed"),
        (2, {"saturation_gain": 9}, r"saturation_gain=9 is not allowed: expected 0\.0\.\.4\.0"),
        (3, {"strength": 0.5}, r"lut=None is not allowed"),
        (3, {"lut": "x.cube", "mix": 1}, r"look key='mix' is not allowed"),
        (4, {"sparkle": {}}, r"finishing effect='sparkle' is not allowed"),
        (4, {"grain": 0.3}, r"grain=0\.3 is not allowed: expected a dict"),
        (4, {"letterbox": {"aspect": 9}}, r"letterbox\.aspect=9 is not allowed"),
        (1, [("exposure", 1)], r"corrections=.* is not allowed: expected a dict"),
    ],
)
def test_apply_stage_validates(stage: int, corrections: object, message: str) -> None:
    grader = ColorGrader()
    with pytest.raises(ParameterError, match=message):
        grader.apply_stage(stage, corrections)  # type: ignore[arg-type]
    assert grader.is_identity  # a failed call changes nothing


def test_bad_lut_and_bad_frames(tmp_path: Path, frame: np.ndarray) -> None:
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n")
    grader = ColorGrader()
    with pytest.raises(LutParseError, match=r"line 2: too few entries"):
        grader.apply_lut(bad)
    assert grader.look is None
    with pytest.raises(ParameterError, match="effect_name='glitter'"):
        grader.add_finishing_effect("glitter", {})
    grader.add_finishing_effect("vignette", {})
    with pytest.raises(ParameterError, match=r"frame=\(36, 64\) is not allowed"):
        grader.grade(frame[..., 0].copy())
    with pytest.raises(ParameterError, match=r"frame_index=-1 is not allowed"):
        grader.grade(frame, frame_index=-1)


def test_shipped_look_by_name(frame: np.ndarray) -> None:
    grader = ColorGrader()
    grader.apply_lut("teal-orange", 0.5)
    assert grader.look is not None and grader.look.path.name == "teal-orange.cube"
    out = grader.grade(frame)
    assert out.shape == frame.shape and not np.array_equal(out, frame)
