"""The sampling temperature for each step of an optimize trial: low to start, rising across iterations.

After LASSI-EE, which raised the temperature as its iterations went on: the first candidate should be
the model's most likely answer to the plan; once it has been measured, later iterations need to try
something different rather than restate it. Ours is linear from `start` at the first iteration to
`end` at the last; self-corrections use their iteration's temperature (a fix should stay close to
what the model meant), the description and plan use `start`, the judge always 0.

Providers without a sampling temperature (the Anthropic API, see docs/llm.md) ignore it: the
report says so, and diversity between trials then comes from independent samples alone.
"""

from __future__ import annotations

from dataclasses import dataclass

JUDGE_TEMPERATURE = 0.0


@dataclass(frozen=True)
class TemperatureSchedule:
    start: float = 0.2
    end: float = 1.0  # the top of the range every provider accepts (OpenAI-compatible goes to 2)

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end <= 2.0:
            raise ValueError(
                f"temperatures must satisfy 0 <= start <= end <= 2, got {self.start}, {self.end}"
            )

    @property
    def context(self) -> float:
        """For the code description and the plan."""
        return self.start

    def for_iteration(self, iteration: int, iterations: int) -> float:
        """Iteration counts from 1; with one iteration it is `start`."""
        if iterations < 1 or not 1 <= iteration <= iterations:
            raise ValueError(f"iteration {iteration} is not within 1..{iterations}")
        if iterations == 1:
            return self.start
        return round(self.start + (self.end - self.start) * (iteration - 1) / (iterations - 1), 3)

    def describe(self, iterations: int) -> str:
        steps = ", ".join(f"{self.for_iteration(i, iterations):g}" for i in range(1, iterations + 1))
        return (f"temperature by iteration: {steps} (description and plan {self.context:g}, "
                f"judge {JUDGE_TEMPERATURE:g})")
