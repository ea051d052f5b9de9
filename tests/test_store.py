"""The SQLite history, for real, in a temp file."""

from __future__ import annotations

import threading

from wattson.store import History, content_hash


def _result(median: float) -> dict:
    return {"protocol": "wattson", "device": {"name": "Fake H100"},
            "energy_j": {"median": median, "ci_low": median * 0.99, "ci_high": median * 1.01, "n": 5},
            "duration_s": {"median": 1.0, "ci_low": 0.99, "ci_high": 1.01, "n": 5},
            "avg_power_w": median, "trials": [{}] * 5}


def test_latest_profile_and_staleness(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        h.add_profile(source_path="/x/a.cu", source_hash=content_hash("v1"), result=_result(10.0))
        h.add_profile(source_path="/x/a.cu", source_hash=content_hash("v2"), result=_result(8.0),
                      kernels={"kernels": [{"name": "k", "energy_j": 4.0}]})
        p = h.latest_profile("/x/a.cu")
        assert p is not None and p.result["energy_j"]["median"] == 8.0
        assert p.kernels["kernels"][0]["name"] == "k"
        assert not p.is_stale_for(content_hash("v2"))
        assert p.is_stale_for(content_hash("v1"))
        assert h.latest_profile("/x/other.cu") is None


def test_history_survives_reopen_and_threads(tmp_path):
    path = tmp_path / "h.sqlite3"
    with History(path) as h:
        threads = [threading.Thread(target=h.add_profile,
                                    kwargs={"source_path": f"/x/{i}.cu", "source_hash": "h",
                                            "result": _result(float(i + 1))}) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with History(path) as h:
        assert all(h.latest_profile(f"/x/{i}.cu") for i in range(8))


def test_jobs_and_candidates(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        job = h.start_job(kind="optimize", source_path="/x/a.cu", source_hash="h")
        h.add_candidate(job, trial=0, iteration=1, status="accepted", source_text="int main(){}",
                        energy_ratio=0.9, ci_low=0.88, ci_high=0.92, detail={"judge": "accept"})
        h.finish_job(job, status="done", summary={"best": 0})
        assert h.job(job)["status"] == "done"
        (c,) = h.candidates(job)
        assert c["energy_ratio"] == 0.9 and c["detail"] == {"judge": "accept"}
