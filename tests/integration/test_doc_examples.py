"""Every code example in the docs runs.

Fenced ```python blocks of ``docs/*.md`` and ``README.md`` run, each in its own
interpreter with an empty temporary folder as the working directory (and as HOME, so
nothing touches the user's configuration or cache) and the repository on ``sys.path``.
Fenced ```sh / ```bash blocks are checked line by line: each command that starts with
``apex-director`` or ``.venv/bin/apex-director`` must parse with the CLI's own argument
parser (its sub-command, options and values), and its sub-command's ``--help`` must work.

Markers are HTML comments on the lines just before a fence (the rendered page does not
show them):

* ``<!-- test-setup: NAME[, NAME...] -->`` puts into the working folder, before the block
  runs, the files a reader of that example would have: ``SETUPS`` below maps each name to
  a builder (a LUT and reference images, photos of a character, a tiny Stable Diffusion
  model, a song, a draft render with its timeline document).  Expensive things (the
  render, the model) are made once per test session and copied.  A setup may also check
  the outcome (the Stable Diffusion example must really run on the diffusers backend, not
  fall over to the procedural one).
* ``<!-- no-test: reason -->`` skips a block that cannot run here; the reason is required.
  No page uses it today.

A marker that is not directly above a fence (or another marker) fails, and so does an
unknown setup name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import cli

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(\w+)\s*$")
MARKER = re.compile(r"^<!--\s*(?P<kind>no-test|test-setup)\b(?::(?P<value>.*?))?\s*-->\s*$")
CLI_NAMES = ("apex-director", ".venv/bin/apex-director")
EXAMPLE_TIMEOUT_S = 180  # a hang guard, not a speed check: a loaded CI box is slow
SPHINX_BUILD = (sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-q")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a doc page."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    no_test: str | None  # None: not marked; "" marked without a reason
    setup: tuple[str, ...] = ()  # names from a test-setup marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` with their language and markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        no_test: str | None = None
        setup: list[str] = []
        above = index - 1
        while above >= 0 and (marker := MARKER.match(lines[above].strip())):
            value = (marker.group("value") or "").strip()
            if marker.group("kind") == "no-test":
                no_test = value
            else:
                setup[:0] = [name.strip() for name in value.split(",")]
            above -= 1
        blocks.append(
            Block(
                path,
                index + 1,
                match.group(1),
                "\n".join(lines[index + 1 : end]),
                no_test,
                tuple(setup),
            )
        )
        index = end + 1
    return blocks


def stray_markers(path: Path) -> list[int]:
    """1-based lines of markers that are not directly above a fence (or another marker)."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    stray = []
    for number, line in enumerate(lines, start=1):
        if "no-test" not in line and "test-setup" not in line:
            continue
        if not line.startswith("<!--"):
            continue  # prose that names a marker, e.g. in the developer guide
        following = number  # index of the next line
        while following < len(lines) and MARKER.match(lines[following]):
            following += 1
        if not MARKER.match(line) or following >= len(lines) or not FENCE.match(lines[following]):
            stray.append(number)
    return stray


# --------------------------------------------------------------------------- setups


def example_env(home: Path) -> dict[str, str]:
    """The environment an example runs in: ``home`` as HOME and for every XDG folder."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QT_QPA_PLATFORM": "offscreen",
    }


def _write_song(path: Path) -> Path:
    """Eight seconds at 120 bpm: two bars of intro, two of chorus (the user guide's song)."""
    from engine.audio.synth import SectionSpec, SongSpec, synthesize_song
    from tests.media import write_wav

    song = synthesize_song(
        SongSpec(
            tempo=120,
            sections=(
                SectionSpec(label="intro", bars=2, energy=0.3),
                SectionSpec(label="chorus", bars=2, energy=0.8),
            ),
        )
    )
    return write_wav(path, song.audio, song.sample_rate)


def _write_png(path: Path, image: object) -> Path:
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.asarray(image, dtype=np.uint8)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), path
    return path


class Materials:
    """What the setups make once per test session: a draft render and a tiny SD model.

    ``request`` is the running test's, so session fixtures of the suite are shared.
    """

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._render: Path | None = None
        self.request: pytest.FixtureRequest | None = None

    def draft_render(self) -> Path:
        """A folder with ``song.wav``, and ``video.mp4`` + ``video.timeline.json`` rendered
        from it by ``apex-director render --preset draft --timeline-json`` (the real CLI)."""
        if self._render is None:
            folder = self._factory.mktemp("doc-render")
            home = self._factory.mktemp("doc-render-home")
            _write_song(folder / "song.wav")
            command = [
                *("render", "song.wav", "-o", "video.mp4", "--preset", "draft"),
                *("--timeline-json", "video.timeline.json"),
            ]
            result = subprocess.run(
                [sys.executable, "-m", "engine.cli", *command],
                check=False,
                cwd=folder,
                env=example_env(home),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"the draft render failed:\n{result.stderr[-3000:]}"
            self._render = folder
        return self._render

    def tiny_sd15(self) -> Path:
        """The suite's tiny random-weight SD 1.5 diffusers folder (``tiny_sd15_folder`` of
        ``tests/conftest.py``: built once per session, shared with the backend tests)."""
        assert self.request is not None, "set materials.request first"
        folder: Path = self.request.getfixturevalue("tiny_sd15_folder")
        return folder


@dataclass(frozen=True)
class Setup:
    """Prepares the working folder of an example; ``check`` looks at it after the run."""

    prepare: Callable[[Path, Materials], None]
    check: Callable[[Path], None] | None = None


def _style_files(folder: Path, materials: Materials) -> None:
    """A project folder with a teal-and-amber LUT and two reference stills of the look."""
    import numpy as np

    from engine.grading.lut import Lut, identity_lut, write_cube

    project = folder / "my-video"
    base = identity_lut(9)
    r, g, b = np.moveaxis(base.table, -1, 0)
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # shadows towards teal, highlights towards amber: a crude but real look
    teal = np.stack([r - 0.08 * (1 - luma), g + 0.03 * (1 - luma), b + 0.08 * (1 - luma)], -1)
    look = teal + np.stack([0.06 * luma, 0.02 * luma, -0.06 * luma], -1)
    (project / "looks").mkdir(parents=True)
    write_cube(
        project / "looks" / "teal.cube",
        Lut("teal night", "3D", 9, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.clip(look, 0, 1)),
    )
    _, x = np.mgrid[0:90, 0:160] / 160
    for number, (dark, light) in enumerate(
        [((11, 61, 79), (242, 165, 65)), ((23, 127, 150), (242, 165, 65))], start=1
    ):
        gradient = np.array(dark) + (np.array(light) - np.array(dark)) * x[..., None]
        _write_png(project / "refs" / f"look{number}.png", gradient)


def _character_photos(folder: Path, materials: Materials) -> None:
    """Photos of Mara (front, side), of another character, and a shot to check."""
    from tests.engine.test_characters import draw_figure

    _write_png(folder / "mara_front.png", draw_figure("A"))
    _write_png(folder / "mara_side.png", draw_figure("A", background=7, dx=6))
    _write_png(folder / "shot_03.png", draw_figure("A", background=3, dx=-10, scale=0.9))
    _write_png(folder / "jonas.png", draw_figure("B"))


def _sd_checkpoint(folder: Path, materials: Materials) -> None:
    """``models/checkpoints/dreamshaper_8``: the tiny random-weight model under the name the
    example uses. A reader's checkpoint is a gigabytes-large ``.safetensors`` file; this is a
    diffusers folder, which the name lookup (``resolve_model_path``) finds the same way."""
    shutil.copytree(materials.tiny_sd15(), folder / "models" / "checkpoints" / "dreamshaper_8")


def _ran_on_diffusers(folder: Path) -> None:
    sidecars = sorted((folder / "my-video" / "images").glob("*.json"))
    assert sidecars, "the example made no stills"
    backends = {json.loads(p.read_text(encoding="utf-8"))["backend"] for p in sidecars}
    assert backends == {"diffusers"}, f"stills came from {backends}, not the checkpoint"


def _song(folder: Path, materials: Materials) -> None:
    """``song.wav``: eight seconds with known beats."""
    _write_song(folder / "song.wav")


def _draft_render(folder: Path, materials: Materials) -> None:
    """``song.wav``, its draft ``video.mp4`` and ``video.timeline.json``."""
    for item in materials.draft_render().iterdir():
        if item.is_file():
            shutil.copy2(item, folder / item.name)


SETUPS: dict[str, Setup] = {
    "style-files": Setup(_style_files),
    "character-photos": Setup(_character_photos),
    "sd-checkpoint": Setup(_sd_checkpoint, check=_ran_on_diffusers),
    "song": Setup(_song),
    "draft-render": Setup(_draft_render),
}


@pytest.fixture(scope="session")
def materials(tmp_path_factory: pytest.TempPathFactory) -> Materials:
    return Materials(tmp_path_factory)


# --------------------------------------------------------------------------- tests

ALL_BLOCKS = [block for path in DOC_FILES for block in extract_blocks(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]
SHELL_BLOCKS = [block for block in ALL_BLOCKS if block.language in ("sh", "bash")]


def _cli_commands(code: str) -> list[list[str]]:
    """The ``apex-director`` commands of a shell block, as argument lists (without the
    program name); continuation lines are joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] in CLI_NAMES:
            commands.append(words[1:])
    return commands


def test_blocks_are_found_and_markers_are_valid() -> None:
    assert len(PYTHON_BLOCKS) >= 10, "the docs' python examples were not found"
    assert any(_cli_commands(block.code) for block in SHELL_BLOCKS)
    unexplained = [block.where for block in ALL_BLOCKS if block.no_test == ""]
    assert not unexplained, f"<!-- no-test: reason --> needs a reason at {unexplained}"
    unknown = {
        block.where: name for block in ALL_BLOCKS for name in block.setup if name not in SETUPS
    }
    assert not unknown, f"unknown test-setup names (known: {sorted(SETUPS)}): {unknown}"
    stray = {
        str(path.relative_to(ROOT)): lines for path in DOC_FILES if (lines := stray_markers(path))
    }
    assert not stray, f"markers not directly above a fence (page: lines): {stray}"
    marked = [block for block in ALL_BLOCKS if block.no_test]
    runnable = [block for block in PYTHON_BLOCKS if block.no_test is None]
    # Most examples must really run, not be marked away.
    assert len(runnable) >= len([b for b in marked if b.language == "python"]), (
        f"{len(runnable)} runnable python examples, {len(marked)} marked no-test"
    )
    # every setup is used by some page (an unused one is dead code)
    assert {name for block in ALL_BLOCKS for name in block.setup} == set(SETUPS)


def test_extract_blocks_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- no-test: needs a GPU -->\n```python\nimport torch\n```\n"
        "<!-- no-test -->\n```sh\napex-director qa x.mp4\n```\n```python\nx = 1\n```\n"
        "<!-- test-setup: song -->\n<!-- test-setup: sd-checkpoint, draft-render -->\n"
        "```python\ny = 2\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [(b.language, b.no_test, b.setup) for b in blocks] == [
        ("python", "needs a GPU", ()),
        ("sh", "", ()),
        ("python", None, ()),
        ("python", None, ("song", "sd-checkpoint", "draft-render")),
    ]
    assert blocks[2].code == "x = 1" and blocks[2].line == 10
    assert stray_markers(page) == []


def test_stray_markers_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Put `<!-- no-test: reason -->` before a fence.\n"  # prose: not a marker
        "<!-- test-setup: song -->\n\n```python\nx = 1\n```\n"  # a blank line in between
        "<!-- test-setup: song -->\nSome text\n"
        "<!-- no-test: a reason -->\n<!-- test-setup: song -->\n```python\ny = 1\n```\n"
        "<!-- no-test: at the end -->\n",
        encoding="utf-8",
    )
    assert stray_markers(page) == [2, 7, 14]


def test_cli_commands_joins_continuations() -> None:
    code = "# a comment\napex-director render a.mp3 -o v.mp4 \\\n    --preset draft  # fast\nls\n"
    assert _cli_commands(code) == [["render", "a.mp3", "-o", "v.mp4", "--preset", "draft"]]


def test_setups_make_what_the_examples_read(tmp_path: Path, materials: Materials) -> None:
    """The cheap setups make real files of the kinds the pages name (the render and the
    model are checked by the examples that use them)."""
    from engine.generation.image_io import read_image_safely
    from engine.grading.lut import load_cube

    SETUPS["style-files"].prepare(tmp_path, materials)
    lut = load_cube(tmp_path / "my-video" / "looks" / "teal.cube")
    assert lut.kind == "3D" and lut.size == 9
    # not an identity: shadows go teal (blue up), highlights amber (blue down)
    assert lut.table[0, 0, 0, 2] > 0.05 and lut.table[-1, -1, -1, 2] < 0.95
    for name in ("look1.png", "look2.png"):
        assert read_image_safely(tmp_path / "my-video" / "refs" / name).shape == (90, 160, 3)
    SETUPS["character-photos"].prepare(tmp_path, materials)
    for name in ("mara_front.png", "mara_side.png", "shot_03.png", "jonas.png"):
        assert read_image_safely(tmp_path / name).shape == (256, 256, 3)


def test_sd_check_refuses_stills_from_another_backend(tmp_path: Path) -> None:
    check = SETUPS["sd-checkpoint"].check
    assert check is not None
    images = tmp_path / "my-video" / "images"
    images.mkdir(parents=True)
    with pytest.raises(AssertionError, match="no stills"):
        check(tmp_path)
    (images / "a.json").write_text('{"backend": "diffusers"}', encoding="utf-8")
    check(tmp_path)
    # a failed model load falls over to the procedural backend: the example "works"
    (images / "b.json").write_text('{"backend": "procedural"}', encoding="utf-8")
    with pytest.raises(AssertionError, match="procedural"):
        check(tmp_path)


@pytest.mark.parametrize(
    "block",
    [b for b in PYTHON_BLOCKS if b.no_test is None],
    ids=lambda b: b.where,
)
def test_python_example_runs(
    block: Block, tmp_path: Path, materials: Materials, request: pytest.FixtureRequest
) -> None:
    materials.request = request
    for name in block.setup:
        SETUPS[name].prepare(tmp_path, materials)
    script = tmp_path / "example.py"
    script.write_text(block.code + "\n", encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            cwd=tmp_path,
            env=example_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the example ran past {EXAMPLE_TIMEOUT_S} s")
    assert result.returncode == 0, f"{block.where} failed:\n{result.stderr[-3000:]}"
    for name in block.setup:
        check = SETUPS[name].check
        if check is not None:
            check(tmp_path)


@pytest.mark.parametrize(
    "block",
    [b for b in SHELL_BLOCKS if b.no_test is None and _cli_commands(b.code)],
    ids=lambda b: b.where,
)
def test_cli_example_parses(block: Block) -> None:
    parser = cli._parser()
    for argv in _cli_commands(block.code):
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parser.parse_args(argv)
        except SystemExit as exit_:
            pytest.fail(
                f"{block.where}: `apex-director {shlex.join(argv)}` does not parse "
                f"(exit {exit_.code}): {stderr.getvalue().strip()}"
            )
        sub_command = argv[0]
        with (
            contextlib.redirect_stdout(io.StringIO()) as help_text,
            pytest.raises(SystemExit) as help_exit,
        ):
            parser.parse_args([sub_command, "--help"])
        assert help_exit.value.code == 0 and sub_command in help_text.getvalue(), (
            f"{block.where}: `apex-director {sub_command} --help` failed"
        )


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    """``make docs``'s build: the pages and the engine.api reference, warnings as errors."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("myst_parser", reason="the docs extra is not installed")
    result = subprocess.run(
        [*SPHINX_BUILD, str(ROOT / "docs"), str(tmp_path / "html")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # The reference documents every public name (the lazily imported ones included).
    import engine.api

    reference = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    documented = set(
        re.findall(r'<dt class="sig sig-object py" id="engine\.api\.(\w+)"', reference)
    )
    assert sorted(set(engine.api.__all__) - documented) == []
