"""``apex-director models list|verify|import|pull`` end to end, through ``main()``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main
from tests.engine.test_model_manager import (
    SD15_NAMES,
    SDXL_NAMES,
    XL_ATTN2_K,
    _HubHandler,
    write_safetensors,
)


def _config(tmp_path: Path, models_dir: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[paths]\nmodels_dir = "{models_dir.as_posix()}"\n', encoding="utf-8")
    return path


def test_import_list_verify_through_the_configured_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    config = ["--config", str(_config(tmp_path, models))]
    xl = write_safetensors(tmp_path / "dl" / "sd_xl_turbo_1.0.safetensors", SDXL_NAMES)
    lora = write_safetensors(
        tmp_path / "dl" / "ink.safetensors", {XL_ATTN2_K + ".lora_down.weight": (4, 2048)}
    )
    assert main([*config, "models", "import", str(xl), "--licence", "test"]) == 0
    assert main([*config, "models", "import", str(lora), "--link"]) == 0
    out = capsys.readouterr().out
    assert "copied" in out and "checkpoint, SDXL (turbo)" in out
    assert "linked" in out and "lora, SDXL" in out

    assert main([*config, "models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "(apex layout): 2 model file(s)" in listing
    assert "checkpoint SDXL" in listing and "checkpoints/sd_xl_turbo_1.0.safetensors" in listing
    assert "lora       SDXL" in listing and "rank 4" in listing

    assert main([*config, "models", "verify"]) == 0
    assert capsys.readouterr().out.count("OK ") == 2

    target = models / "checkpoints" / "sd_xl_turbo_1.0.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights: same size, different hash
    target.write_bytes(bytes(data))
    assert main([*config, "models", "verify"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH  sd_xl_turbo_1.0" in out and "download it again" in out

    target.unlink()
    assert main([*config, "models", "verify", "sd_xl_turbo_1.0"]) == 0
    assert "MISSING   sd_xl_turbo_1.0" in capsys.readouterr().out


def test_bad_files_are_one_error_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    unknown = write_safetensors(tmp_path / "mystery.safetensors", {"w": (2, 2)})
    assert main(["models", "--models-dir", str(models), "import", str(unknown)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "mystery.safetensors" in err[0]
    assert "supported: Stable Diffusion 1.5" in err[0]

    cut = write_safetensors(tmp_path / "cut.safetensors", SD15_NAMES)
    cut.write_bytes(cut.read_bytes()[:-10])
    assert main(["models", "--models-dir", str(models), "import", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "cut.safetensors: truncated" in err and "models verify" in err


def test_list_reads_a_comfyui_folder_and_flags_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    comfy = tmp_path / "ComfyUI" / "models"
    write_safetensors(comfy / "checkpoints" / "v1-5.safetensors", SD15_NAMES)
    cut = write_safetensors(comfy / "checkpoints" / "half.safetensors", SD15_NAMES)
    cut.write_bytes(cut.read_bytes()[:100])
    (comfy / "upscale_models").mkdir()
    assert main(["models", "--models-dir", str(comfy), "list"]) == 0
    out = capsys.readouterr().out
    assert "(comfyui layout): 2 model file(s)" in out
    assert "checkpoint SD 1.5" in out
    assert "problem: " in out and "half.safetensors" in out


@pytest.fixture()
def hub_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_HubHandler]]:
    pytest.importorskip("huggingface_hub")
    handler = type(
        "Hub", (_HubHandler,), {"files": {}, "gated": set(), "get_actions": [], "log": []}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    handler.endpoint = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_pull_through_the_cli(
    tmp_path: Path, hub_server: type[_HubHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = hub_server.endpoint  # type: ignore[attr-defined]
    src = write_safetensors(tmp_path / "src.safetensors", SD15_NAMES)
    hub_server.files[("acme/sd", "weights/sd.safetensors")] = src.read_bytes()
    hub_server.gated.add("corp/locked")
    models = tmp_path / "models"
    args = ["models", "--models-dir", str(models), "pull"]
    assert main([*args, "acme/sd:weights/sd.safetensors", "--endpoint", endpoint]) == 0
    captured = capsys.readouterr()
    assert "sd: checkpoints/sd.safetensors (checkpoint, SD 1.5)" in captured.out
    assert "SHA-256 checked against the hub" in captured.err
    assert (models / "checkpoints" / "sd.safetensors").read_bytes() == src.read_bytes()
    assert main(["models", "--models-dir", str(models), "verify"]) == 0
    assert "OK        sd:" in capsys.readouterr().out

    assert main([*args, "corp/locked:m.safetensors", "--endpoint", endpoint]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: corp/locked is gated")
