"""Document open/close and shutdown: on open, the last measured energy of the file is announced.

Notification `wattson/energyMeasured` (docs/lsp.md) feeds the VS Code status bar.
"""

from __future__ import annotations

import datetime as dt

from lsprotocol import types

from ..store import content_hash
from .documents import document_path, is_cuda_document

ENERGY_NOTIFICATION = "wattson/energyMeasured"


def energy_notification(uri: str, stored, text: str) -> dict | None:
    energy = (stored.result or {}).get("energy_j") or {}
    if energy.get("median") is None:
        return None
    return {
        "uri": uri,
        "energy_j": energy["median"],
        "ci_low_j": energy.get("ci_low"),
        "ci_high_j": energy.get("ci_high"),
        "device": stored.device_name or "",
        "measured_at": dt.datetime.fromtimestamp(stored.created_at, dt.UTC).isoformat(),
        "stale": stored.is_stale_for(content_hash(text)),
    }


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @server.isolated("didOpen")
    def did_open(ls, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        if not is_cuda_document(doc.uri, doc.language_id):
            return
        path = document_path(doc.uri)
        if path is None:
            return
        stored = ls.history.latest_profile(str(path.resolve()))
        if stored is not None:
            note = energy_notification(doc.uri, stored, doc.text)
            if note:
                ls.protocol.notify(ENERGY_NOTIFICATION, note)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls, params) -> None:
        ls.shutdown_jobs()
