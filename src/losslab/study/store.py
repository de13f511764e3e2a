"""``DIR/study.db``: the SQLite store that is a study's source of truth.

Tables:

- ``study``: one row, the name and the spec (JSON) of the latest ``study run``.
- ``runs``: one row per run: id, configuration label, seed, stage (``tune`` / ``verdict``,
  ``losslab.study.tuning``), resolved config (JSON) and its hash, status (``pending`` / ``running`` /
  ``done`` / ``failed``), the error (a traceback), attempts, start and end times, wall seconds, its folder.
- ``losses``: the logged loss terms of each run, one row per (run, step, term), from ``metrics.csv``.
- ``results``: every scalar metric of each run, one row per (run, metric), e.g. ``segm.AP50``.
- ``run_results``: the full result dict of each run (JSON: per-image scores, PR curves).
- ``architecture_fps``: FPS measured once per distinct architecture after the runs (``study.arch_fps``),
  with the runs it stands for; it replaces their ``fps`` result (the run's own is kept as ``fps_in_run``).

Write-ahead logging, and every state change in one transaction: a process killed at any moment leaves
either the old or the new state, never half of one. A run is ``done`` only in the same transaction
that stores its losses and results, so a done run always has them.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from losslab.study.spec import RunSpec, canonical_json

__all__ = ["STATUSES", "StudyStore", "flatten_metrics", "run_dir_of"]

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS study (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    ordinal INTEGER NOT NULL,
    label TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    wall_seconds REAL,
    run_dir TEXT,
    stage TEXT NOT NULL DEFAULT 'verdict'
);
CREATE TABLE IF NOT EXISTS losses (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    term TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, step, term)
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS run_results (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    result_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS architecture_fps (
    architecture TEXT PRIMARY KEY,
    run_ids_json TEXT NOT NULL,
    measured_from TEXT NOT NULL,
    fps REAL NOT NULL,
    ms_median REAL NOT NULL,
    images INTEGER NOT NULL,
    threads INTEGER NOT NULL,
    size TEXT NOT NULL,
    device TEXT NOT NULL,
    measured REAL NOT NULL
);
"""


def flatten_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of a run result as ``{"segm.AP50": 98.0, "fps": 31.2, ...}``.

    ``metrics`` groups become ``group.metric``; other top-level numbers keep their name; lists and the
    ``per_image`` / ``pr`` blocks are left to the JSON copy.
    """
    out: dict[str, float] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, (bool, int, float)):
            out[prefix] = float(value)
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), sub)

    for key, value in result.items():
        if key in ("per_image", "pr", "config"):
            continue
        visit("" if key == "metrics" else key, value)
    return out


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class StudyStore:
    """The study database. Open with ``StudyStore(path)``; close with ``close()`` or ``with``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open every transaction ourselves with BEGIN IMMEDIATE.
        self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            columns = {row[1] for row in cur.execute("PRAGMA table_info(runs)")}
            if "stage" not in columns:  # a study stored before the tuning stage existed
                cur.execute("ALTER TABLE runs ADD COLUMN stage TEXT NOT NULL DEFAULT 'verdict'")

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed)."""
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # ---- the study and its runs -------------------------------------------------------------
    def save_study(self, name: str, spec: Mapping[str, Any], runs: Iterable[RunSpec]) -> None:
        """Record the spec and add its runs that are not in the store yet (existing ones are kept)."""
        now = time.time()
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO study (id, name, spec_json, created, updated) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, spec_json = excluded.spec_json, "
                "updated = excluded.updated",
                (name, json.dumps(spec, ensure_ascii=False), now, now),
            )
            for ordinal, run in enumerate(runs):
                text = canonical_json(run.config)
                cur.execute(
                    "INSERT INTO runs (run_id, ordinal, label, seed, config_json, config_hash, stage) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET ordinal = excluded.ordinal, "
                    "label = excluded.label, stage = excluded.stage",
                    (run.run_id, ordinal, run.label, run.seed, text, run.run_id, run.stage),
                )

    def study(self) -> dict[str, Any] | None:
        """``{"name", "spec", "created", "updated"}`` or None for an empty store."""
        row = self.conn.execute("SELECT * FROM study WHERE id = 1").fetchone()
        if row is None:
            return None
        return {
            "name": row["name"],
            "spec": json.loads(row["spec_json"]),
            "created": row["created"],
            "updated": row["updated"],
        }

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """All runs (optionally of one status) in study order, as dicts with ``config`` parsed."""
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY ordinal"
        rows = self.conn.execute(query, (status,) if status else ()).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["config"] = json.loads(item.pop("config_json"))
            out.append(item)
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's row; a ValueError names an unknown id."""
        for item in self.runs():
            if item["run_id"] == run_id:
                return item
        raise ValueError(f"{self.path}: no run {run_id!r}")

    def counts(self) -> dict[str, int]:
        """Number of runs per status."""
        out = dict.fromkeys(STATUSES, 0)
        for row in self.conn.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status"):
            out[row["status"]] = row["n"]
        return out

    # ---- state changes ----------------------------------------------------------------------
    def reset_interrupted(self) -> int:
        """Runs left ``running`` by a process that died go back to ``pending``; returns how many."""
        with self.transaction() as cur:
            cur.execute("UPDATE runs SET status = 'pending' WHERE status = 'running'")
            return cur.rowcount

    def mark_running(self, run_id: str, run_dir: str | Path) -> None:
        """A run starts (one more attempt)."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started = ?, finished = NULL, "
                "error = NULL, run_dir = ? WHERE run_id = ?",
                (time.time(), str(run_dir), run_id),
            )

    def mark_failed(self, run_id: str, error: str, wall_seconds: float | None = None) -> None:
        """A run failed; ``error`` is its traceback."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ?, wall_seconds = ? WHERE run_id = ?",
                (error, time.time(), wall_seconds, run_id),
            )

    def mark_done(
        self,
        run_id: str,
        result: Mapping[str, Any],
        losses: Iterable[tuple[int, str, float]] = (),
        wall_seconds: float | None = None,
    ) -> None:
        """A run finished: its losses, metrics and result JSON, and ``done``, in one transaction."""
        metrics = flatten_metrics(result)
        with self.transaction() as cur:
            cur.execute("DELETE FROM losses WHERE run_id = ?", (run_id,))
            cur.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            cur.executemany(
                "INSERT OR REPLACE INTO losses (run_id, step, term, value) VALUES (?, ?, ?, ?)",
                ((run_id, int(step), term, _finite(value)) for step, term, value in losses),
            )
            cur.executemany(
                "INSERT INTO results (run_id, metric, value) VALUES (?, ?, ?)",
                ((run_id, name, _finite(value)) for name, value in metrics.items()),
            )
            cur.execute(
                "INSERT OR REPLACE INTO run_results (run_id, result_json) VALUES (?, ?)",
                (run_id, json.dumps(result, default=str, allow_nan=True)),
            )
            cur.execute(
                "UPDATE runs SET status = 'done', error = NULL, finished = ?, wall_seconds = ? WHERE run_id = ?",
                (time.time(), wall_seconds, run_id),
            )

    def save_architecture_fps(self, architecture: str, run_ids: list[str], info: Mapping[str, Any]) -> None:
        """Record one architecture's FPS and make it the ``fps`` result of ``run_ids`` (their own
        measurement stays as ``fps_in_run``), in one transaction.

        Args:
            architecture: the key that names the architecture (``study.arch_fps.architecture_key``).
            run_ids: the done runs of that architecture.
            info: ``{"measured_from", "fps", "ms_median", "images", "threads", "size", "device"}``.
        """
        with self.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO architecture_fps (architecture, run_ids_json, measured_from, fps, "
                "ms_median, images, threads, size, device, measured) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (architecture, json.dumps(sorted(run_ids)), info["measured_from"], float(info["fps"]),
                 float(info["ms_median"]), int(info["images"]), int(info["threads"]), str(info["size"]),
                 str(info["device"]), time.time()),
            )  # fmt: skip
            for run_id in run_ids:
                cur.execute(
                    "INSERT OR IGNORE INTO results (run_id, metric, value) "
                    "SELECT run_id, 'fps_in_run', value FROM results WHERE run_id = ? AND metric = 'fps'",
                    (run_id,),
                )
                cur.execute(
                    "INSERT OR REPLACE INTO results (run_id, metric, value) VALUES (?, 'fps', ?)",
                    (run_id, _finite(float(info["fps"]))),
                )

    def architecture_fps(self) -> list[dict[str, Any]]:
        """The per-architecture FPS rows, each with ``run_ids`` (a list), in measurement order."""
        rows = self.conn.execute("SELECT * FROM architecture_fps ORDER BY measured")
        return [{**dict(r), "run_ids": json.loads(r["run_ids_json"])} for r in rows]

    # ---- reading results --------------------------------------------------------------------
    def metrics(self, run_id: str) -> dict[str, float | None]:
        """``{metric: value}`` of one run."""
        rows = self.conn.execute("SELECT metric, value FROM results WHERE run_id = ?", (run_id,))
        return {row["metric"]: row["value"] for row in rows}

    def all_metrics(self) -> dict[str, dict[str, float | None]]:
        """``{run_id: {metric: value}}`` of every run with results."""
        out: dict[str, dict[str, float | None]] = {}
        for row in self.conn.execute("SELECT run_id, metric, value FROM results"):
            out.setdefault(row["run_id"], {})[row["metric"]] = row["value"]
        return out

    def losses(self, run_id: str) -> dict[str, list[tuple[int, float | None]]]:
        """``{term: [(step, value), ...]}`` of one run, by step."""
        out: dict[str, list[tuple[int, float | None]]] = {}
        rows = self.conn.execute("SELECT step, term, value FROM losses WHERE run_id = ? ORDER BY step", (run_id,))
        for row in rows:
            out.setdefault(row["term"], []).append((row["step"], row["value"]))
        return out

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The full result dict of a done run (per-image scores, PR curves), or None."""
        row = self.conn.execute("SELECT result_json FROM run_results WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else json.loads(row["result_json"])

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def run_dir_of(out_dir: str | Path, run_id: str) -> Path:
    """The folder of one run."""
    return Path(out_dir) / "runs" / run_id
