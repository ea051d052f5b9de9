"""workspace/executeCommand `wattson.profile` and `wattson.optimize`: background jobs.

Each command: validate its argument, take the document's job slot, open progress, run the work in
a worker thread, then deliver: diagnostics and the energy notification (profile), a versioned
`workspace/applyEdit` that the editor previews before applying (optimize). Results computed against
an older version of the document are never applied.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from ..edits import line_edits
from ..measure import Target, budget_from, profile_target, remote_prefix
from ..project import resolve_program
from ..runner import AgentError
from .compiler_output import messages_for
from .documents import MAX_DOCUMENT_CHARS, document_path, is_cuda_document, looks_binary
from .jobs import JobBusy
from .lifecycle import ENERGY_NOTIFICATION, energy_notification
from .progress import JobProgress
from .protocol import REQUEST_PARAMS
from .settings import config_for

log = logging.getLogger("wattson.lsp")


def optimize_available() -> bool:
    """The optimize pipeline ships in the same package; its absence means the feature is absent."""
    try:
        from ..refactor import pipeline  # noqa: F401
    except ImportError:
        return False
    return True


class CommandRefused(Exception):
    """Bad argument or document: the message is shown to the user as is."""


@dataclass
class Snapshot:
    uri: str
    version: int | None
    text: str
    path: Path  # on disk, or a temp file for an unsaved buffer
    kernel: str | None


def _result(status: str, message: str, report_uri: str | None = None) -> dict:
    return {"status": status, "message": message, "report_uri": report_uri}


def snapshot(ls, args: tuple) -> Snapshot:
    if len(args) != 1 or not isinstance(args[0], dict) or not isinstance(args[0].get("uri"), str):
        raise CommandRefused('Wattson commands take one argument: {"uri": "file:///…", "version": N}.')
    arg = args[0]
    doc = ls.workspace.get_text_document(arg["uri"])
    if not is_cuda_document(doc.uri, doc.language_id):
        raise CommandRefused("Wattson works on CUDA and HIP files (.cu, .cuh, .hip).")
    text = doc.source
    if not text.strip():
        raise CommandRefused("This file is empty: there is nothing to measure.")
    if looks_binary(text):
        raise CommandRefused("This file looks binary, not CUDA/HIP source.")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise CommandRefused(f"This file is over {MAX_DOCUMENT_CHARS // 1_000_000} MB; Wattson works on "
                             "source files of ordinary size.")
    path = document_path(doc.uri)
    if path is None or not path.exists():
        # An unsaved buffer: measure it as a single file in a temp directory.
        name = (path.name if path else "untitled.cu") or "untitled.cu"
        tmp = Path(tempfile.mkdtemp(prefix="wattson-buffer-")) / name
        tmp.write_text(text)
        path = tmp
    kernel = arg.get("kernel") if isinstance(arg.get("kernel"), str) else None
    return Snapshot(doc.uri, doc.version, text, path, kernel)


def _program_with_buffer(snap: Snapshot, config) -> dict:
    """The project as on disk, except the open file, which travels as the editor has it."""
    program = resolve_program(snap.path, None, config)
    program["files"][program["source_file"]] = {"text": snap.text}
    return program


def _show(ls, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
    level = (ls.settings or {}).get("notifications", "all")
    if level == "none" or (level == "errors" and kind not in (types.MessageType.Error, types.MessageType.Warning)):
        return
    ls.window_show_message(types.ShowMessageParams(type=kind, message=message))


def _publish_build_errors(ls, snap: Snapshot, output: str) -> int:
    diagnostics = []
    for m in messages_for(output, snap.path.name):
        sev = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}.get(
            m.severity, types.DiagnosticSeverity.Information)
        line = max(0, m.line - 1)
        diagnostics.append(types.Diagnostic(
            range=types.Range(start=types.Position(line=line, character=max(0, m.column - 1)),
                              end=types.Position(line=line, character=10_000)),
            severity=sev, source="wattson (build)", message=m.message))
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=snap.uri, version=snap.version, diagnostics=diagnostics))
    return len(diagnostics)


def _agent_error_message(e: AgentError) -> str:
    return e.message


# --- profile ---------------------------------------------------------------------------------------

def run_profile(ls, snap: Snapshot, progress: JobProgress, cancel: threading.Event) -> dict:
    config = config_for(ls, snap.path)
    program = _program_with_buffer(snap, config)
    agent = ls.agent(remote_prefix(None, config))
    target = Target(label=snap.path.name, program=program, source_path=snap.path.resolve(), source_text=snap.text)
    return profile_target(agent, target, budget=budget_from(config), kernels=True,
                          kernel_copies=config.measure.kernel_copies, progress=progress.report,
                          cancel=cancel, history=ls.history)


def _energy_line(result: dict) -> str:
    e = result.get("energy_j") or {}
    if e.get("median") is None:
        return "measured"
    ci = f"[{e.get('ci_low', 0):.3g}, {e.get('ci_high', 0):.3g}]"
    return f"{e['median']:.3g} J {ci} (95 % CI, {e.get('n', '?')} trials)"


async def profile_command(ls, *args) -> dict:
    return await _run_command(ls, "profile", args, _profile_work, "Wattson: measuring energy")


async def _profile_work(ls, snap: Snapshot, progress: JobProgress, cancel: threading.Event) -> dict:
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(None, functools.partial(run_profile, ls, snap, progress, cancel))
    except AgentError as e:
        data = e.data if isinstance(e.data, dict) else {}
        if data.get("kind") == "build_failed":
            n = _publish_build_errors(ls, snap, data.get("output", ""))
            msg = f"The build failed ({n} message(s) shown in the file). {e.message}"
            _show(ls, msg, types.MessageType.Error)
            return _result("failed", msg)
        raise
    _publish_build_errors(ls, snap, "")  # a good build clears old build errors
    _announce_energy(ls, snap)
    msg = f"{snap.path.name}: {_energy_line(result)}"
    _show(ls, msg)
    return _result("done", msg)


def _announce_energy(ls, snap: Snapshot) -> None:
    """The file's latest stored profile to the status bar, and fresh code lenses for its kernels."""
    stored = ls.history.latest_profile(str(snap.path.resolve()))
    if stored is not None:
        note = energy_notification(snap.uri, stored, snap.text)
        if note:
            ls.protocol.notify(ENERGY_NOTIFICATION, note)
    _refresh_code_lenses(ls)


def _refresh_code_lenses(ls) -> None:
    caps = ls.client_capabilities.workspace
    if caps and caps.code_lens and caps.code_lens.refresh_support:
        ls.workspace_code_lens_refresh(None)


# --- optimize --------------------------------------------------------------------------------------

async def optimize_command(ls, *args) -> dict:
    if not optimize_available():
        _show(ls, "Optimize for energy is not available in this installation of Wattson.", types.MessageType.Error)
        return _result("failed", "optimize is not available")
    return await _run_command(ls, "optimize", args, _optimize_work, "Wattson: optimizing for energy")


def run_optimize(ls, snap: Snapshot, progress: JobProgress, cancel: threading.Event):
    from ..refactor.pipeline import OptimizeRequest, optimize

    config = config_for(ls, snap.path)
    program = _program_with_buffer(snap, config)
    agent = ls.agent(remote_prefix(None, config))
    request = OptimizeRequest(source_path=snap.path.resolve(), source_text=snap.text, program=program,
                              config=config, kernel=snap.kernel)
    return optimize(request, agent=agent, history=ls.history, progress=progress.report, cancel=cancel)


async def _optimize_work(ls, snap: Snapshot, progress: JobProgress, cancel: threading.Event) -> dict:
    loop = asyncio.get_running_loop()
    outcome = await loop.run_in_executor(None, functools.partial(run_optimize, ls, snap, progress, cancel))
    _announce_energy(ls, snap)  # the original was profiled on the way: its figure is the file's latest
    report_uri = outcome.report_path.as_uri() if outcome.report_path else None
    if report_uri:
        ls.window_show_document(types.ShowDocumentParams(uri=report_uri, take_focus=False))
    if outcome.status != "improved" or not outcome.best_source:
        kind = types.MessageType.Warning if outcome.status == "failed" else types.MessageType.Info
        _show(ls, outcome.message, kind)
        return _result(outcome.status, outcome.message, report_uri)
    return await deliver_edit(ls, snap, outcome.best_source, outcome.label, outcome.message, report_uri)


async def deliver_edit(ls, snap: Snapshot, new_text: str, label: str, message: str,
                       report_uri: str | None) -> dict:
    current = ls.workspace.get_text_document(snap.uri)
    if current.version != snap.version or current.source != snap.text:
        choice = await ls.window_show_message_request_async(types.ShowMessageRequestParams(
            type=types.MessageType.Warning,
            message="The file changed while Wattson was working, so its result was not applied "
                    "(it was computed for the earlier text). The report is kept.",
            actions=[types.MessageActionItem(title="Re-run")]))
        if choice is not None and choice.title == "Re-run":
            _start_rerun(optimize_command(ls, {"uri": snap.uri, "version": current.version,
                                               **({"kernel": snap.kernel} if snap.kernel else {})}))
        return _result("stale", "the document changed during the job; nothing was applied", report_uri)
    edit = workspace_edit(ls, snap, new_text, label, message)
    applied = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=label))
    if applied.applied:
        return _result("applied", message, report_uri)
    return _result("proposed", f"{message} (not applied: {applied.failure_reason or 'declined in the editor'})",
                   report_uri)


def workspace_edit(ls, snap: Snapshot, new_text: str, label: str, message: str) -> types.WorkspaceEdit:
    """The change as the client can take it: a versioned, annotated edit that asks for confirmation
    where the client supports documentChanges (VS Code, Neovim); else plain `changes`, whose version
    the server checked just before."""
    caps = ls.client_capabilities.workspace
    workspace_edit_caps = caps.workspace_edit if caps else None
    ranges = [(types.Range(start=types.Position(line=e.start_line, character=0),
                           end=types.Position(line=e.end_line, character=0)), e.new_text)
              for e in line_edits(snap.text, new_text)]
    if not (workspace_edit_caps and workspace_edit_caps.document_changes):
        return types.WorkspaceEdit(changes={snap.uri: [types.TextEdit(range=r, new_text=t) for r, t in ranges]})
    annotation_id = "wattson-optimize"
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=snap.uri, version=snap.version),
            edits=[types.AnnotatedTextEdit(range=r, new_text=t, annotation_id=annotation_id) for r, t in ranges])],
        change_annotations={annotation_id: types.ChangeAnnotation(
            label=label, needs_confirmation=True, description=message)})


_RERUNS: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks


def _start_rerun(job) -> None:
    """A job the server starts itself. An empty context: the finished request's workDoneToken and id
    are not the re-run's (it gets a progress token of its own, and its own cancel)."""
    task = asyncio.get_running_loop().create_task(job, context=contextvars.Context())
    _RERUNS.add(task)
    task.add_done_callback(_RERUNS.discard)


# --- shared job handling ---------------------------------------------------------------------------

async def _run_command(ls, kind: str, args: tuple, work, title: str) -> dict:
    try:
        snap = snapshot(ls, args)
    except CommandRefused as e:
        _show(ls, str(e), types.MessageType.Warning)
        return _result("failed", str(e))
    params = REQUEST_PARAMS.get()
    client_token = getattr(params, "work_done_token", None)
    try:
        job = ls.jobs.start(snap.uri, kind, msg_id=ls.protocol.msg_id, token=client_token)
    except JobBusy as e:
        _show(ls, str(e), types.MessageType.Warning)
        return _result("failed", str(e))
    progress = await JobProgress.open(ls, client_token, title, job.cancel.set)
    job.token = progress.token
    end_message = "finished"
    try:
        result = await work(ls, snap, progress, job.cancel)
        end_message = result.get("message", "finished")
        return result
    except asyncio.CancelledError:
        job.cancel.set()
        end_message = "cancelled"
        raise
    except AgentError as e:
        data = e.data if isinstance(e.data, dict) else {}
        if job.cancel.is_set() or data.get("kind") == "cancelled":
            end_message = "cancelled"
            return _result("cancelled", "cancelled; no process left running")
        end_message = _agent_error_message(e)
        _show(ls, end_message, types.MessageType.Error)
        return _result("failed", end_message)
    except Exception as e:  # noqa: BLE001 - configuration/project errors are worded for the user
        from ..config import ConfigError
        from ..project import ProjectError

        if isinstance(e, (ConfigError, ProjectError)):
            end_message = str(e)
            _show(ls, end_message, types.MessageType.Error)
            return _result("failed", end_message)
        log.exception("%s job failed", kind)
        end_message = f"Wattson hit an internal error ({type(e).__name__}: {e}); see the server log."
        _show(ls, end_message, types.MessageType.Error)
        return _result("failed", end_message)
    finally:
        ls.jobs.finish(job)
        progress.end(end_message[:200])


def register(server) -> None:
    server.command("wattson.profile")(profile_command)
    server.command("wattson.optimize")(optimize_command)
