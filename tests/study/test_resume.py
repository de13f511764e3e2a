"""Kill a study with SIGKILL in the middle of a run, run it again: no run done twice, no row lost,
the database intact."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from studyfake import fake_run

from losslab.study.runner import run_dir_of, run_study
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore

# The child loads the parsed spec (a pickle) so that it starts fast: parsing builds every loss (torch).
_SCRIPT = """
import pickle, sys
sys.path.insert(0, {here!r})
from studyfake import fake_run
from losslab.study.runner import run_study
with open({spec!r}, "rb") as fh:
    study = pickle.load(fh)
run_study(study, {out!r}, run_fn=fake_run, progress=False)
"""


def _mid_second_run(out: Path) -> bool:
    """One run done and another one at least two steps into its training."""
    db = out / "study.db"
    if not db.is_file():
        return False
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute("SELECT run_id, status FROM runs").fetchall()
    except sqlite3.Error:
        return False
    running = [r for r, s in rows if s == "running"]
    if not any(s == "done" for _, s in rows) or not running:
        return False
    log = run_dir_of(out, running[0]) / "calls.log"
    return log.is_file() and log.read_text().count("step") >= 2


@pytest.mark.slow
def test_sigkill_mid_study_then_resume(tmp_path, tiny_spec):
    tiny_spec["config"] = {"max_iter": 12, "fake_step_seconds": 0.05}
    out = tmp_path / "study"
    study = parse_study(tiny_spec)
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(study))
    script = _SCRIPT.format(here=str(Path(__file__).parent), spec=str(tmp_path / "spec.pkl"), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.time() + 60
        while not _mid_second_run(out) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the study finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with StudyStore(out / "study.db") as store:
        assert store.integrity_ok()
        before = {r["run_id"]: r["status"] for r in store.runs()}
    assert "running" in before.values() and 1 <= list(before.values()).count("done") < 4
    interrupted = next(k for k, v in before.items() if v == "running")
    steps_before = (run_dir_of(out, interrupted) / "calls.log").read_text().count("step")
    assert 0 < steps_before < 12

    summary = run_study(study, out, run_fn=fake_run, progress=False)
    assert summary["skipped"] == list(before.values()).count("done") and summary["failed"] == 0
    with StudyStore(out / "study.db") as store:
        assert store.integrity_ok()
        runs = store.runs()
        assert [r["status"] for r in runs] == ["done"] * 4
        for run in runs:
            log = (run_dir_of(out, run["run_id"]) / "calls.log").read_text()
            assert log.count("complete") == 1  # no run done twice
            assert log.count("step") <= 13  # at most the step in flight at the kill is redone
            assert [s for s, _ in store.losses(run["run_id"])["total"]] == list(range(1, 13))  # no row lost
        assert store.run(interrupted)["attempts"] == 2
