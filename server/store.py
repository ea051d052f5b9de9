"""The SQLite history: every profile, comparison, optimize job and candidate, on the user's machine.

The editor's hover and code lens read from here, so a figure measured once is shown again without
re-running anything. Rows are keyed by the file's absolute path and the SHA-256 of its content: a
figure for other content is shown as stale, never as current.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DB_ENV = "WATTSON_DB"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,          -- unix time
    source_path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    protocol TEXT NOT NULL,
    device_name TEXT,
    energy_j REAL, energy_ci_low_j REAL, energy_ci_high_j REAL,
    duration_s REAL, avg_power_w REAL, n_trials INTEGER,
    result_json TEXT NOT NULL,
    kernels_json TEXT                  -- per-kernel report, when measured
);
CREATE INDEX IF NOT EXISTS profiles_by_path ON profiles (source_path, created_at);
CREATE INDEX IF NOT EXISTS profiles_by_hash ON profiles (content_hash, created_at);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    a_label TEXT NOT NULL, b_label TEXT NOT NULL,
    protocol TEXT NOT NULL,
    verdict TEXT, energy_ratio REAL, ci_low REAL, ci_high REAL,
    result_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,                -- "optimize" | ...
    source_path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL,              -- "running" | "done" | "failed" | "cancelled"
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    trial INTEGER NOT NULL, iteration INTEGER NOT NULL,
    status TEXT NOT NULL,              -- "accepted" | "rejected" | "failed-build" | ...
    source_text TEXT NOT NULL,
    energy_ratio REAL, ci_low REAL, ci_high REAL,
    detail_json TEXT
);
"""


def content_hash(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def default_db_path() -> Path:
    override = os.environ.get(DB_ENV)
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("wattson")) / "history.sqlite3"


@dataclass
class StoredProfile:
    id: int
    created_at: float
    source_path: str
    content_hash: str
    protocol: str
    device_name: str | None
    result: dict
    kernels: dict | None

    def is_stale_for(self, current_hash: str) -> bool:
        return self.content_hash != current_hash


class History:
    """A thin typed layer over one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # One connection shared under a lock: the LSP server reads from its event loop while jobs
        # write from worker threads.
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- profiles --------------------------------------------------------------------------------
    def add_profile(self, *, source_path: str, source_hash: str, result: dict,
                    kernels: dict | None = None) -> int:
        energy = result.get("energy_j") or {}
        duration = result.get("duration_s") or {}
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO profiles (created_at, source_path, content_hash, protocol, device_name,"
                " energy_j, energy_ci_low_j, energy_ci_high_j, duration_s, avg_power_w, n_trials,"
                " result_json, kernels_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    time.time(), source_path, source_hash, result.get("protocol", "wattson"),
                    (result.get("device") or {}).get("name"),
                    energy.get("median"), energy.get("ci_low"), energy.get("ci_high"),
                    duration.get("median"), result.get("avg_power_w"), len(result.get("trials") or []),
                    json.dumps(result), json.dumps(kernels) if kernels is not None else None,
                ),
            )
            return int(cur.lastrowid)

    def latest_profile(self, source_path: str) -> StoredProfile | None:
        """The newest profile of this file, whatever its content; callers check staleness."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, created_at, source_path, content_hash, protocol, device_name, result_json,"
                " kernels_json FROM profiles WHERE source_path = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                (source_path,),
            ).fetchone()
        if row is None:
            return None
        return StoredProfile(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                             json.loads(row[7]) if row[7] else None)

    # --- comparisons ---------------------------------------------------------------------------
    def add_comparison(self, *, a_label: str, b_label: str, result: dict) -> int:
        ratio = result.get("energy_ratio") or {}
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO comparisons (created_at, a_label, b_label, protocol, verdict, energy_ratio,"
                " ci_low, ci_high, result_json) VALUES (?,?,?,?,?,?,?,?,?)",
                (time.time(), a_label, b_label, result.get("protocol", "wattson"), ratio.get("kind"),
                 ratio.get("ratio"), ratio.get("ci_low"), ratio.get("ci_high"), json.dumps(result)),
            )
            return int(cur.lastrowid)

    def comparisons(self, limit: int = 20) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT result_json FROM comparisons ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # --- optimize jobs and their candidates ------------------------------------------------------
    def start_job(self, *, kind: str, source_path: str, source_hash: str) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO jobs (created_at, kind, source_path, content_hash, status) VALUES (?,?,?,?,?)",
                (time.time(), kind, source_path, source_hash, "running"),
            )
            return int(cur.lastrowid)

    def finish_job(self, job_id: int, *, status: str, summary: dict) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE jobs SET status = ?, summary_json = ? WHERE id = ?",
                             (status, json.dumps(summary), job_id))

    def add_candidate(self, job_id: int, *, trial: int, iteration: int, status: str, source_text: str,
                      energy_ratio: float | None = None, ci_low: float | None = None,
                      ci_high: float | None = None, detail: dict | None = None) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO candidates (job_id, trial, iteration, status, source_text, energy_ratio,"
                " ci_low, ci_high, detail_json) VALUES (?,?,?,?,?,?,?,?,?)",
                (job_id, trial, iteration, status, source_text, energy_ratio, ci_low, ci_high,
                 json.dumps(detail) if detail is not None else None),
            )
            return int(cur.lastrowid)

    def candidates(self, job_id: int) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, trial, iteration, status, source_text, energy_ratio, ci_low, ci_high, detail_json"
                " FROM candidates WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        keys = ("id", "trial", "iteration", "status", "source_text", "energy_ratio", "ci_low", "ci_high")
        out = []
        for r in rows:
            d = dict(zip(keys, r[:8], strict=True))
            d["detail"] = json.loads(r[8]) if r[8] else None
            out.append(d)
        return out

    def job(self, job_id: int) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, created_at, kind, source_path, content_hash, status, summary_json FROM jobs"
                " WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "created_at", "kind", "source_path", "content_hash", "status")
        d = dict(zip(keys, row[:6], strict=True))
        d["summary"] = json.loads(row[6]) if row[6] else None
        return d
