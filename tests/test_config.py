"""wattson.toml and editor settings: defaults, every key read, errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from wattson.config import (
    Config,
    ConfigError,
    find_config_file,
    load_config,
    merge_settings,
)

FULL_TOML = """
[build]
command = "nvcc -O3 -arch=native -o jacobi2d jacobi2d.cu"
timeout_s = 120

[run]
command = "./jacobi2d"
args = ["4096", 200]
timeout_s = 30.5
env = { OMP_NUM_THREADS = "8", CUDA_DEVICE_MAX_CONNECTIONS = 1 }
alternate_args = [["1024", "50"], ["512"]]

[measure]
min_trials = 3
max_trials = 12
max_wall_s = 45
target_ci_half_width = 0.03
cooldown_cap_s = 0
min_effect = 0.02

[remote]
command = "ssh gpu01"

[verify]
rtol = 1e-4
atol = 0
pass_regex = ["PASS", "^ok$"]
fail_regex = ["FAIL"]
output_files = ["out/result.bin"]

[llm]
provider = "openai-compatible"
model = "qwen"
base_url = "http://127.0.0.1:8000/v1"
command = ""
api_key_env = "LAB_GATEWAY_KEY"
timeout_s = 120
max_attempts = 2
stream = "never"
structured_output = "tools"
effort = "high"
price_input_usd_per_mtok = 0.5
price_output_usd_per_mtok = 1

[optimize]
k = 5
iterations = 2
max_corrections = 0
"""


def write(tmp_path: Path, text: str, name: str = "wattson.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_no_file_gives_the_documented_defaults():
    c = load_config(None)
    assert c.source_path is None
    assert c.build.command is None and c.build.timeout_s == 300
    assert c.run.command is None and c.run.args == () and c.run.timeout_s == 60 and c.run.env == {}
    assert (c.measure.min_trials, c.measure.max_trials, c.measure.max_wall_s) == (5, 30, 90)
    m = c.measure
    assert (m.target_ci_half_width, m.cooldown_cap_s, m.min_effect, m.kernel_copies) == (0.02, 10, 0.01, False)
    assert c.remote.command == ""
    v = c.verify
    assert (v.rtol, v.atol, v.pass_regex, v.fail_regex) == (1e-5, 1e-8, None, None)
    assert c.llm.provider == "anthropic" and c.llm.model == ""
    assert (c.optimize.k, c.optimize.iterations, c.optimize.max_corrections) == (3, 3, 3)


def test_every_key_is_read_and_converted(tmp_path):
    c = load_config(write(tmp_path, FULL_TOML))
    assert c.source_path == (tmp_path / "wattson.toml").resolve()
    assert c.build.timeout_s == 120.0 and isinstance(c.build.timeout_s, float)
    assert c.run.args == ("4096", "200")  # numbers written without quotes are arguments too
    assert c.run.env == {"OMP_NUM_THREADS": "8", "CUDA_DEVICE_MAX_CONNECTIONS": "1"}
    assert c.run.alternate_args == (("1024", "50"), ("512",))
    assert c.measure.min_trials == 3 and c.measure.max_wall_s == 45.0
    assert c.remote.command == "ssh gpu01"
    assert c.verify.pass_regex == ("PASS", "^ok$") and c.verify.output_files == ("out/result.bin",)
    assert c.verify.atol == 0.0
    assert c.llm.provider == "openai-compatible" and c.llm.base_url.endswith("/v1")
    assert (c.llm.api_key_env, c.llm.timeout_s, c.llm.max_attempts) == ("LAB_GATEWAY_KEY", 120.0, 2)
    assert (c.llm.stream, c.llm.structured_output, c.llm.effort) == ("never", "tools", "high")
    assert (c.llm.price_input_usd_per_mtok, c.llm.price_output_usd_per_mtok) == (0.5, 1.0)
    assert (c.optimize.k, c.optimize.iterations, c.optimize.max_corrections) == (5, 2, 0)


def test_the_documented_example_in_the_docs_parses(tmp_path):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    block = docs.split("```toml", 1)[1].split("```", 1)[0]
    c = load_config(write(tmp_path, block))
    assert c.build.command and c.run.args


@pytest.mark.parametrize(("text", "expected"), [
    ('[run]\ntimeout_s = "abc"\n', "[run] timeout_s must be a number, got 'abc'"),
    ("[run]\ntimeout_s = true\n", "[run] timeout_s must be a number, got true"),
    ("[measure]\nmin_trials = 2.5\n", "[measure] min_trials must be a whole number, got 2.5"),
    ('[run]\nargs = "4096 100"\n', "[run] args must be a list of strings"),
    ("[run]\nargs = [[1]]\n", "item 1 is not"),
    ('[run]\nenv = { "1BAD" = "x" }\n', "[run] env must be a table of environment variables"),
    ("[run]\nalternate_args = [\"1\"]\n", "[run] alternate_args must be a list of argument lists"),
    ('[llm]\nprovider = "gpt"\n',
     '[llm] provider must be one of "anthropic", "openai-compatible", "command", got \'gpt\''),
    ("[measure]\ntarget_ci_half_width = 2\n", "[measure] target_ci_half_width must be a fraction"),
    ("[measure]\nmax_wall_s = 0\n", "[measure] max_wall_s must be greater than 0"),
    ("[optimize]\nk = 0\n", "[optimize] k must be at least 1"),
    ("[measure]\nmin_trials = 10\nmax_trials = 4\n",
     "[measure] max_trials (4) must be at least min_trials (10)"),
    ("[llm]\nprice_input_usd_per_mtok = 3\n",
     "[llm] price_input_usd_per_mtok and price_output_usd_per_mtok go together"),
    ('[llm]\napi_key_env = "MY KEY"\n', "[llm] api_key_env must be the name of an environment variable"),
    ('[llm]\nstream = "sometimes"\n', '[llm] stream must be one of "auto", "always", "never"'),
    ('[verify]\npass_regex = ["(unclosed"]\n', "[verify] pass_regex must be a list of regular expressions"),
    ('[verify]\noutput_files = ["../secret"]\n', "[verify] output_files must be a list of paths inside"),
    ('[remote]\ncommand = ["ssh", "gpu01"]\n', "[remote] command must be a string, got a list"),
    ("[run]\ntimout_s = 5\n", "[run] timout_s: unknown key (did you mean 'timeout_s'?)"),
    ("[rnu]\nargs = []\n", "unknown section [rnu] (did you mean 'run'?)"),
    ('run = "./a.out"\n', "[run] must be a table"),
])
def test_errors_name_the_file_and_the_key(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    message = error_of(tmp_path, text)
    assert message.startswith("wattson.toml: "), message
    assert expected in message, message


def test_errors_give_the_path_as_the_user_would_write_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, '[run]\ntimeout_s = "abc"\n', "examples/x/wattson.toml")
    expected = r"^examples/x/wattson.toml: \[run\] timeout_s must be a number, got 'abc'$"
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_invalid_toml_names_the_line(tmp_path):
    message = error_of(tmp_path, "[run]\ntimeout_s = = 3\n[build]\n")
    assert "not valid TOML" in message and "line" in message


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "wattson.toml")
    (tmp_path / "bad").write_bytes(b"[run]\nargs = ['\xff']\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "bad")


def test_find_config_file_walks_up_to_the_repository_root(tmp_path):
    repo = tmp_path / "repo"
    deep = repo / "src" / "app"
    deep.mkdir(parents=True)
    (repo / ".git").mkdir()
    (deep / "k.cu").write_text("int main(){}")
    assert find_config_file(deep / "k.cu") is None
    write(tmp_path, "")  # above the repository: belongs to something else
    assert find_config_file(deep) is None
    toml = write(repo, "[run]\n")
    assert find_config_file(deep / "k.cu") == toml.resolve()
    nearer = write(repo / "src", "[run]\n")
    assert find_config_file(deep) == nearer.resolve()


def test_find_config_file_outside_a_repository_reaches_a_parent(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    toml = write(tmp_path, "")
    assert find_config_file(tmp_path / "a" / "b") == toml.resolve()


def test_settings_override_the_file_in_camel_or_snake_case(tmp_path):
    base = load_config(write(tmp_path, FULL_TOML))
    merged = merge_settings(base, {
        "remote": {"command": "ssh gpu02"},
        "llm": {"provider": "anthropic", "baseUrl": "http://gw/v1", "model": ""},
        "optimize": {"k": 2},
        "measure.maxWallS": 20,
        "measure": {"min_trials": 2, "kernelCopies": True},
        "notifications": "errors",
        "server": {"command": ["wattson", "serve"], "pythonPath": ""},
        "trace": {"server": "verbose"},
    })
    assert merged.remote.command == "ssh gpu02"
    assert merged.llm.provider == "anthropic" and merged.llm.base_url == "http://gw/v1"
    assert merged.llm.model == "qwen"  # "" means unset: the file's value stays
    assert merged.optimize.k == 2 and merged.optimize.iterations == 2
    assert merged.measure.max_wall_s == 20.0 and merged.measure.min_trials == 2 and merged.measure.kernel_copies
    assert merged.source_path == base.source_path
    assert merged.run == base.run
    assert base.optimize.k == 5  # the original is unchanged


def test_unset_settings_keep_the_file(tmp_path):
    base = load_config(write(tmp_path, FULL_TOML))
    assert merge_settings(base, {}) == base
    assert merge_settings(base, {"optimize": {"k": None}, "remote": {"command": ""}}) == base


@pytest.mark.parametrize(("settings", "expected"), [
    ({"optimize": {"k": "three"}}, "editor settings: wattson.optimize.k must be a whole number, got 'three'"),
    ({"measure": {"maxWallS": -1}}, "editor settings: wattson.measure.maxWallS must be greater than 0"),
    ({"llm": {"baseUri": "x"}},
     "editor settings: wattson.llm.baseUri: unknown key (did you mean 'base_url'?)"),
    ({"llm.temprature": 1}, "wattson.llm.temprature: unknown key"),
    ({"measure": {"maxTrials": 2}}, "max_trials (2) must be at least min_trials (3)"),
])
def test_settings_errors_name_the_setting(tmp_path, settings, expected):
    base = load_config(write(tmp_path, FULL_TOML))
    with pytest.raises(ConfigError) as info:
        merge_settings(base, settings)
    assert expected in str(info.value)


def test_settings_onto_defaults():
    merged = merge_settings(Config(), {"run": {"env": {"A": "1"}}, "verify": {"passRegex": ["OK"]}})
    assert merged.run.env == {"A": "1"} and merged.verify.pass_regex == ("OK",)
    assert merged.source_path is None
