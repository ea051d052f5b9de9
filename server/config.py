"""wattson.toml and editor settings, read into one typed, validated `Config`.

Every key has a type and a default (docs/configuration.md lists them). An unknown key, a wrong
type or an out-of-range value is a `ConfigError` whose message names the file (or "editor
settings") and the key, so the user knows what to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE_NAME = "wattson.toml"
LLM_PROVIDERS = ("anthropic", "openai-compatible", "command")
LLM_STREAM_MODES = ("auto", "always", "never")
LLM_STRUCTURED_OUTPUT_MODES = ("auto", "json_schema", "tools", "prompt")

# Editor settings that configure the extension or server, not a measurement: never an error.
EDITOR_ONLY_SETTINGS = frozenset({"notifications", "server", "trace"})


class ConfigError(Exception):
    """A configuration problem, worded for the user: which file (or settings), which key, what is wrong."""


# --- field kinds: how a TOML value is checked and converted -----------------------------------------

class _Invalid(Exception):
    """A value does not fit its key; the message completes "KEY must be …"."""


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"a string, got {_got(value)}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"true or false, got {_got(value)}")
    return value


def _number(value: Any) -> float:
    # bool is an int in Python; `timeout_s = true` is a mistake, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"a number, got {_got(value)}")
    if not math.isfinite(value):
        raise _Invalid(f"a finite number, got {value!r}")
    return float(value)


def _integer(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"a whole number, got {_got(value)}")
    return value


def _word(value: Any) -> str:
    """A program argument or environment value: strings, and numbers written without quotes."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(f"a string, got {_got(value)}")
    return value if isinstance(value, str) else str(value)


def _words(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f'a list of strings such as ["4096", "100"], got {_got(value)}')
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_word(item))
        except _Invalid as e:
            raise _Invalid(f"a list of strings; item {i + 1} is not: {e}") from None
    return tuple(out)


def _word_lists(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise _Invalid(f'a list of argument lists such as [["1024", "50"]], got {_got(value)}')
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_words(item))
        except _Invalid as e:
            raise _Invalid(f"a list of argument lists; item {i + 1} is not: {e}") from None
    return tuple(out)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f'a table such as {{ OMP_NUM_THREADS = "8" }}, got {_got(value)}')
    out = {}
    for name, item in value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _Invalid(f"a table of environment variables; {name!r} is not a variable name")
        try:
            out[name] = _word(item)
        except _Invalid as e:
            raise _Invalid(f"a table of strings; {name} is not: {e}") from None
    return out


def _regexes(value: Any) -> tuple[str, ...]:
    patterns = _words(value)
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise _Invalid(f"a list of regular expressions; {p!r} is not one: {e}") from None
    return patterns


def _env_name(value: Any) -> str:
    name = _string(value)
    if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise _Invalid(f"the name of an environment variable, got {name!r}")
    return name


def _relative_paths(value: Any) -> tuple[str, ...]:
    paths = _words(value)
    for p in paths:
        if not p or Path(p).is_absolute() or ".." in Path(p).parts:
            raise _Invalid(f"a list of paths inside the program's folder; {p!r} is not")
    return paths


def _file_modes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f'a table such as {{ "out/result.bin" = "binary:float32" }}, got {_got(value)}')
    from .verify.output_files import validate_mode  # only when the key is set: wattson.verify is large

    out = {}
    for name, mode in value.items():
        _relative_paths([name])
        try:
            out[name] = _string(mode)
        except _Invalid as e:
            raise _Invalid(f"a table of output-file modes; {name} is not: {e}") from None
        if problem := validate_mode(out[name]):
            raise _Invalid(f"a table of output-file modes; {name}: {problem}")
    return out


def _above(low: float) -> Callable[[float], None]:
    def check(v: float) -> None:
        if not v > low:
            raise _Invalid(f"greater than {low:g}, got {v:g}")
    return check


def _at_least(low: float) -> Callable[[float], None]:
    def check(v: float) -> None:
        if v < low:
            raise _Invalid(f"at least {low:g}, got {v:g}")
    return check


def _fraction(v: float) -> None:
    if not 0 < v < 1:
        raise _Invalid(f"a fraction between 0 and 1 (0.02 means 2 %), got {v:g}")


def _effect(v: float) -> None:
    if not 0 <= v < 1:
        raise _Invalid(f"a fraction from 0 up to 1 (0.01 means 1 %), got {v:g}")


def _one_of(*choices: str) -> Callable[[str], None]:
    def check(v: str) -> None:
        if v not in choices:
            raise _Invalid("one of " + ", ".join(f'"{c}"' for c in choices) + f", got {v!r}")
    return check


def _key(default: Any, convert: Callable[[Any], Any], check: Callable[[Any], None] | None = None,
         *, absent: bool = False) -> Any:
    """A config key: its default, converter and range check. `absent` keys default to None (derived)."""
    meta = {"convert": convert, "check": check}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=None if absent else default, metadata=meta)


# --- the sections --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildConfig:
    command: str | None = _key(None, _string, absent=True)  # None: derived from the source file; "": none
    timeout_s: float = _key(300.0, _number, _above(0))


@dataclass(frozen=True)
class RunConfig:
    command: str | None = _key(None, _string, absent=True)  # None: derived from the build
    args: tuple[str, ...] = _key((), _words)
    timeout_s: float = _key(60.0, _number, _above(0))
    env: dict[str, str] = _key({}, _env)
    alternate_args: tuple[tuple[str, ...], ...] = _key((), _word_lists)


@dataclass(frozen=True)
class MeasureConfig:
    min_trials: int = _key(5, _integer, _at_least(1))
    max_trials: int = _key(30, _integer, _at_least(1))
    max_wall_s: float = _key(90.0, _number, _above(0))
    target_ci_half_width: float = _key(0.02, _number, _fraction)
    cooldown_cap_s: float = _key(10.0, _number, _at_least(0))
    min_effect: float = _key(0.01, _number, _effect)
    kernel_copies: bool = _key(False, _boolean)  # with per-kernel tracing: memcpy and memset too
    pin_cpus: int = _key(0, _integer, _at_least(0))  # bind each run to this many host CPUs; 0: no pinning


@dataclass(frozen=True)
class RemoteConfig:
    command: str = _key("", _string)  # "": this machine


@dataclass(frozen=True)
class VerifyConfig:
    rtol: float = _key(1e-5, _number, _at_least(0))
    atol: float = _key(1e-8, _number, _at_least(0))
    pass_regex: tuple[str, ...] | None = _key(None, _regexes, absent=True)  # None: the oracle's markers
    fail_regex: tuple[str, ...] | None = _key(None, _regexes, absent=True)
    output_files: tuple[str, ...] = _key((), _relative_paths)
    initcheck: bool = _key(False, _boolean)  # compute-sanitizer initcheck on the original and each candidate
    initcheck_timeout_s: float = _key(600.0, _number, _above(0))
    output_file_modes: dict[str, str] = _key({}, _file_modes)  # path -> mode; unlisted files: auto


@dataclass(frozen=True)
class LlmConfig:
    """What wattson.llm needs; docs/llm.md explains the keys after `command`."""

    provider: str = _key("anthropic", _string, _one_of(*LLM_PROVIDERS))
    model: str = _key("", _string)  # "": the provider's default
    base_url: str = _key("", _string)
    command: str = _key("", _string)
    api_key_env: str = _key("", _env_name)  # "": ANTHROPIC_API_KEY / OPENAI_API_KEY
    timeout_s: float = _key(600.0, _number, _above(0))
    max_attempts: int = _key(6, _integer, _at_least(1))
    stream: str = _key("auto", _string, _one_of(*LLM_STREAM_MODES))
    structured_output: str = _key("auto", _string, _one_of(*LLM_STRUCTURED_OUTPUT_MODES))
    effort: str = _key("", _string)
    price_input_usd_per_mtok: float | None = _key(None, _number, _at_least(0), absent=True)
    price_output_usd_per_mtok: float | None = _key(None, _number, _at_least(0), absent=True)


@dataclass(frozen=True)
class OptimizeConfig:
    k: int = _key(3, _integer, _at_least(1))
    iterations: int = _key(3, _integer, _at_least(1))
    max_corrections: int = _key(3, _integer, _at_least(0))


SECTIONS: dict[str, type] = {
    "build": BuildConfig, "run": RunConfig, "measure": MeasureConfig, "remote": RemoteConfig,
    "verify": VerifyConfig, "llm": LlmConfig, "optimize": OptimizeConfig,
}


@dataclass(frozen=True)
class Config:
    build: BuildConfig = field(default_factory=BuildConfig)
    run: RunConfig = field(default_factory=RunConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    source_path: Path | None = None  # the wattson.toml it came from, or None


# --- finding and loading -------------------------------------------------------------------------

def find_config_file(start: Path) -> Path | None:
    """The wattson.toml beside `start` (a file or folder) or in a parent folder.

    The search stops at the filesystem root, or after the folder that holds `.git`: a toml above
    the repository belongs to something else.
    """
    folder = start.resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / CONFIG_FILE_NAME
        if path.is_file():
            return path
        if (candidate / ".git").exists():
            return None
    return None


def display_path(path: Path) -> str:
    """The path as the user would write it: relative to the working directory when under it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def load_config(path: Path | None) -> Config:
    """Read and validate a wattson.toml; None gives the defaults."""
    if path is None:
        return Config()
    where = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or e})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{where}: unknown section [{name}]{_suggest(name, SECTIONS)}; "
                              f"sections are " + ", ".join(f"[{s}]" for s in SECTIONS))
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table (a [{name}] header with keys below it), "
                              f"got {_got(table)}")
        sections[name] = _section(SECTIONS[name], table, lambda key, s=name: f"{where}: [{s}] {key}")
    config = Config(**sections, source_path=path.resolve())
    _check_across_keys(config, lambda s, key: f"{where}: [{s}] {key}")
    return config


def merge_settings(config: Config, settings: Mapping[str, Any] | None) -> Config:
    """Editor settings (the `wattson` section) override the file.

    Keys are nested like the file's (`{"llm": {"baseUrl": …}}`) or dotted (`"llm.baseUrl"`), in the
    editor's camelCase or the file's snake_case. An empty string or null means "not set": editors
    send every declared setting, and an unset one must not hide the file's value.
    """
    if not settings:
        return config
    changes: dict[str, dict[str, Any]] = {}
    for name, value in _flatten(settings):
        section, _, key = name.partition(".")
        if section not in SECTIONS:
            if section in EDITOR_ONLY_SETTINGS or not key:
                continue
            raise ConfigError(f"editor settings: wattson.{name} is not a Wattson setting; sections are "
                              + ", ".join(SECTIONS))
        if value is None or value == "":
            continue
        changes.setdefault(section, {})[_snake(key)] = (key, value)
    updated = {}
    for section, keyed in changes.items():
        current = getattr(config, section)
        table = {snake: value for snake, (_, value) in keyed.items()}
        original = {snake: key for snake, (key, _) in keyed.items()}
        def name_of(key: str, s: str = section, o: dict[str, str] = original) -> str:
            return f"editor settings: wattson.{s}.{o.get(key, key)}"

        updated[section] = _section(type(current), table, name_of, base=current)
    result = dataclasses.replace(config, **updated)
    _check_across_keys(result, lambda s, key: f"editor settings (with the file): [{s}] {key}")
    return result


def _section(cls: type, table: Mapping[str, Any], name_of: Callable[[str], str], base: Any = None) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            raise ConfigError(f"{name_of(key)}: unknown key{_suggest(key, fields)}; keys here are "
                              + ", ".join(fields))
        try:
            converted = f.metadata["convert"](value)
            if f.metadata["check"] is not None:
                f.metadata["check"](converted)
        except _Invalid as e:
            raise ConfigError(f"{name_of(key)} must be {e}") from None
        values[key] = converted
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _check_across_keys(config: Config, name_of: Callable[[str, str], str]) -> None:
    m = config.measure
    if m.max_trials < m.min_trials:
        raise ConfigError(f"{name_of('measure', 'max_trials')} ({m.max_trials}) must be at least "
                          f"min_trials ({m.min_trials})")
    v = config.verify
    if stray := sorted(set(v.output_file_modes) - set(v.output_files)):
        raise ConfigError(f"{name_of('verify', 'output_file_modes')} names {', '.join(stray)}, which "
                          "output_files does not list: add it to output_files, or remove its mode")
    llm = config.llm
    if (llm.price_input_usd_per_mtok is None) != (llm.price_output_usd_per_mtok is None):
        raise ConfigError(f"{name_of('llm', 'price_input_usd_per_mtok')} and price_output_usd_per_mtok go "
                          "together: set both or neither")


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        section = name.partition(".")[0]
        # Tables inside a section are values (run.env), not more nesting.
        if isinstance(value, Mapping) and "." not in name and section in set(SECTIONS) | EDITOR_ONLY_SETTINGS:
            out += _flatten(value, name + ".")
        elif isinstance(value, Mapping) and section not in SECTIONS:
            continue
        else:
            out.append((name, dict(value) if isinstance(value, Mapping) else value))
    return out


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _suggest(word: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
