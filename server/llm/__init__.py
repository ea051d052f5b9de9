"""LLM providers behind one interface: anthropic (default), openai-compatible, command.

    provider = make_provider(config, account=job_account)
    reply = provider.complete(system, [Message("user", text)], temperature=0.2, max_tokens=16000)
    verdict = provider.complete_json(system, messages, schema=JUDGE_SCHEMA, temperature=0.0,
                                     max_tokens=4000)

docs/llm.md describes the settings, retries, accounting and what is sent.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .accounting import PRICES_SET_ON, Price, TokenAccount, price_for
from .base import (
    STOP_MAX_TOKENS,
    STOP_REFUSAL,
    Completion,
    LlmError,
    LlmProvider,
    LlmRefusal,
    LlmTruncated,
    Message,
    Usage,
)
from .retry import LlmCancelled, RetryPolicy
from .secrets import key_from_env
from .settings import LlmSettings

__all__ = [
    "PRICES_SET_ON", "STOP_MAX_TOKENS", "STOP_REFUSAL", "Completion", "LlmCancelled", "LlmError",
    "LlmProvider", "LlmRefusal", "LlmSettings", "LlmTruncated", "Message", "Price", "RetryPolicy",
    "TokenAccount", "Usage", "make_provider", "price_for",
]


def make_provider(config: Any = None, *, account: TokenAccount | None = None,
                  cancel: threading.Event | None = None, policy: RetryPolicy | None = None,
                  cwd: Path | None = None) -> LlmProvider:
    """The provider `[llm]` asks for. `config`: a Config, its LlmConfig, the [llm] dict, or None.

    Raises LlmError with a next step when the provider cannot be made (no key, no base_url, ...).
    `account` collects this job's tokens and cost; `cancel` interrupts retry waits and commands.
    """
    settings = LlmSettings.from_config(config)
    if account is None:
        price = None
        if settings.price_input_usd_per_mtok is not None and settings.price_output_usd_per_mtok is not None:
            price = Price(settings.price_input_usd_per_mtok, settings.price_output_usd_per_mtok)
        account = TokenAccount(price_override=price)
    policy = policy or RetryPolicy(max_attempts=settings.max_attempts)
    if settings.provider == "anthropic":
        from .anthropic_provider import KEY_ENV, AnthropicProvider

        key_env = settings.api_key_env or KEY_ENV
        key = key_from_env(key_env)
        if key is None:
            raise LlmError(f"{key_env} is not set: run `export {key_env}=…` (or store the key in the "
                           'editor), or choose another provider in wattson.toml [llm], e.g. provider = '
                           '"openai-compatible" for a model served on your cluster')
        return AnthropicProvider(api_key=key, model=settings.model, base_url=settings.base_url,
                                 timeout_s=settings.timeout_s, policy=policy, account=account,
                                 stream=settings.stream, effort=settings.effort, key_env=key_env,
                                 cancel=cancel)
    if settings.provider == "openai-compatible":
        from .openai_provider import KEY_ENV as OPENAI_KEY_ENV
        from .openai_provider import OpenAiCompatibleProvider

        key_env = settings.api_key_env or OPENAI_KEY_ENV
        return OpenAiCompatibleProvider(base_url=settings.base_url, model=settings.model,
                                        api_key=key_from_env(key_env), timeout_s=settings.timeout_s,
                                        policy=policy, account=account, stream=settings.stream,
                                        structured_output=settings.structured_output, key_env=key_env,
                                        cancel=cancel)
    from .command_provider import CommandProvider

    # The command may use a key of its own from the environment: keep any known one out of messages.
    key_envs = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", settings.api_key_env]
    secrets = [key_from_env(name) for name in key_envs if name]
    return CommandProvider(settings.command_argv(), model=settings.model, timeout_s=settings.timeout_s,
                           policy=policy, account=account, cwd=cwd, cancel=cancel, secrets=secrets)
