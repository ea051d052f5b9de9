"""`wattson serve` over stdio, driven by a real LSP client (pytest-lsp). Fake only: the GPU sensors."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest
import pytest_lsp
from lsp_workspace import make_workspace, parse_code_actions_per_spec
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from wattson.store import History, content_hash
from wattson_cli import fake_programs_running

WS = make_workspace(seconds=0.3)
SOURCE: Path = WS["source"]
URI = SOURCE.as_uri()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "wattson", "serve"],
                                              server_env=WS["env"]))
async def client(lsp_client: LanguageClient):
    parse_code_actions_per_spec(lsp_client)
    lsp_client.code_lens_refreshes = 0
    lsp_client.energy_notes = []

    @lsp_client.feature("wattson/energyMeasured")
    def energy_measured(params) -> None:
        lsp_client.energy_notes.append(params)

    @lsp_client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def code_lens_refresh(params) -> None:  # VS Code re-asks for lenses; we count the requests
        lsp_client.code_lens_refreshes += 1

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=WS["project"].as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=WS["project"].as_uri(), name="project")]))
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, text: str | None = None, uri: str = URI, language: str = "cuda-cpp",
          version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id=language, version=version, text=SOURCE.read_text() if text is None else text)))


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


async def _execute(client: LanguageClient, command: str, arg: dict, token: str | None = None):
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=command, arguments=[arg], work_done_token=token))


# --- code actions ----------------------------------------------------------------------------------

async def test_code_actions_offer_commands_at_once(client: LanguageClient):
    _open(client)
    text = SOURCE.read_text()
    line = _line_of(text, "out[i] = in[i]")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        range=types.Range(start=types.Position(line=line, character=0), end=types.Position(line=line, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    titles = [a.title for a in actions]
    assert "Profile energy" in titles
    assert "Optimize for energy" in titles
    assert "Optimize kernel `copy_kernel` for energy" in titles
    assert all(isinstance(a, types.CodeAction) for a in actions)  # CodeActions carrying commands
    by_title = {a.title: a for a in actions}
    kernel_action = by_title["Optimize kernel `copy_kernel` for energy"]
    assert kernel_action.kind == types.CodeActionKind.RefactorRewrite and kernel_action.edit is None
    assert kernel_action.command.command == "wattson.optimize"
    assert list(kernel_action.command.arguments) == [{"uri": URI, "version": 1, "kernel": "copy_kernel"}]
    whole_file = by_title["Optimize for energy"].command
    assert whole_file.command == "wattson.optimize" and list(whole_file.arguments) == [{"uri": URI, "version": 1}]
    profile = by_title["Profile energy"]
    assert profile.kind == types.CodeActionKind.Source and profile.command.command == "wattson.profile"


async def test_no_code_actions_outside_cuda_files(client: LanguageClient):
    uri = (WS["project"] / "notes.py").as_uri()
    _open(client, "print('hi')\n", uri=uri, language="python")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    assert not actions


# --- hover and code lens from the history ---------------------------------------------------------

def _seed_kernel_profile(text: str) -> None:
    result = {"protocol": "wattson", "device": {"name": "Fake H100"},
              "energy_j": {"median": 10.0, "ci_low": 9.8, "ci_high": 10.2, "n": 5}, "trials": []}
    kernels = {"kernels": [
        {"name": "_Z11copy_kernelPKfPfi", "launches": 100, "gpu_time_s": 0.31, "time_share": 0.4,
         "energy_j": 4.1, "energy_ci_j": [3.9, 4.3], "energy_share": 0.41, "avg_power_w": 212.0,
         "attributable": True, "reason": ""},
        {"name": "void fma_kernel<float>(float*, int, int)", "launches": 100, "gpu_time_s": 0.5,
         "time_share": 0.6, "energy_j": 5.9, "energy_ci_j": [5.6, 6.2], "energy_share": 0.59,
         "avg_power_w": 305.0, "attributable": True, "reason": ""}]}
    with History(WS["db"]) as h:
        h.add_profile(source_path=str(SOURCE.resolve()), source_hash=content_hash(text), result=result,
                      kernels=kernels)


async def test_hover_and_code_lens_show_measured_kernel_costs(client: LanguageClient):
    text = SOURCE.read_text()
    _seed_kernel_profile(text)
    _open(client, text)
    line = _line_of(text, "void copy_kernel")
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=line, character=text.splitlines()[line].index("copy_kernel") + 2)))
    assert hover is not None
    assert "4.1 J" in hover.contents.value and "[3.9, 4.3]" in hover.contents.value
    assert "212 W" in hover.contents.value and "Stale" not in hover.contents.value
    launch = _line_of(text, "copy_kernel<<<")
    hover_launch = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(line=launch, character=6)))
    assert hover_launch is not None and "copy_kernel" in hover_launch.contents.value

    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=URI)))
    titles = [lens.command.title for lens in lenses]
    assert "⚡ 41 % of energy · 212 W · 3.1 ms" in titles
    assert any(t.startswith("⚡ 59 % of energy · 305 W") for t in titles)
    assert titles.count("Optimize") == 2
    fma_line = _line_of(text, "template <typename T>")
    assert any(lens.range.start.line == fma_line for lens in lenses)


async def test_hover_says_stale_after_the_file_changed(client: LanguageClient):
    text = SOURCE.read_text()
    _seed_kernel_profile(text)
    changed = text.replace("1.0001", "1.0002")
    _open(client, changed)
    line = _line_of(changed, "void copy_kernel")
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=line, character=changed.splitlines()[line].index("copy_kernel"))))
    assert "Stale" in hover.contents.value


# --- profile command: progress, result, notification, diagnostics ---------------------------------

async def test_profile_reports_progress_and_stores_the_result(client: LanguageClient):
    _open(client)
    token = f"t-{uuid.uuid4().hex[:6]}"
    client.progress_reports[token] = []
    result = await _execute(client, "wattson.profile", {"uri": URI, "version": 1}, token)
    assert result["status"] == "done", result
    kinds = [type(v).__name__ for v in client.progress_reports[token]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert "WorkDoneProgressReport" in kinds
    assert client.energy_notes, "no wattson/energyMeasured notification"
    note = client.energy_notes[-1]
    assert note.uri == URI and note.energy_j > 0 and note.ci_low_j <= note.energy_j <= note.ci_high_j
    with History(WS["db"]) as h:
        stored = h.latest_profile(str(SOURCE.resolve()))
    assert stored is not None and stored.result["energy_j"]["median"] > 0
    assert client.code_lens_refreshes >= 1


@pytest.mark.parametrize("copies", [True, False])
async def test_kernel_copies_setting_reaches_the_tracer(client: LanguageClient, copies: bool):
    """wattson.measure.kernelCopies, sent as a settings change, asks the traced run for copies."""
    project = WS["project"] / f"copies-{copies}"
    project.mkdir(exist_ok=True)
    source = project / "kern.cu"
    source.write_text(SOURCE.read_text())
    seen = project / "seen"
    probe = ("import os, sys; t = 'WATTSON_KERNEL_TRACE' in os.environ; "
             "c = os.environ.get('WATTSON_KERNEL_TRACE_COPIES', 'no') if t else '-'; "
             "open(sys.argv[1], 'a').write(c + '\\n')")
    toml = (WS["project"] / "wattson.toml").read_text()
    run_line = next(line for line in toml.splitlines() if line.startswith("command = ") and "--load-file" in line)
    probed = f"{sys.executable} -c {json.dumps(probe)} {seen} && " + json.loads(run_line.removeprefix("command = "))
    (project / "wattson.toml").write_text(toml.replace(run_line, f"command = {json.dumps(probed)}"))
    # Pushed, and also what the client answers if the server pulls (its first pull may still be on
    # the way: whichever arrives last, the settings are the same).
    settings = {"measure": {"kernelCopies": copies}}
    client.set_configuration(settings, section="wattson")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"wattson": settings}))
    uri = source.as_uri()
    _open(client, uri=uri)
    result = await _execute(client, "wattson.profile", {"uri": uri, "version": 1})
    assert result["status"] == "done", result
    lines = seen.read_text().split()
    expected = "1" if copies else "no"
    if set(lines) == {"-"}:  # no traced run at all: the tracer could not be built on this machine
        pytest.skip(f"the tracer could not be built here: {lines}")
    assert lines[-1] == expected and set(lines[:-1]) == {"-"}


async def test_build_errors_become_diagnostics_at_their_lines(client: LanguageClient):
    text = SOURCE.read_text().replace("T v = x[i];", "T v = x[i]  // missing semicolon\n    undefined_call();")
    _open(client, text)
    result = await _execute(client, "wattson.profile", {"uri": URI, "version": 1})
    assert result["status"] == "failed"
    await asyncio.sleep(0.2)
    diags = client.diagnostics.get(URI) or []
    assert diags, "no diagnostics were published for a failing build"
    lines = {d.range.start.line for d in diags}
    assert _line_of(text, "undefined_call") in lines or _line_of(text, "missing semicolon") + 1 in lines
    assert all(d.source == "wattson (build)" for d in diags)


async def test_unsaved_buffer_is_what_gets_measured(client: LanguageClient):
    """The buffer's text travels, not the file on disk: a compile error only in the buffer fails the build."""
    text = SOURCE.read_text() + "\nthis is not C++;\n"
    _open(client, text)
    result = await _execute(client, "wattson.profile", {"uri": URI, "version": 1})
    assert result["status"] == "failed"


# --- jobs: one per document, cancellable ----------------------------------------------------------

async def _wait_for_trial(client: LanguageClient, token: str, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if any(isinstance(v, types.WorkDoneProgressReport) and v.message and "trial" in v.message.lower()
               for v in client.progress_reports.get(token, [])):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no trial progress: {client.progress_reports.get(token)}")


async def test_second_job_on_same_document_is_refused_then_cancel_by_progress(client: LanguageClient):
    _open(client)
    token = f"t-{uuid.uuid4().hex[:6]}"
    client.progress_reports[token] = []
    first = asyncio.ensure_future(_execute(client, "wattson.profile", {"uri": URI, "version": 1}, token))
    await _wait_for_trial(client, token)
    second = await _execute(client, "wattson.profile", {"uri": URI, "version": 1})
    assert second["status"] == "failed" and "already running" in second["message"]
    assert any("already running" in m.message for m in client.messages)
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(first, 30)
    assert result["status"] == "cancelled"
    await asyncio.sleep(0.5)
    assert fake_programs_running(str(WS["load_file"])) == []


async def test_cancel_request_stops_the_job(client: LanguageClient):
    _open(client)
    token = f"t-{uuid.uuid4().hex[:6]}"
    client.progress_reports[token] = []
    future = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command="wattson.profile", arguments=[{"uri": URI, "version": 1}], work_done_token=token))
    msg_id = next(k for k, f in client.protocol._request_futures.items() if f is future)
    await _wait_for_trial(client, token)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception):  # noqa: B017 - the client sees the request cancelled
        await asyncio.wait_for(asyncio.wrap_future(future), 30)
    # The job itself stops too: progress ends and the program is gone.
    for _ in range(200):
        if any(isinstance(v, types.WorkDoneProgressEnd) for v in client.progress_reports[token]):
            break
        await asyncio.sleep(0.05)
    assert any(isinstance(v, types.WorkDoneProgressEnd) for v in client.progress_reports[token])
    await asyncio.sleep(0.5)
    assert fake_programs_running(str(WS["load_file"])) == []


# --- bad input never crashes the server -----------------------------------------------------------

@pytest.mark.parametrize("arg", [None, 3, "x", [], {}, {"uri": 5}, {"uri": "file:///nope/missing.cu"},
                                 {"uri": URI, "version": "x", "kernel": 7}])
async def test_malformed_command_arguments_get_a_message(client: LanguageClient, arg):
    _open(client)
    try:
        result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="wattson.profile", arguments=[arg]))
    except Exception:  # noqa: BLE001 - an error response is acceptable; the server must survive
        result = None
    if result is not None:
        assert result["status"] in ("failed", "done")
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(line=0, character=0)))
    assert hover is None or hover.contents


async def test_fuzzed_positions_and_documents_do_not_crash(client: LanguageClient):
    import random

    rng = random.Random(11)
    _open(client)
    binary_uri = (WS["project"] / "blob.cu").as_uri()
    _open(client, "\x00\x01\x02binary", uri=binary_uri)
    for _ in range(60):
        uri = rng.choice([URI, binary_uri, "file:///not/open.cu", "untitled:Untitled-1"])
        pos = types.Position(line=rng.randint(0, 10_000), character=rng.randint(0, 10_000))
        try:
            await client.text_document_hover_async(types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=pos))
            await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=pos, end=pos),
                context=types.CodeActionContext(diagnostics=[])))
            await client.text_document_code_lens_async(types.CodeLensParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
        except Exception:  # noqa: BLE001, S110 - an error response is fine; a dead server is not
            pass
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=URI)))
    assert lenses is not None
    json.dumps([lens.command.title for lens in lenses])
