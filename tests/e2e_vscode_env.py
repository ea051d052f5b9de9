"""The world the VS Code end-to-end test runs in: fake GPU sensors, a loopback fake LLM, a real project.

    python tests/e2e_vscode_env.py [--transcript NAME] -- node e2e/run-e2e.mjs --scenario=optimize

Sets up, in a temporary folder: the scripted fake GPU (WATTSON_FAKE_GPU), a history database, our
jacobi2d example as the optimize tests' project (every candidate built for real by nvcc, then
played on the fake GPU with the work its source declares), and the loopback fake Messages API
serving a recorded transcript. Then runs the given command with the WATTSON_E2E_* variables that
point run-e2e.mjs at the real `wattson serve`. The API key reaches the extension only through
WATTSON_E2E_API_KEY, which the test types into "Wattson: Set API Key"; afterwards every request
the fake LLM received must carry it, and a passing run must have used the whole transcript.
Exit status: the command's, or 1 when the fake LLM saw something else than the transcript.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from llm_fake_server import FakeLlmServer, Reply
from script_module import load_script

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = REPO / "tests" / "fixtures" / "transcripts"
FAKE_PROGRAM = REPO / "tests" / "helpers" / "fake_gpu_program.py"
# Not a real key: only the loopback fake LLM ever sees it.
FAKE_API_KEY = "sk-ant-e2e-fake-key-for-the-loopback-server"
# The same scripted card as the CLI and LSP tests.
FAKE_GPU = {"name": "Fake H100", "idle_w": 70, "busy_w": 350, "settle_s": 0.05,
            "counter_period_s": 0.01, "noise_w": 0.5, "seed": 7}


def _load_replay() -> ModuleType:
    return load_script(TRANSCRIPTS / "replay.py")


def server_command() -> list[str]:
    """`wattson serve` from the environment of this Python, as a user's install has it."""
    script = Path(sys.executable).parent / "wattson"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "wattson", "serve"]


def push_transcript(server: FakeLlmServer, replies: list[dict]) -> int:
    for r in replies:
        if "tool_input" in r:
            server.push(Reply(tool_input=r["tool_input"]))
        else:
            server.push(Reply(text=r["text"], stop_reason=r["stop_reason"]))
    return len(replies)


def last_candidate(replies: list[dict]) -> str:
    """The source of the transcript's last code reply: what the editor should hold once applied."""
    for r in reversed(replies):
        found = re.search(r"^```\w+ file=\S+\n(.*?)\n```$", r.get("text", ""), flags=re.DOTALL | re.MULTILINE)
        if found:
            return found.group(1) + "\n"
    raise ValueError("the transcript has no code reply")


def set_trials(toml: Path, trials: int) -> None:
    """Trials per measurement: the editor, Chromium and nvcc share the CPU with the fake GPU's
    programs here, so one more trial than the pipeline tests take keeps the verdict steady."""
    text = re.sub(r"^(m(?:in|ax)_trials) = \d+$", rf"\1 = {trials}", toml.read_text(), flags=re.MULTILINE)
    toml.write_text(text)


def make_world(root: Path, base_url: str, example: str, seconds: float, trials: int) -> dict[str, str]:
    """Creates the fake GPU, the project and the history under root; returns the command's environment."""
    load_file = root / "gpu-load"
    load_file.write_text("0")
    spec_path = root / "fake-gpu.json"
    spec_path.write_text(json.dumps({"devices": [{**FAKE_GPU, "load_file": str(load_file)}]}))
    replay = _load_replay()
    source = replay.make_test_project(
        root / "workspace", FAKE_PROGRAM, load_file, replay.anthropic_llm(base_url),
        example=example, seconds=seconds,
    )
    set_trials(source.parent / "wattson.toml", trials)
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    env.update({
        "WATTSON_FAKE_GPU": str(spec_path),
        "WATTSON_DB": str(root / "data" / "history.sqlite3"),
        "WATTSON_LOCK_DIR": str(root / "locks"),
        "PYTHONUNBUFFERED": "1",
        "WATTSON_E2E_SERVER_CMD": json.dumps(server_command()),
        "WATTSON_E2E_WORKSPACE": str(source.parent),
        "WATTSON_E2E_FILE": source.name,
        "WATTSON_E2E_API_KEY": FAKE_API_KEY,
    })
    return env


def sent_key(headers: dict[str, str]) -> str | None:
    """The API key a request carried: SDK versions send it as x-api-key or as a bearer token."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[len("Bearer "):] if bearer.startswith("Bearer ") else None)


def check_llm_traffic(server: FakeLlmServer, expected: int) -> list[str]:
    """What the fake LLM saw that a good run would not have: [] when it was the transcript, in full."""
    problems = []
    posts = [r for r in server.requests if r.path.rstrip("/").endswith("/messages")]
    if server.pending():
        problems.append(f"{server.pending()} of {expected} recorded replies were never asked for")
    if len(posts) > expected:
        problems.append(f"{len(posts) - expected} requests more than the transcript has")
    keys = {sent_key(r.headers) for r in posts}
    if posts and keys != {FAKE_API_KEY}:
        seen = sorted(str(k) for k in keys)
        problems.append(f"requests came with the keys {seen}, not only the one typed into 'Wattson: Set API Key'")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transcript", default="jacobi2d_compile_fix",
                   help="a folder of tests/fixtures/transcripts; none: a scenario that asks no model")
    p.add_argument("--example", default="jacobi2d", help="the example the transcript was recorded for")
    p.add_argument("--seconds", type=float, default=0.3, help="how long one run of the original is busy")
    p.add_argument("--trials", type=int, default=3, help="trials per side of every measurement")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (history, reports)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run in this world")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --, e.g. -- node e2e/run-e2e.mjs --scenario=optimize")
    if shutil.which("nvcc") is None:
        print("e2e: nvcc is not on PATH: the test project builds every candidate with it.", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="wattson-e2e-world-"))
    try:
        with FakeLlmServer() as server:
            env = make_world(root, server.anthropic_base_url, args.example, args.seconds, args.trials)
            expected = 0
            if args.transcript != "none":
                replies = _load_replay().load_replies(TRANSCRIPTS / args.transcript, f"{args.example}.cu")
                expected = push_transcript(server, replies)
                applied = root / "expected" / f"{args.example}.cu"
                applied.parent.mkdir()
                applied.write_text(last_candidate(replies))
                env["WATTSON_E2E_EXPECTED_FILE"] = str(applied)
            print(f"e2e: fake GPU and history in {root}; fake LLM at {server.anthropic_base_url} "
                  f"with transcript {args.transcript} ({expected} replies)", flush=True)
            rc = subprocess.run(command, env=env, check=False).returncode
            posts = sum(1 for r in server.requests if r.path.rstrip("/").endswith("/messages"))
            print(f"e2e: the fake LLM answered {posts} requests; {server.pending()} replies left")
            if rc == 0:
                problems = check_llm_traffic(server, expected)
                for problem in problems:
                    print(f"e2e: FAIL {problem}")
                if problems:
                    rc = 1
        return rc
    finally:
        if args.keep:
            print(f"e2e: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
