"""Keeping API keys out of everything we print, log, store or raise.

Keys live only inside the SDK client objects. Every message we build from something an endpoint
or a subprocess said passes through `redact` first, because error bodies and stderr can echo
request details back.
"""

from __future__ import annotations

import os

REDACTED = "[redacted]"

# Shorter values are not treated as secrets: replacing "none" or "x" everywhere would garble text.
_MIN_SECRET_CHARS = 8


def redact(text: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    return text


def key_from_env(variable: str) -> str | None:
    value = os.environ.get(variable, "").strip()
    return value or None


def describe_key(key: str | None) -> str:
    """What a repr may say about a key: whether there is one, never any of its characters."""
    return "set" if key else "not set"
