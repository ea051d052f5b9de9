"""Background jobs of the language server: one per document, each cancellable three ways.

A job is cancelled by `$/cancelRequest` for its command request, by
`window/workDoneProgress/cancel` for its progress token, or when the server shuts down.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


class JobBusy(Exception):
    """A job is already running for this document."""


@dataclass
class Job:
    uri: str
    kind: str  # "profile" | "optimize"
    msg_id: Any = None
    token: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)


class JobRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uri: dict[str, Job] = {}

    def start(self, uri: str, kind: str, msg_id: Any = None, token: Any = None) -> Job:
        with self._lock:
            running = self._by_uri.get(uri)
            if running is not None:
                article = "an" if running.kind.startswith(tuple("aeiou")) else "a"
                raise JobBusy(f"Wattson is already running {article} {running.kind} job for this file; "
                              "wait for it or cancel it first.")
            job = Job(uri, kind, msg_id, token)
            self._by_uri[uri] = job
            return job

    def finish(self, job: Job) -> None:
        with self._lock:
            if self._by_uri.get(job.uri) is job:
                del self._by_uri[job.uri]

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._by_uri.values())

    def cancel_request(self, msg_id: Any) -> bool:
        return self._cancel(lambda j: j.msg_id is not None and j.msg_id == msg_id)

    def cancel_token(self, token: Any) -> bool:
        return self._cancel(lambda j: j.token is not None and j.token == token)

    def cancel_all(self) -> None:
        self._cancel(lambda j: True)

    def _cancel(self, match) -> bool:
        with self._lock:
            hits = [j for j in self._by_uri.values() if match(j)]
        for j in hits:
            j.cancel.set()
        return bool(hits)
