"""The SQLite store: runs, their state changes, losses and results."""

from __future__ import annotations

from losslab.study.spec import parse_study
from losslab.study.store import StudyStore, flatten_metrics


def test_flatten_metrics():
    flat = flatten_metrics(
        {"metrics": {"segm": {"AP": 80.0, "AP50": 99.0}, "mask": {"iou": 0.8}}, "fps": 30, "per_image": {"x": 1}}
    )
    assert flat == {"segm.AP": 80.0, "segm.AP50": 99.0, "mask.iou": 0.8, "fps": 30.0}


def test_store_round_trip(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    runs = study.runs()
    with StudyStore(tmp_path / "study.db") as store:
        store.save_study(study.name, study.to_dict(), runs)
        store.save_study(study.name, study.to_dict(), runs)  # saving again adds nothing
        assert store.counts() == {"pending": 4, "running": 0, "done": 0, "failed": 0}
        first, second = runs[0].run_id, runs[1].run_id
        store.mark_running(first, tmp_path / "r0")
        result = {"metrics": {"segm": {"AP": 81.5}}, "fps": 20.0}
        store.mark_done(first, result, [(1, "total", 2.0), (2, "total", 1.5)], 3.0)
        store.mark_running(second, tmp_path / "r1")
        store.mark_failed(second, "Traceback ...\nRuntimeError: boom", 1.0)
        store.mark_running(runs[2].run_id, tmp_path / "r2")
        assert store.reset_interrupted() == 1
        assert store.counts() == {"pending": 2, "running": 0, "done": 1, "failed": 1}
        assert store.metrics(first) == {"segm.AP": 81.5, "fps": 20.0}
        assert store.losses(first) == {"total": [(1, 2.0), (2, 1.5)]}
        assert store.result(first)["fps"] == 20.0
        row = store.run(second)
        assert row["status"] == "failed" and "boom" in row["error"] and row["attempts"] == 1
        assert row["config"]["mask_loss"] == "dice"
        assert store.study()["spec"]["name"] == "tiny"
        assert store.integrity_ok()
    with StudyStore(tmp_path / "study.db") as again:  # persisted
        assert again.counts()["done"] == 1
        assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_transaction_changes_nothing(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    with StudyStore(tmp_path / "study.db") as store:
        store.save_study(study.name, study.to_dict(), study.runs())
        run_id = study.runs()[0].run_id
        try:
            with store.transaction() as cur:
                cur.execute("UPDATE runs SET status = 'done' WHERE run_id = ?", (run_id,))
                raise RuntimeError("killed half-way")
        except RuntimeError:
            pass
        assert store.run(run_id)["status"] == "pending"
