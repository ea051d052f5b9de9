"""The `[llm]` settings a provider is made from, read from whatever shape the caller holds.

`wattson.config` owns wattson.toml; this module only needs a few of its keys and accepts the whole
Config (its `.llm`), the LlmConfig section, a plain dict of the `[llm]` table, or nothing (defaults).
Keys a given config does not have take the defaults below, so both sides can grow independently.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields, replace
from typing import Any

from .base import LlmError

PROVIDERS = ("anthropic", "openai-compatible", "command")
_ALIASES = {"openai": "openai-compatible", "openai_compatible": "openai-compatible", "claude": "anthropic"}
STRUCTURED_MODES = ("auto", "json_schema", "tools", "prompt")


@dataclass(frozen=True)
class LlmSettings:
    provider: str = "anthropic"
    model: str = ""  # "" = the provider's default (anthropic: newest Sonnet the SDK lists)
    base_url: str = ""  # "" = the SDK's default (anthropic) / OPENAI_BASE_URL (openai-compatible)
    command: str = ""  # the `command` provider's executable and arguments, shell-quoted
    api_key_env: str = ""  # "" = ANTHROPIC_API_KEY / OPENAI_API_KEY
    timeout_s: float = 600.0  # per request; while streaming, the longest silence between chunks
    max_attempts: int = 6  # tries per request, first included
    stream: str = "auto"  # "auto" | "always" | "never"
    structured_output: str = "auto"  # openai-compatible: "json_schema" | "tools" | "prompt" | "auto"
    effort: str = ""  # anthropic output_config.effort ("low" … "max"); "" = the model's default
    price_input_usd_per_mtok: float | None = None
    price_output_usd_per_mtok: float | None = None

    @classmethod
    def from_config(cls, config: Any) -> LlmSettings:
        if config is None:
            return cls()
        if isinstance(config, LlmSettings):
            return config
        section = getattr(config, "llm", config)  # a whole Config, or already its [llm] section
        if isinstance(section, dict):
            raw = dict(section)
        else:
            raw = {f.name: getattr(section, f.name) for f in fields(cls) if hasattr(section, f.name)}
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise LlmError(f"unknown [llm] key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in "
                           f"wattson.toml: the keys are {', '.join(f.name for f in fields(cls))}")
        raw = {k: v for k, v in raw.items() if v is not None or k.startswith("price_")}
        settings = cls(**raw)
        return settings.validated()

    def validated(self) -> LlmSettings:
        provider = _ALIASES.get(self.provider.strip().lower(), self.provider.strip().lower())
        if provider not in PROVIDERS:
            raise LlmError(f"unknown [llm] provider {self.provider!r} in wattson.toml: use one of "
                           f"{', '.join(PROVIDERS)}")
        if self.stream not in ("auto", "always", "never"):
            raise LlmError(f"[llm] stream must be auto, always or never, got {self.stream!r}")
        if self.structured_output not in STRUCTURED_MODES:
            raise LlmError(f"[llm] structured_output must be one of {', '.join(STRUCTURED_MODES)}, "
                           f"got {self.structured_output!r}")
        if not self.timeout_s or self.timeout_s <= 0:
            raise LlmError(f"[llm] timeout_s must be a positive number of seconds, got {self.timeout_s!r}")
        if self.max_attempts < 1:
            raise LlmError(f"[llm] max_attempts must be at least 1, got {self.max_attempts!r}")
        if (self.price_input_usd_per_mtok is None) != (self.price_output_usd_per_mtok is None):
            raise LlmError("[llm] price_input_usd_per_mtok and price_output_usd_per_mtok go together: "
                           "set both or neither")
        if provider == "command" and not self.command.strip():
            raise LlmError('[llm] provider = "command" needs [llm] command, e.g. command = "my-llm --json"')
        return replace(self, provider=provider)

    def command_argv(self) -> list[str]:
        try:
            return shlex.split(self.command)
        except ValueError as err:
            raise LlmError(f"[llm] command {self.command!r} cannot be split into arguments: {err}") from None

