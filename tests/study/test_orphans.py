"""SIGKILL the driver of a two-worker study: its workers end within seconds (they never keep
training in the run folders), and the resumed study completes each run once."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from studyfake import fake_run

from losslab.study.executors import run_folder_lock
from losslab.study.runner import run_study
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore

_SCRIPT = """
import pickle, sys
sys.path.insert(0, {here!r})
from studyfake import fake_run
from losslab.study.runner import run_study
with open({spec!r}, "rb") as fh:
    study = pickle.load(fh)
run_study(study, {out!r}, run_fn=fake_run, workers=2, progress=False)
"""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _worker_pids(out: Path) -> list[int]:
    pids = []
    for pid_file in (out / "runs").glob("*/worker.pid"):
        text = pid_file.read_text().strip()
        if text and (pid_file.parent / "calls.log").is_file():
            pids.append(int(text))
    return sorted(set(pids))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_end_when_the_driver_is_killed(tmp_path, tiny_spec):
    tiny_spec["config"] = {"max_iter": 40, "fake_step_seconds": 0.1}
    out = tmp_path / "study"
    study = parse_study(tiny_spec)
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps(study))
    script = _SCRIPT.format(here=str(Path(__file__).parent), spec=str(tmp_path / "spec.pkl"), out=str(out))
    driver = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.time() + 120  # a guard against a hang, not a speed claim
        while len(_worker_pids(out)) < 2 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
        workers = _worker_pids(out)
        assert len(workers) == 2 and driver.poll() is None, "the two workers never started"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    gone_by = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < gone_by:
        time.sleep(0.05)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their driver by 10 s"

    summary = run_study(study, out, run_fn=fake_run, progress=False)
    assert summary["failed"] == 0
    with StudyStore(out / "study.db") as store:
        assert [r["status"] for r in store.runs()] == ["done"] * 4
    for log in (out / "runs").glob("*/calls.log"):
        assert log.read_text().count("complete") == 1


def test_a_run_folder_held_by_a_live_process_is_refused(tmp_path):
    # a second open file description on the same folder: flock refuses it as it would another process
    with (
        run_folder_lock(tmp_path),
        pytest.raises(RuntimeError, match=rf"in use by another process \(pid {os.getpid()}"),
        run_folder_lock(tmp_path, wait_seconds=0.3),
    ):
        pass
    with run_folder_lock(tmp_path, wait_seconds=0.3):  # released: free again
        pass
