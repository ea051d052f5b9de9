"""`wattson optimize FILE` and `wattson prompts show FILE`: the LASSI-EE loop from the command line.

`optimize` runs the loop (wattson.refactor.pipeline) against the GPU agent, shows progress, and
ends with the outcome, the diff and the report's path. `--apply` writes the file only after the
diff was shown and the user answered yes at a terminal (or passed --yes). ^C cancels cleanly: the
agent's jobs are stopped, finished candidates are kept, and the report says where it stopped.
`prompts show` prints what a run would send to the model, with no key, GPU or model needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize", help="rewrite a CUDA/HIP file to use less energy: measured, checked, judged"
    )
    p.add_argument("file", help="a .cu/.hip file (its wattson.toml or Makefile says how to build and run)")
    p.add_argument(
        "-k",
        type=_positive,
        default=None,
        metavar="K",
        help="independent trials; the best candidate of all is offered (default [optimize] k, 3)",
    )
    p.add_argument(
        "--iterations",
        type=_positive,
        default=None,
        metavar="N",
        help="measured iterations per trial (default [optimize] iterations, 3)",
    )
    p.add_argument(
        "--trials",
        type=_positive,
        default=None,
        metavar="N",
        help="run N trials and report pass@k and energy-reduction@k (k from -k)",
    )
    p.add_argument("--kernel", default=None, metavar="NAME", help="focus the model on one kernel")
    p.add_argument(
        "--remote",
        metavar="PREFIX",
        help='run the GPU agent behind this command prefix, e.g. "ssh gpu01" '
        "(default: [remote] command in wattson.toml, else this machine)",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="write the best candidate into FILE after showing the diff and asking",
    )
    p.add_argument("--yes", action="store_true", help="with --apply: do not ask (needed without a terminal)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument("--db", type=Path, default=None, help="SQLite history file (default: platform data dir)")
    p.set_defaults(handler=cmd_optimize)

    p = sub.add_parser("prompts", help="what `wattson optimize` sends to the model (no key needed)")
    prompts_sub = p.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")
    show = prompts_sub.add_parser("show", help="print the prompts a run on FILE would send")
    show.add_argument("file", help="a .cu/.hip file")
    show.add_argument(
        "--export", type=Path, default=None, metavar="DIR", help="also write them as files in DIR"
    )
    show.set_defaults(handler=cmd_prompts_show)


# --- optimize ------------------------------------------------------------------------------------


def cmd_optimize(args: argparse.Namespace, console: Console) -> int:
    from .console import progress_bar
    from .measure import load_config_for, start_agent, target_for_file
    from .refactor.pipeline import OptimizeRequest, optimize
    from .store import History

    path = Path(args.file)
    config = load_config_for(path)
    target = target_for_file(path, None, config)
    assert target.source_path is not None and target.source_text is not None
    request = OptimizeRequest(
        source_path=target.source_path,
        source_text=target.source_text,
        program=target.program,
        config=config,
        kernel=args.kernel,
        k=args.k,
        iterations=args.iterations,
        trials=args.trials,
    )
    err = Console(stderr=True)
    for name, reason in (target.program.get("skipped_files") or {}).items():
        err.print(f"[yellow]warning:[/] {escape(name)} stays behind: {escape(reason)}")
    cancel = threading.Event()
    result: dict[str, Any] = {}
    with History(args.db) if args.db else History() as history, start_agent(args.remote, config) as agent:
        show = not args.json and console.is_terminal
        with progress_bar(console, f"Optimizing {path.name}", enabled=show) as update:
            done = threading.Event()

            def work() -> None:
                try:
                    result["outcome"] = optimize(
                        request, agent=agent, history=history, progress=update, cancel=cancel
                    )
                except BaseException as e:  # noqa: BLE001 - handed to the main thread, raised there
                    result["error"] = e
                finally:
                    done.set()

            threading.Thread(target=work, name="wattson-optimize", daemon=True).start()
            _wait(done, cancel, err)
    if "error" in result:
        raise result["error"]
    outcome = result["outcome"]
    if args.json:
        print(json.dumps(_outcome_dict(outcome), indent=2, default=str))
    else:
        _print_outcome(console, outcome, args.apply)
    if outcome.status == "cancelled" or cancel.is_set():
        return EXIT_INTERRUPTED  # a best candidate found before ^C is shown and kept, never applied
    if outcome.status == "failed":
        return EXIT_FAILURE
    if args.apply and outcome.status == "improved":
        return _apply(console, err, target.source_path, target.source_text, outcome.best_source, args.yes)
    return EXIT_OK


def _wait(done: threading.Event, cancel: threading.Event, err: Console) -> None:
    """Wait for the loop; the first ^C cancels it cleanly, a second one stops waiting.

    An Event, not Thread.join: a join interrupted by ^C can leave the thread looking finished."""
    interrupted = False
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            cancel.set()
            err.print(
                "[yellow]cancelling[/]: stopping the agent's jobs and keeping finished candidates "
                "(^C again to stop waiting)"
            )


def _outcome_dict(outcome: Any) -> dict:
    return {
        "status": outcome.status,
        "message": outcome.message,
        "label": outcome.label,
        "energy_ratio": outcome.energy_ratio,
        "diff": outcome.diff,
        "best_source": outcome.best_source,
        "report_path": str(outcome.report_path) if outcome.report_path else None,
        "job_id": outcome.job_id,
        "metrics": outcome.metrics,
    }


def _print_outcome(console: Console, outcome: Any, will_apply: bool) -> None:
    style = {"improved": "green", "no-improvement": "yellow", "failed": "red", "cancelled": "yellow"}
    console.print(f"[{style.get(outcome.status, 'bold')}]{escape(outcome.label)}[/]")
    console.print(escape(outcome.message), highlight=False)
    if outcome.diff and (will_apply or console.is_terminal):
        console.print(Syntax(outcome.diff, "diff", theme="ansi_dark", word_wrap=False))
    elif outcome.diff:
        print(outcome.diff, end="")
    if outcome.metrics:
        console.print(_metrics_text(outcome.metrics), highlight=False)


def _metrics_text(metrics: dict) -> str:
    lines = [f"{metrics['passed']} of {metrics['n']} trials passed."]
    for row in metrics["rows"]:
        lines.append(
            f"  k={row['k']}: pass@k {row['pass_at_k'] * 100:.1f} %, "
            f"energy-reduction@k {row['energy_reduction_at_k'] * 100:.1f} %"
        )
    mean = metrics.get("conditional_mean_reduction")
    lines.append(
        "  mean reduction over passing trials: " + (f"{mean * 100:.1f} %" if mean is not None else "–")
    )
    return "\n".join(lines)


def _apply(
    console: Console, err: Console, path: Path, original_text: str, new_text: str | None, yes: bool
) -> int:
    """Write the candidate into the file: only after asking at a terminal, or with --yes."""
    if new_text is None:
        return EXIT_OK
    if not yes:
        if not sys.stdin.isatty():
            err.print(
                "[yellow]not applied[/]: there is no terminal to ask for confirmation; re-run with "
                "--apply --yes to write the file without asking"
            )
            return EXIT_FAILURE
        try:
            answer = input(f"Apply this change to {path}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            console.print("Not applied; the diff and the candidate are kept in the job folder.")
            return EXIT_OK
    try:
        current = path.read_text()
    except OSError as e:
        err.print(f"[red]error:[/] cannot read {path} to apply the change: {e}")
        return EXIT_FAILURE
    if current != original_text:
        err.print(
            f"[yellow]not applied[/]: {path} changed while Wattson was working; the diff was computed for "
            "the earlier text (it is kept in the job folder)"
        )
        return EXIT_FAILURE
    path.write_text(new_text)
    console.print(f"Applied to {path}.")
    return EXIT_OK


# --- prompts show ----------------------------------------------------------------------------------


def cmd_prompts_show(args: argparse.Namespace, console: Console) -> int:
    from .cli import UserError
    from .measure import load_config_for
    from .project import resolve_program
    from .prompt_render import PromptError, export_prompts, prompts_for_file

    path = Path(args.file)
    config = load_config_for(path)
    program = resolve_program(path, None, config)
    try:
        prompts = prompts_for_file(program)
    except PromptError as e:
        raise UserError(str(e), EXIT_USAGE) from e
    for number, prompt in enumerate(prompts, start=1):
        console.rule(f"{number:02d} {prompt.name}.md ({prompt.role}, version {prompt.version})")
        console.print(prompt.text, markup=False, highlight=False)
    if args.export is not None:
        paths = export_prompts(prompts, args.export)
        console.print(f"Wrote {len(paths)} prompts to {args.export}", highlight=False)
    return EXIT_OK
