"""Work-done progress for a job, safe to report from the worker thread that runs it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from lsprotocol import types


class JobProgress:
    def __init__(self, ls, token: Any, loop: asyncio.AbstractEventLoop):
        self.ls = ls
        self.token = token
        self.loop = loop
        self._last_pct = -1

    @classmethod
    async def open(cls, ls, client_token: Any, title: str, on_cancel) -> JobProgress:
        """Use the client's workDoneToken, or create one; either way a cancel from the client calls on_cancel."""
        loop = asyncio.get_running_loop()
        token = client_token
        if token is None:
            token = f"wattson-{uuid.uuid4().hex[:12]}"
            try:
                await ls.work_done_progress.create_async(token)
            except Exception:  # noqa: BLE001 - a client without progress support still gets the result
                token = None
        progress = cls(ls, token, loop)
        if token is not None:
            # pygls cancels the future registered for the token on window/workDoneProgress/cancel.
            cancelled: asyncio.Future = loop.create_future()
            cancelled.add_done_callback(lambda f: on_cancel() if f.cancelled() else None)
            ls.work_done_progress.tokens[token] = cancelled
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                title=title, cancellable=True, percentage=0))
        return progress

    def report(self, message: str, fraction: float | None) -> None:
        if self.token is None:
            return
        pct = None if fraction is None else max(0, min(100, int(100 * fraction)))
        self._last_pct = pct if pct is not None else self._last_pct
        value = types.WorkDoneProgressReport(message=message, percentage=pct, cancellable=True)
        self.loop.call_soon_threadsafe(self.ls.work_done_progress.report, self.token, value)

    def end(self, message: str) -> None:
        if self.token is None:
            return
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
