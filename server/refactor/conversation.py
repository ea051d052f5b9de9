"""One trial's conversation with the optimizer model: asking, continuing cut-off replies, pruning.

A trial keeps one conversation from the code description to its last candidate, so the model
sees its own earlier versions beside the measurements and failures they got. Replies that stop
at the token limit (or without END OF FILES) get one request to continue (prompts/continue.md);
a reply still cut off after that fails clearly. Old candidate replies are shortened when the
conversation grows past a size that would crowd the model's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..llm import Completion, LlmProvider, LlmRefusal, Message
from ..prompt_render import continue_context, render_prompt
from .extract import (
    END_MARKER,
    ExtractedReply,
    extract_reply,
    has_end_marker,
    is_cut_off,
    join_continuation,
    parse_blocks,
)

CODE_MAX_TOKENS = 32_000  # thinking counts against it (docs/llm.md); streaming keeps long replies safe
TEXT_MAX_TOKENS = 16_000
MAX_CONVERSATION_CHARS = 600_000
_KEEP_RECENT_MESSAGES = 6
_OMITTED = "[An earlier reply of yours, omitted here to save space: later versions supersede it.]"


@dataclass
class CodeReply:
    text: str  # the whole reply, continuation joined
    extracted: ExtractedReply
    completions: list[Completion] = field(default_factory=list)
    continued: bool = False  # a continuation was asked for

    @property
    def problem(self) -> str | None:
        return self.extracted.problem if not self.extracted.ok else None


class Conversation:
    def __init__(self, llm: LlmProvider, system: str):
        self.llm = llm
        self.system = system
        self.messages: list[Message] = []
        self._pinned = 0  # messages never shortened: the program and the plan

    def pin(self) -> None:
        """Keep everything said so far whole (the context and the plan)."""
        self._pinned = len(self.messages)

    def _complete(self, temperature: float, max_tokens: int) -> Completion:
        self._fit()
        reply = self.llm.complete(
            self.system, list(self.messages), temperature=temperature, max_tokens=max_tokens
        )
        if reply.refused:
            raise LlmRefusal(
                f"the model declined to answer ({self.llm.name}, {reply.model})"
                + (f": {reply.text.strip()[:200]}" if reply.text.strip() else "")
            )
        return reply

    def ask(self, prompt: str, *, temperature: float, max_tokens: int = TEXT_MAX_TOKENS) -> Completion:
        """A prose answer (description, plan); a cut-off one is kept as it is."""
        self.messages.append(Message("user", prompt))
        reply = self._complete(temperature, max_tokens)
        self.messages.append(Message("assistant", reply.text))
        return reply

    def ask_for_code(
        self, prompt: str, *, temperature: float, source_file: str, max_tokens: int = CODE_MAX_TOKENS
    ) -> CodeReply:
        """A candidate reply; asks once to continue when it was cut off."""
        self.messages.append(Message("user", prompt))
        first = self._complete(temperature, max_tokens)
        text = first.text
        completions = [first]
        continued = False
        if first.truncated or is_cut_off(text):
            continued = True
            self.messages.append(Message("assistant", text))
            self.messages.append(Message("user", render_prompt("continue", continue_context(text)).text))
            more = self._complete(temperature, max_tokens)
            completions.append(more)
            # The continuation replaces the two messages: the model sees one reply from here on.
            del self.messages[-2:]
            text = join_continuation(text, more.text)
            extracted = extract_reply(text, source_file=source_file)
            if more.truncated or any(not b.closed for b in parse_blocks(text)):
                self.messages.append(Message("assistant", text))
                extracted.files.clear()
                tokens = sum(c.usage.output_tokens for c in completions)
                extracted.problem = (
                    f"Your reply was cut off at the length limit twice ({tokens:,} tokens in all). Give the "
                    f"complete `{source_file}` in one shorter reply: fewer explanations, no repeated code, "
                    f"then a line containing only {END_MARKER}."
                )
                return CodeReply(text, extracted, completions, continued)
            if not has_end_marker(text):
                extracted.notes.append(f"the reply did not end with {END_MARKER}, but every block was closed")
            self.messages.append(Message("assistant", text))
            return CodeReply(text, extracted, completions, continued)
        self.messages.append(Message("assistant", text))
        return CodeReply(text, extract_reply(text, source_file=source_file), completions, continued)

    def _fit(self) -> None:
        """Shorten old assistant replies, oldest first, until the conversation fits."""
        total = len(self.system) + sum(len(m.content) for m in self.messages)
        limit = len(self.messages) - _KEEP_RECENT_MESSAGES
        for i in range(self._pinned, max(self._pinned, limit)):
            if total <= MAX_CONVERSATION_CHARS:
                return
            message = self.messages[i]
            if message.role == "assistant" and message.content != _OMITTED:
                total -= len(message.content) - len(_OMITTED)
                self.messages[i] = Message("assistant", _OMITTED)
