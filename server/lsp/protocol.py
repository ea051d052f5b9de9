"""The JSON-RPC protocol, extended so a `$/cancelRequest` reaches the job it names.

pygls cancels only the request's future; a command that runs in a worker thread would carry on.
Here the cancel also sets the job's cancel event, and the request's params are kept in a context
variable so a command handler can read its `workDoneToken`.
"""

from __future__ import annotations

import contextvars
from typing import Any

from pygls.protocol import LanguageServerProtocol

REQUEST_PARAMS: contextvars.ContextVar[Any] = contextvars.ContextVar("wattson_request_params", default=None)


class WattsonProtocol(LanguageServerProtocol):
    def _handle_request(self, msg_id, method_name, params):  # type: ignore[override]
        # Handlers are created synchronously below, so their tasks inherit this context.
        REQUEST_PARAMS.set(params)
        super()._handle_request(msg_id, method_name, params)

    def _handle_cancel_notification(self, msg_id):  # type: ignore[override]
        super()._handle_cancel_notification(msg_id)
        jobs = getattr(self._server, "jobs", None)
        if jobs is not None:
            jobs.cancel_request(msg_id)
