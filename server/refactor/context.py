"""The start of a trial: the GPU and the program described to the model, its own description of the
code, the measured profile, and the energy-aware plan it writes (LASSI-EE's context and planning).

The wording is in prompts/ (system, context_hardware, context_code, plan, generate); this module
fills them in the order a trial sends them. When the user asked for one kernel, a short focus
note follows the plan and generate prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..llm import LlmProvider
from ..prompt_render import (
    correction_context,
    feedback_context,
    render_prompt,
    run_context,
)
from .conversation import Conversation
from .extract import END_MARKER


@dataclass
class TrialStart:
    conversation: Conversation
    description: str
    plan: str


class PromptBook:
    """The rendered prompts of one job: placeholders fixed once, per-step ones merged in."""

    def __init__(self, program: dict, profile: dict | None, device_info: Any, kernel: str | None = None):
        self.values: dict[str, Any] = run_context(program, profile, device_info)
        self.kernel = kernel
        self.kernels_before = (profile or {}).get("kernels")

    @property
    def source_file(self) -> str:
        return str(self.values["source_file"])

    @property
    def language(self) -> str:
        return str(self.values["language"])

    @property
    def code_tag(self) -> str:
        return str(self.values["code_tag"])

    def render(self, name: str, **extra: Any) -> str:
        return render_prompt(name, {**self.values, **extra}).text

    def system(self) -> str:
        return self.render("system")

    def first_message(self) -> str:
        return self.render("context_hardware") + "\n\n" + self.render("context_code")

    def _focus(self) -> str:
        if not self.kernel:
            return ""
        return (
            f"\n\nFocus: the user asked to optimize the kernel `{self.kernel}`. Put the effort there; "
            "change other code only where that kernel's optimization needs it."
        )

    def plan(self) -> str:
        return self.render("plan") + self._focus()

    def generate(self, plan: str) -> str:
        return self.render("generate", plan=plan) + self._focus()

    def correct(self, kind: str, detail: str, attempt: int, max_attempts: int) -> str:
        return self.render("correct", **correction_context(kind, detail, attempt, max_attempts))

    def feedback(
        self, compare: dict, kernels_after: Any, *, iteration: int, max_iterations: int, best_so_far: str
    ) -> str:
        return self.render(
            "measure_feedback",
            **feedback_context(
                compare,
                self.kernels_before,
                kernels_after,
                iteration=iteration,
                max_iterations=max_iterations,
                best_so_far=best_so_far,
            ),
        )

    def format_problem(self, problem: str, attempt: int, max_attempts: int) -> str:
        """A reply with no usable code: say what was wrong and restate the format."""
        return (
            f"## Your reply could not be used (correction {attempt} of at most {max_attempts})\n\n"
            f"{problem}\n\n"
            f"Answer in the required format: `## Changes`, then each changed file complete in a block opened "
            f"with ```{self.code_tag} file={self.source_file}, then a line containing only {END_MARKER}."
        )


def start_trial(llm: LlmProvider, book: PromptBook, *, temperature: float) -> TrialStart:
    """Two requests: describe the code (with the GPU), then plan from the measured profile."""
    conversation = Conversation(llm, book.system())
    description = conversation.ask(book.first_message(), temperature=temperature).text
    plan = conversation.ask(book.plan(), temperature=temperature).text
    conversation.pin()
    return TrialStart(conversation, description, plan)
