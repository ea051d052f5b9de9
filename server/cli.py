"""`wattson`: the command line. Each subcommand parses its arguments and delegates.

Exit codes: 0 success; 1 failure; 2 usage or configuration error; 3 build failed;
4 the program failed (non-zero exit, crash, timeout); 5 no usable GPU; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__

EXIT_FAILURE, EXIT_USAGE, EXIT_BUILD, EXIT_PROGRAM, EXIT_NO_GPU, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130

LLM_KEY_NAMES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")


class UserError(Exception):
    """An error with a message for the user and an exit code; printed without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE, detail: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.detail = detail


# --- argument parsing ----------------------------------------------------------------------------

def _add_measure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", metavar="PREFIX",
                   help='run the GPU agent behind this command prefix, e.g. "ssh gpu01" '
                        '(default: [remote] command in wattson.toml, else this machine)')
    p.add_argument("--protocol", choices=["wattson", "lassi-ee"], default="wattson",
                   help="wattson: repeated trials with CIs (default); lassi-ee: the paper's single-run method")
    p.add_argument("--device", type=int, default=None, help="GPU index on the agent host")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--db", type=Path, default=None, help="SQLite history file (default: platform data dir)")
    p.add_argument("--min-trials", type=int, default=None)
    p.add_argument("--max-trials", type=int, default=None)
    p.add_argument("--max-wall-s", type=float, default=None, help="time budget for the measurement")
    p.add_argument("--target-ci", type=float, default=None, dest="target_ci_half_width",
                   help="stop when the 95 %% CI half-width is below this fraction (default 0.02)")
    p.add_argument("--pin-cpus", type=int, default=None, metavar="N",
                   help="bind each run to N host CPUs near the GPU (steadies a single-threaded host phase; "
                        "default: [measure] pin_cpus, else no pinning)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattson", description="Measure and reduce the energy of CUDA/HIP programs.")
    parser.add_argument("--version", action="version", version=f"wattson {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="what this machine (or a remote GPU host) can measure")
    p.add_argument("--remote", metavar="PREFIX", help='also check a remote agent, e.g. "ssh gpu01"')
    p.add_argument("--probe-s", type=float, default=2.0, help="seconds to watch each sensor")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("profile", help="build and run a program under measurement")
    p.add_argument("file", help="a .cu/.hip file (its wattson.toml or Makefile says how to build and run)")
    p.add_argument("--args", nargs=argparse.REMAINDER, default=None,
                   help="arguments for the program (everything after --args)")
    p.add_argument("--kernels", action="store_true", help="per-kernel energy (CUDA only)")
    p.add_argument("--kernel-copies", action="store_true",
                   help="--kernels, with memcpy and memset traced too (slower in copy-heavy loops)")
    _add_measure_options(p)

    p = sub.add_parser("compare", help="which of two programs uses less energy (interleaved trials)")
    p.add_argument("a", help="a file, or a run command in quotes")
    p.add_argument("b", help="a file, or a run command in quotes")
    p.add_argument("--args", nargs=argparse.REMAINDER, default=None, help="arguments for both programs")
    _add_measure_options(p)

    p = sub.add_parser("agent", help="the GPU-side agent (started by wattson itself, locally or over ssh)")
    p.add_argument("--stdio", action="store_true", required=True, help="speak JSON-RPC on stdin/stdout")

    sub.add_parser("serve", help="the language server (LSP over stdio), started by the editor")

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction) -> None:
    """Subcommands whose modules register themselves; absent modules mean absent features."""
    try:
        from .cli_optimize import add_parsers
    except ImportError:
        return
    add_parsers(sub)


# --- commands ------------------------------------------------------------------------------------

def _history(args: argparse.Namespace):
    from .store import History

    return History(args.db) if args.db else History()


def _budget_overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("min_trials", "max_trials", "max_wall_s", "target_ci_half_width",
                                          "pin_cpus")}


def _measure(args: argparse.Namespace, console: Console, config, title: str, work) -> dict:
    """Run one measurement through the agent with a progress bar; ^C cancels the agent's job first."""
    from .console import progress_bar
    from .measure import start_agent

    cancel = threading.Event()
    with _history(args) as history, start_agent(args.remote, config) as agent:
        with progress_bar(console, title, enabled=not args.json and console.is_terminal) as update:
            try:
                return work(agent, progress=update, cancel=cancel, history=history)
            except KeyboardInterrupt:
                cancel.set()
                raise


def cmd_profile(args: argparse.Namespace, console: Console) -> int:
    from .console import busy_window_line, kernels_table, profile_bar_title, profile_table
    from .measure import budget_from, load_config_for, profile_target, target_for_file

    path = Path(args.file)
    config = load_config_for(path)
    target = target_for_file(path, args.args, config)
    budget = budget_from(config, _budget_overrides(args))
    copies = args.kernel_copies or (args.kernels and config.measure.kernel_copies)
    result = _measure(args, console, config, profile_bar_title(target.label),
                      lambda agent, **kw: profile_target(agent, target, budget=budget, protocol=args.protocol,
                                                         kernels=args.kernels, kernel_copies=copies,
                                                         device=args.device, **kw))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console.print(profile_table(result, f"Energy profile of {target.label}"))
    if result.get("kernels"):
        console.print(kernels_table(result["kernels"]))
        console.print(busy_window_line(result))
    for w in result.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w}")
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from .console import compare_table
    from .measure import budget_from, compare_targets, load_config_for, resolve_target

    config = load_config_for(Path(args.a) if Path(args.a).exists() else None)
    a = resolve_target(args.a, args.args, config)
    b = resolve_target(args.b, args.args, config)
    budget = budget_from(config, _budget_overrides(args))
    result = _measure(args, console, config, "Comparing A and B",
                      lambda agent, **kw: compare_targets(agent, a, b, budget=budget, protocol=args.protocol,
                                                          device=args.device, **kw))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console.print(compare_table(result, a.label, b.label))
    verdict = (result.get("energy_ratio") or {}).get("text")
    if verdict:
        style = {"less": "green", "more": "red"}.get(result["energy_ratio"].get("kind"), "bold")
        console.print(f"[{style}]{verdict}[/]")
    for w in result.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w}")
    return 0


def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    from .doctor import doctor_report, render_doctor

    report = doctor_report(remote=args.remote, probe_s=args.probe_s)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render_doctor(report, console)
    return 0 if report.get("ok") else EXIT_NO_GPU


def cmd_agent(args: argparse.Namespace, console: Console) -> int:
    from .profilers.agent import main_stdio

    return main_stdio([])


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from .lsp.server import main as serve_main

    return serve_main()


COMMANDS = {"profile": cmd_profile, "compare": cmd_compare, "doctor": cmd_doctor, "agent": cmd_agent,
            "serve": cmd_serve}


# --- errors --------------------------------------------------------------------------------------

def _as_user_error(exc: BaseException) -> UserError | None:
    """Map the modules' own errors to a message and an exit code."""
    from .config import ConfigError
    from .project import ProjectError
    from .runner import AgentError

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, (ConfigError, ProjectError)):
        return UserError(str(exc), EXIT_USAGE)
    if isinstance(exc, AgentError):
        data = exc.data if isinstance(exc.data, dict) else {}
        kind = data.get("kind", "")
        code = {"build_failed": EXIT_BUILD, "program_failed": EXIT_PROGRAM, "no_gpu": EXIT_NO_GPU,
                "gpu_busy": EXIT_FAILURE, "cancelled": EXIT_INTERRUPTED}.get(kind, EXIT_FAILURE)
        detail = data.get("output") or "\n".join(x for x in (data.get("stdout_tail"), data.get("stderr_tail")) if x)
        return UserError(exc.message, code, detail or "")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=args.command in ("agent", "serve"))
    err = Console(stderr=True)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args, console)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: measurements stopped, no process left running; finished results kept.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error a user can hit is worded, the rest re-raised
        user = _as_user_error(exc)
        if user is None:
            if os.environ.get("WATTSON_DEBUG"):
                raise
            err.print(f"[red]error:[/] internal error: {type(exc).__name__}: {exc}\n"
                      "Re-run with WATTSON_DEBUG=1 for a traceback and report it.")
            return EXIT_FAILURE
        err.print(f"[red]error:[/] {escape(str(user))}", highlight=False)
        if user.detail:
            err.print(user.detail.rstrip(), markup=False, highlight=False)
        return user.exit_code


if __name__ == "__main__":
    sys.exit(main())
