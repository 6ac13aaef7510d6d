"""Every code example in the docs runs (or says why it cannot).

Fenced ```python blocks of ``docs/*.md`` and ``README.md`` run, each in its own
interpreter with an empty temporary folder as the working directory (and as HOME, so
nothing touches the user's configuration or cache) and the repository on ``sys.path``.
Fenced ```sh / ```bash blocks are checked line by line: each command that starts with
``apex-director`` or ``.venv/bin/apex-director`` must parse with the CLI's own argument
parser (its sub-command, options and values), and its sub-command's ``--help`` must work.

A block that cannot run here (it needs a GPU, a model file, the network or a file the
reader has) is marked with ``<!-- no-test: reason -->`` on the line just before its fence;
a marker without a reason fails.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import cli

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(\w+)\s*$")
NO_TEST = re.compile(r"^<!--\s*no-test(?::(?P<reason>.*?))?\s*-->\s*$")
CLI_NAMES = ("apex-director", ".venv/bin/apex-director")
EXAMPLE_TIMEOUT_S = 30
SPHINX_BUILD = (sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-q")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a doc page."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    no_test: str | None  # None: not marked; "" marked without a reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` with their language and ``no-test`` marker."""
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
        previous = lines[index - 1].strip() if index > 0 else ""
        marker = NO_TEST.match(previous)
        no_test = None if marker is None else (marker.group("reason") or "").strip()
        blocks.append(
            Block(path, index + 1, match.group(1), "\n".join(lines[index + 1 : end]), no_test)
        )
        index = end + 1
    return blocks


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


def test_blocks_are_found_and_markers_have_reasons() -> None:
    assert len(PYTHON_BLOCKS) >= 10, "the docs' python examples were not found"
    assert any(_cli_commands(block.code) for block in SHELL_BLOCKS)
    unexplained = [block.where for block in ALL_BLOCKS if block.no_test == ""]
    assert not unexplained, f"<!-- no-test: reason --> needs a reason at {unexplained}"
    marked = [block for block in ALL_BLOCKS if block.no_test]
    runnable = [block for block in PYTHON_BLOCKS if block.no_test is None]
    # Most examples must really run, not be marked away.
    assert len(runnable) >= len([b for b in marked if b.language == "python"]), (
        f"{len(runnable)} runnable python examples, {len(marked)} marked no-test"
    )


def test_extract_blocks_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- no-test: needs a GPU -->\n```python\nimport torch\n```\n"
        "<!-- no-test -->\n```sh\napex-director qa x.mp4\n```\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [(b.language, b.no_test) for b in blocks] == [
        ("python", "needs a GPU"),
        ("sh", ""),
        ("python", None),
    ]
    assert blocks[2].code == "x = 1" and blocks[2].line == 10


def test_cli_commands_joins_continuations() -> None:
    code = "# a comment\napex-director render a.mp3 -o v.mp4 \\\n    --preset draft  # fast\nls\n"
    assert _cli_commands(code) == [["render", "a.mp3", "-o", "v.mp4", "--preset", "draft"]]


@pytest.mark.parametrize(
    "block",
    [b for b in PYTHON_BLOCKS if b.no_test is None],
    ids=lambda b: b.where,
)
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / ".config"),
        "XDG_CACHE_HOME": str(tmp_path / ".cache"),
        "XDG_DATA_HOME": str(tmp_path / ".local" / "share"),
        "QT_QPA_PLATFORM": "offscreen",
    }
    script = tmp_path / "example.py"
    script.write_text(block.code + "\n", encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the example ran past {EXAMPLE_TIMEOUT_S} s")
    assert result.returncode == 0, f"{block.where} failed:\n{result.stderr[-3000:]}"


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
