"""`wattson serve`: the language server. It registers features and delegates; logic lives elsewhere.

Each feature module has `register(server)`. A feature that raises is logged and answered with
nothing, so one broken feature never takes the server down.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..store import History
from .jobs import JobRegistry
from .protocol import WattsonProtocol

log = logging.getLogger("wattson.lsp")


class WattsonServer(LanguageServer):
    """The server plus the state its features share: history, jobs, settings, the GPU agent."""

    def __init__(self) -> None:
        super().__init__("wattson", __version__, protocol_cls=WattsonProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.jobs = JobRegistry()
        self.settings: dict = {}
        self._history: History | None = None
        self._agent = None
        self._agent_prefix: list[str] | None = None
        self._agent_lock = threading.Lock()

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History()
        return self._history

    def agent(self, prefix: list[str] | None):
        """The GPU agent for this prefix, started on first use and restarted if it died or moved."""
        from ..runner import AgentClient

        with self._agent_lock:
            alive = self._agent is not None and getattr(self._agent, "alive", lambda: True)()
            if not alive or self._agent_prefix != prefix:
                if self._agent is not None:
                    self._agent.close()
                self._agent = AgentClient.start(prefix)
                self._agent_prefix = prefix
            return self._agent

    def shutdown_jobs(self) -> None:
        self.jobs.cancel_all()
        with self._agent_lock:
            if self._agent is not None:
                self._agent.close()
                self._agent = None

    def isolated(self, feature: str):
        """Decorator: log a feature's exception and answer with None instead of failing the server."""

        def wrap(fn):
            if _is_async(fn):
                @functools.wraps(fn)
                async def run_async(*args, **kwargs):
                    try:
                        return await fn(*args, **kwargs)
                    except Exception:  # noqa: BLE001 - isolation is the point
                        log.exception("feature %s failed", feature)
                        return None

                return run_async

            @functools.wraps(fn)
            def run(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except Exception:  # noqa: BLE001 - isolation is the point
                    log.exception("feature %s failed", feature)
                    return None

            return run

        return wrap


def _is_async(fn) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def build_server() -> WattsonServer:
    from . import code_action, code_lens, commands, hover, lifecycle, settings

    server = WattsonServer()
    for feature in (lifecycle, settings, code_action, hover, code_lens, commands):
        feature.register(server)
    return server


# Jobs run on worker threads of this process. With Python's default 5 ms switch interval, a busy job
# (an LLM reply streaming in, a diff being checked) keeps the GIL for up to 5 ms each time the event
# loop asks for it, and a hover asks several times: tens of ms in all. bench/lsp_latency.py measures it.
GIL_SWITCH_INTERVAL_S = 0.0005


def main() -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message in full at INFO
    server = build_server()
    try:
        server.start_io()
    finally:
        server.shutdown_jobs()
    return 0
