"""Progress lines for logs: LogProgress, and the CLI when its output is not a terminal."""

import io
import re
import time

import pytest

import test_cli
from facedialect.cli import app
from facedialect.progress import LogProgress, format_duration, labelled_ticker

runner = test_cli.runner
kdef_tree = test_cli.kdef_tree   # the fixture: 4 KDEF-named subjects of London faces


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_format_duration():
    assert [format_duration(s) for s in (0, 9.4, 59, 60, 125, 3599, 3600, 3720, 90000)] == [
        "0s", "9s", "59s", "1m00s", "2m05s", "59m59s", "1h00m", "1h02m", "25h00m"]
    assert format_duration(-3) == "0s"


def test_start_periodic_and_end_lines():
    log, clock = io.StringIO(), FakeClock()
    with LogProgress(log, interval=30, clock=clock, heartbeat=False) as bar:
        task = bar.add_task("features", total=None)
        bar.update(task, completed=0, total=1700)          # start line
        clock.now += 10
        bar.update(task, completed=100, total=1700)        # under 30 s since the last line
        clock.now += 115
        bar.update(task, completed=412, total=1700)        # 125 s: a line with the ETA
        clock.now += 5
        bar.update(task, completed=420, total=1700)        # 5 s later: none
        clock.now += 375
        bar.update(task, completed=1700, total=1700)       # end line
        bar.update(task, completed=1700, total=1700)       # nothing after the end
    eta = format_duration(125 / 412 * (1700 - 412))
    assert log.getvalue().splitlines() == [
        "features: started, 0/1700 (0%)",
        f"features: 412/1700 (24%), 2m05s elapsed, ETA {eta}",
        "features: done, 1700/1700 in 8m25s",
    ]
    assert eta == "6m31s"


def test_interval_zero_prints_every_update_and_eta_from_the_first_update():
    log, clock = io.StringIO(), FakeClock()
    with LogProgress(log, interval=0, clock=clock) as bar:
        task = bar.add_task("train K runs 0-1", total=10)
        clock.now += 60                    # e.g. resumed from a checkpoint at 4/10
        bar.update(task, completed=4)
        for done in (5, 6):
            clock.now += 2
            bar.update(task, completed=done)
        clock.now += 8
        bar.update(task, advance=4)
    assert log.getvalue().splitlines() == [
        "train K runs 0-1: started, 4/10 (40%)",
        "train K runs 0-1: 5/10 (50%), 1m02s elapsed, ETA 10s",   # 2 s per step since 4/10
        "train K runs 0-1: 6/10 (60%), 1m04s elapsed, ETA 8s",
        "train K runs 0-1: done, 10/10 in 1m12s",
    ]


def test_unfinished_tasks_unknown_totals_and_errors():
    log, clock = io.StringIO(), FakeClock()
    with LogProgress(log, interval=0, clock=clock) as bar:
        dl = bar.add_task("ICT-FaceKit", total=None)
        part = bar.add_task("rating heads", total=50)
        never = bar.add_task("never updated", total=5)
        bar.update(dl, completed=3)
        clock.now += 4
        bar.update(dl, completed=7)
        bar.update(part, completed=20)
    assert never == 2
    assert log.getvalue().splitlines() == [
        "ICT-FaceKit: started, 3 done",
        "ICT-FaceKit: 7 done, 4s elapsed",
        "rating heads: started, 20/50 (40%)",
        "ICT-FaceKit: done, 7 in 4s",
        "rating heads: ended at 20/50 (40%) after 4s",
    ]
    log = io.StringIO()
    with pytest.raises(RuntimeError), LogProgress(log, interval=0, clock=clock) as bar:
        task = bar.add_task("saliency: maps", total=8)
        bar.update(task, completed=3)
        raise RuntimeError("boom")
    assert log.getvalue().splitlines()[-1] == "saliency: maps: stopped at 3/8 (37%) after 0s"


def test_labelled_ticker_and_a_task_that_starts_again():
    log, clock = io.StringIO(), FakeClock()
    with LogProgress(log, interval=30, clock=clock, heartbeat=False) as bar:
        tick = labelled_ticker(bar)
        tick("ingest A", 0, 2)
        tick("ingest B", 0, 1)
        tick("ingest A", 2, 2)
        tick("ingest B", 1, 1)
        clock.now += 3
        tick("ingest A", 0, 3)              # the same label again: a new start
        tick("ingest A", 3, 3)
    assert log.getvalue().splitlines() == [
        "ingest A: started, 0/2 (0%)", "ingest B: started, 0/1 (0%)",
        "ingest A: done, 2/2 in 0s", "ingest B: done, 1/1 in 0s",
        "ingest A: started, 0/3 (0%)", "ingest A: done, 3/3 in 0s",
    ]


def test_heartbeat_prints_while_a_step_is_slow():
    log = io.StringIO()
    with LogProgress(log, interval=0.05) as bar:
        task = bar.add_task("features", total=4)
        bar.update(task, completed=0)
        time.sleep(0.3)                     # one slow step: no update for 6 intervals
        bar.update(task, completed=4)
    lines = log.getvalue().splitlines()
    assert lines[0] == "features: started, 0/4 (0%)"
    assert lines[-1] == "features: done, 4/4 in 0s"
    assert len(lines) >= 3 and set(lines[1:-1]) == {"features: 0/4 (0%), 0s elapsed"}
    before = log.getvalue()
    time.sleep(0.15)                        # the thread stopped with the block
    assert log.getvalue() == before


def test_default_stream_is_stderr_at_write_time(capsys):
    with LogProgress(interval=0) as bar:
        bar.update(bar.add_task("x", total=1), completed=1)
    assert capsys.readouterr().err == "x: started, 1/1 (100%)\nx: done, 1/1 in 0s\n"


def _plain(output: str) -> None:
    assert "\x1b" not in output and "[bold]" not in output and "\r" not in output


def test_cli_stimuli_prints_progress_lines_when_not_a_terminal(tmp_path, monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    res = runner.invoke(app, ["stimuli", "--out", str(tmp_path / "s"), "--aus", "12",
                              "--levels", "3", "--size", "64", "--base-face", "builtin"])
    assert res.exit_code == 0, res.output
    assert "stimuli: started, 0/3 (0%)" in res.output
    assert re.search(r"^stimuli: done, 3/3 in \d+s$", res.output, re.M), res.output
    _plain(res.output)


def test_cli_ingest_and_preprocess_print_progress_lines(tmp_path, kdef_tree, monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "progress"
output = "{tmp_path / 'run'}"

[[databases]]
name = "KDEF"
preset = "kdef"
root = "{kdef_tree}"
n_subjects = 2
""")
    res = runner.invoke(app, ["ingest", str(study)])
    assert res.exit_code == 0, res.output
    assert "ingest KDEF: started, 0/28 (0%)" in res.output   # README.txt is not opened
    assert re.search(r"^ingest KDEF: done, 28/28 in \d+s$", res.output, re.M), res.output
    _plain(res.output)
    res = runner.invoke(app, ["preprocess", str(study)])
    assert res.exit_code == 0, res.output
    assert re.search(r"^pre-processing: started, \d+/28 \(\d+%\)$", res.output, re.M)
    assert re.search(r"^pre-processing: done, 28/28 in \d+s$", res.output, re.M), res.output
    _plain(res.output)
