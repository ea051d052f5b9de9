"""The shared part of `complete_json`: check the answer, ask once for a corrected one, or fail clearly.

Each provider supplies one "ask" function that returns (parsed dict or None, raw reply text, stop
reason) for a conversation; this module owns what happens when the answer is missing, cut off,
refused or off-schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .base import STOP_MAX_TOKENS, STOP_REFUSAL, LlmError, LlmRefusal, LlmTruncated, Message
from .json_schema import schema_problems

AskOnce = Callable[[list[Message]], tuple[dict | None, str, str | None]]

REPAIR_ROUNDS = 1


def structured_answer(ask: AskOnce, messages: list[Message], schema: dict, *, what: str) -> dict:
    conversation = list(messages)
    problems: list[str] = []
    for _ in range(REPAIR_ROUNDS + 1):
        value, raw, stop_reason = ask(conversation)
        if stop_reason == STOP_REFUSAL:
            raise LlmRefusal(f"{what}: the model declined to answer{_quoted(raw)}.")
        if value is None and stop_reason == STOP_MAX_TOKENS:
            raise LlmTruncated(f"{what}: the structured answer was cut off at max_tokens before it was "
                               "complete; raise max_tokens for this step.")
        problems = ["no JSON object in the reply"] if value is None else schema_problems(value, schema)
        if not problems:
            assert value is not None
            return value
        conversation = conversation + [
            Message("assistant", raw or "(empty reply)"),
            Message("user", "That answer does not match the required JSON schema:\n- "
                    + "\n- ".join(problems[:10])
                    + "\nAnswer again with only a JSON object that matches this schema:\n"
                    + json.dumps(schema, indent=2)),
        ]
    raise LlmError(f"{what}: the model's structured answer did not match the schema after "
                   f"{REPAIR_ROUNDS + 1} tries ({'; '.join(problems[:3])}).")


def _quoted(raw: str) -> str:
    text = " ".join(raw.split())
    if not text:
        return ""
    return f': "{text[:200]}{"…" if len(text) > 200 else ""}"'
