"""Tokens and approximate cost of one job's LLM calls, for the report and the history.

Every provider records each API call it makes (retried and repair calls included) into the job's
`TokenAccount`. Cost comes from a small table of list prices per model family: APPROXIMATE, in US
dollars per million tokens, as set on PRICES_SET_ON; a model not in the table is counted in tokens
only, never priced by guess. `[llm] price_input_usd_per_mtok` / `price_output_usd_per_mtok` override
the table (local models, negotiated rates).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from .base import Usage
from .retry import LlmCancelled

PRICES_SET_ON = "2026-11-22"


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


# Anthropic list prices (standard tier, no caching or batch discounts). First match wins; matched
# with re.search so gateway prefixes such as "anthropic/" or "us.anthropic." still match.
PRICE_TABLE: list[tuple[str, Price]] = [
    (r"claude-sonnet-(4|5)\b", Price(3.0, 15.0)),
    (r"claude-opus-4-(5|6|7|8)\b", Price(5.0, 25.0)),
    (r"claude-opus-4(-0|-1)?(-\d{8})?\b(?!-\d)", Price(15.0, 75.0)),
    (r"claude-haiku-4-5\b", Price(1.0, 5.0)),
]


def price_for(model: str) -> Price | None:
    for pattern, price in PRICE_TABLE:
        if re.search(pattern, model):
            return price
    return None


@dataclass
class ModelTotals:
    provider: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    unreported_calls: int = 0  # calls whose endpoint gave no token counts
    cut_off_calls: int = 0  # requests left unanswered by a cancel: billed or not, their tokens are unknown
    cost_usd: float | None = None  # None: no price known for this model

    def to_dict(self) -> dict:
        return asdict(self)


class TokenAccount:
    """Thread-safe: k candidates may call the LLM at once."""

    def __init__(self, price_override: Price | None = None):
        self._price_override = price_override
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], ModelTotals] = {}

    def record(self, provider: str, model: str, usage: Usage) -> None:
        with self._lock:
            totals = self._totals.setdefault((provider, model), ModelTotals(provider, model))
            totals.calls += 1
            totals.input_tokens += usage.input_tokens
            totals.output_tokens += usage.output_tokens
            if not usage.reported:
                totals.unreported_calls += 1
            price = self._price_override or price_for(model)
            totals.cost_usd = price.cost_usd(totals.input_tokens, totals.output_tokens) if price else None

    def record_cut_off(self, provider: str, model: str) -> None:
        with self._lock:
            self._totals.setdefault((provider, model), ModelTotals(provider, model)).cut_off_calls += 1

    @contextmanager
    def counting_cut_off(self, provider: str, model: str) -> Iterator[None]:
        """Counts a request that a cancel left in flight, then lets the cancel go on."""
        try:
            yield
        except LlmCancelled as e:
            if e.in_flight:
                self.record_cut_off(provider, model)
            raise

    def by_model(self) -> list[ModelTotals]:
        with self._lock:
            return [ModelTotals(**asdict(t)) for t in self._totals.values()]

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model())

    @property
    def input_tokens(self) -> int:
        return sum(t.input_tokens for t in self.by_model())

    @property
    def output_tokens(self) -> int:
        return sum(t.output_tokens for t in self.by_model())

    def cost_usd(self) -> float | None:
        """Cost of the priced models; None when no model used has a price."""
        priced = [t.cost_usd for t in self.by_model() if t.cost_usd is not None]
        return sum(priced) if priced else None

    def summary(self) -> str:
        """One line for a report, e.g. "7 calls, 12,345 input + 3,210 output tokens, about $0.09 ..."."""
        rows = self.by_model()
        if not rows:
            return "no LLM calls"
        calls = sum(t.calls for t in rows)
        text = (f"{calls} call{'s' if calls != 1 else ''}, {self.input_tokens:,} input + "
                f"{self.output_tokens:,} output tokens")
        cost = self.cost_usd()
        unpriced = [t.model for t in rows if t.cost_usd is None and t.calls]
        if cost is not None:
            source = ("your [llm] prices" if self._price_override
                      else f"approximate list prices of {PRICES_SET_ON}")
            text += f", about ${cost:.2f} ({source})"
        if unpriced:
            text += f"; no price known for {', '.join(sorted(set(unpriced)))}: tokens only"
        unreported = sum(t.unreported_calls for t in rows)
        if unreported:
            text += f"; {unreported} call{'s' if unreported != 1 else ''} reported no token counts"
        cut_off = sum(t.cut_off_calls for t in rows)
        if cut_off:
            text += (f"; {cut_off} request{'s were' if cut_off != 1 else ' was'} cut off by the cancel: "
                     f"{'their' if cut_off != 1 else 'its'} tokens are not in these totals, and a paid "
                     f"endpoint may still bill {'them' if cut_off != 1 else 'it'}")
        return text

    def markdown(self) -> str:
        """A small table per model, for the Markdown report."""
        lines = ["| provider | model | calls | input tokens | output tokens | cost (USD, approx.) |",
                 "|---|---|---:|---:|---:|---:|"]
        for t in self.by_model():
            if not t.calls:
                continue  # only cut-off requests: the summary line below counts them
            cost = f"{t.cost_usd:.4f}" if t.cost_usd is not None else "n/a"
            lines.append(f"| {t.provider} | {t.model} | {t.calls} | {t.input_tokens:,} | "
                         f"{t.output_tokens:,} | {cost} |")
        lines.append("")
        lines.append(self.summary() + ".")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"prices_set_on": PRICES_SET_ON, "price_override": asdict(self._price_override)
                if self._price_override else None, "cost_usd": self.cost_usd(),
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "models": [t.to_dict() for t in self.by_model()]}
