"""Editor settings (section `wattson`) pulled with `workspace/configuration`, merged over wattson.toml.

VS Code sends camelCase keys (`llm.baseUrl`); wattson.toml uses snake_case (`base_url`): converted here.
Secrets never come this way; the server reads keys from its own environment.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lsprotocol import types

from ..config import Config, find_config_file, load_config, merge_settings

log = logging.getLogger("wattson.lsp")

# Editor-only keys with no wattson.toml counterpart.
EDITOR_ONLY = {"notifications", "server", "trace"}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def settings_to_config_dict(section: dict | None) -> dict:
    """{'llm': {'baseUrl': 'x'}, 'measure': {'maxWallS': 30}} -> {'llm': {'base_url': 'x'}, ...}."""
    out: dict = {}
    for key, value in (section or {}).items():
        if key in EDITOR_ONLY or value is None:
            continue
        if isinstance(value, dict):
            inner = {_snake(k): v for k, v in value.items() if v not in (None, "")}
            if inner:
                out[_snake(key)] = inner
    return out


def config_for(ls, path: Path | None) -> Config:
    """wattson.toml for this file (if any), with the editor's settings on top."""
    start = path.parent if path is not None else Path.cwd()
    config = load_config(find_config_file(start))
    return merge_settings(config, settings_to_config_dict(ls.settings))


def register(server) -> None:
    async def refresh(ls) -> None:
        caps = ls.client_capabilities.workspace
        if not (caps and caps.configuration):
            return  # the client cannot answer: wattson.toml and the defaults apply
        try:
            result = await ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="wattson")]))
            ls.settings = result[0] if result and isinstance(result[0], dict) else {}
        except Exception as e:  # noqa: BLE001 - a client without configuration support keeps defaults
            log.info("workspace/configuration unavailable (%s); using wattson.toml and defaults", e)

    @server.feature(types.INITIALIZED)
    async def initialized(ls, params: types.InitializedParams) -> None:
        await refresh(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def changed(ls, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get("wattson"), dict):
            ls.settings = settings["wattson"]
        else:
            await refresh(ls)
