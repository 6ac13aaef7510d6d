from __future__ import annotations

import io
import logging

import pytest

from engine.events import JobFinished, JobProgress
from engine.progress import ProgressPrinter


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(stage: str, step: int, total: int) -> JobProgress:
    return JobProgress(job_id="j", stage=stage, step=step, total=total, message=f"{step}")


def test_terminal_gets_one_bar_per_stage() -> None:
    stream = FakeTerminal()
    printer = ProgressPrinter(stream, width=10)
    printer(_progress("analyse", 0, 2))
    printer(_progress("analyse", 2, 2))
    printer(_progress("assemble", 5, 10))
    printer(_progress("assemble", 10, 10))
    printer(JobFinished(job_id="j", result={}))
    printer.finish()
    lines = stream.getvalue().split("\n")
    assert lines[0].rstrip().endswith("100.0%  2")
    assert lines[0].startswith("\ranalyse")
    assert "assemble  ██████████ 100.0%" in lines[1]
    assert lines[2] == ""


def test_pipes_get_plain_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    with caplog.at_level(logging.INFO, logger="engine.progress"):
        for step in range(101):
            printer(_progress("generate", step, 100))
    assert stream.getvalue() == ""
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5  # 0, 25, 50, 75, 100 %
    assert messages[-1].startswith("generate: 100%")
