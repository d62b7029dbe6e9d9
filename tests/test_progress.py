"""hrpred.progress: no bar frames in a log, one line per phase instead."""

from __future__ import annotations

import re

from hrpred.progress import Bar, track, write


def test_a_log_gets_one_line_per_phase_and_no_frames(capsys) -> None:
    with Bar("clean pass 1", "lines", total=8) as bar:  # stderr is captured: not a terminal
        for _ in range(8):
            bar.update(1)
    assert list(track(range(3), "evaluate test", "chunks")) == [0, 1, 2]
    write("epoch 1: val MAE 7.0")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert re.fullmatch(r"clean pass 1: 8 lines in \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"evaluate test: 3 chunks in \d+\.\d s", lines[1]), lines
    assert lines[2:] == ["epoch 1: val MAE 7.0"]


def test_disabled_or_summary_off_prints_nothing(capsys) -> None:
    bar = Bar("epoch 1/6", "batches", total=4, enabled=False)
    bar.update(4)
    bar.close()
    bar.close()  # closing twice prints once at most
    with Bar("epoch 2/6", "batches", total=4, summary=False) as quiet:
        quiet.update(4)
    assert capsys.readouterr().err == ""
