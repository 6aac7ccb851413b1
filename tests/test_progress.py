"""Progress goes to stderr, only for a person watching, and never under --quiet."""

import io
import sys

from recapture import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_and_not_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    progress.set_quiet(False)
    assert not progress.bars_enabled()
    assert list(progress.bar(range(3), label="x")) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert progress.bars_enabled()
    assert list(progress.bar(range(3), label="replicates")) == [0, 1, 2]
    assert "replicates" in tty.getvalue()

    progress.set_quiet(True)
    try:
        quiet = _Tty()
        monkeypatch.setattr(sys, "stderr", quiet)
        assert not progress.bars_enabled()
        with progress.bar(total=5, label="EM") as b:
            b.update(5)
        with progress.step("a step"):
            progress.info("hidden")
        assert quiet.getvalue() == ""
    finally:
        progress.set_quiet(False)


def test_step_reports_its_result_and_time(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    progress.set_quiet(False)
    with progress.step("clustering") as st:
        st["result"] = "12 persons"
    lines = err.getvalue().splitlines()
    assert lines[0] == "· clustering …"
    assert lines[1].startswith("  clustering done in ") and lines[1].endswith("— 12 persons")
