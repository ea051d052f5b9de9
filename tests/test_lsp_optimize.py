""""Optimize for energy" through `wattson serve` over stdio, driven by a real LSP client (pytest-lsp).

Real: the server, its agent subprocess, nvcc building every candidate, the anthropic SDK talking HTTP,
SQLite. Fake: the GPU sensors (our jacobi2d example is played on the scripted fake GPU with the work
its source declares) and the LLM's endpoint (the loopback fake server, scripted per test). The test
client behaves like an editor: it applies `workspace/applyEdit` to its copy of the document and
sends `didChange`, and answers `window/showMessageRequest` as a user would.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import pytest_lsp
from agent_fixture import processes_mentioning
from llm_fake_server import FakeLlmServer
from lsp_workspace import FAKE_API_KEY, add_optimize_project, candidate_text, make_optimize_workspace, optimize_replies
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from wattson.store import History, content_hash

WS = make_optimize_workspace()
SERVER = [sys.executable, "-m", "wattson", "serve"]
ENV_WITHOUT_KEYS = {k: v for k, v in WS["env"].items() if not k.endswith("_API_KEY")}
OPTIMIZE_TITLE = "Wattson: optimizing for energy"


@pytest.fixture
def llm():
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def source(llm: FakeLlmServer) -> Path:
    return add_optimize_project(WS, f"p-{uuid.uuid4().hex[:8]}", llm.anthropic_base_url)


async def _editor_session(client: LanguageClient, capabilities: types.ClientCapabilities | None = None) -> None:
    """Handlers an editor provides, recording what the server asked; then the LSP handshake."""
    client.texts = {}  # uri -> [version, text]: the editor's copy of each open document
    client.edit_requests = []
    client.message_requests = []
    client.message_answer = None  # the title of the button the "user" clicks; None dismisses
    client.energy_notes = []

    @client.feature("wattson/energyMeasured")
    def energy_measured(params) -> None:
        client.energy_notes.append(params)

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def code_lens_refresh(params) -> None:
        return None

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        client.edit_requests.append(params)
        for change in params.edit.document_changes or []:
            uri, version = change.text_document.uri, change.text_document.version
            current = client.texts.get(uri)
            if current is None or current[0] != version:
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason="version mismatch")
            text = apply_text_edits(current[1], change.edits)
            _change(client, uri, text)
        for uri, edits in (params.edit.changes or {}).items():  # a client without documentChanges
            _change(client, uri, apply_text_edits(client.texts[uri][1], edits))
        return types.ApplyWorkspaceEditResult(applied=True)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def show_message_request(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        client.message_requests.append(params)
        titles = [a.title for a in params.actions or []]
        return types.MessageActionItem(title=client.message_answer) if client.message_answer in titles else None

    await client.initialize_session(types.InitializeParams(
        capabilities=capabilities or client_capabilities("visual-studio-code"),
        root_uri=WS["root"].as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=WS["root"].as_uri(), name="root")]))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=WS["env"]))
async def client(lsp_client: LanguageClient):
    await _editor_session(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=WS["env"]))
async def plain_client(lsp_client: LanguageClient):
    """An editor that announces no workspace-edit capabilities at all (a minimal LSP client)."""
    caps = types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True))
    await _editor_session(lsp_client, caps)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV_WITHOUT_KEYS))
async def client_without_key(lsp_client: LanguageClient):
    await _editor_session(lsp_client)
    yield
    await lsp_client.shutdown_session()


# --- an editor's side: documents, edits, waiting ---------------------------------------------------

def _offset(text: str, position: types.Position) -> int:
    """The string index of an LSP position (UTF-16 code units, the protocol's default)."""
    lines = text.splitlines(keepends=True)
    if position.line >= len(lines):
        return len(text)
    start = sum(len(line) for line in lines[: position.line])
    units = 0
    for i, ch in enumerate(lines[position.line]):
        if units >= position.character or ch in "\r\n":
            return start + i
        units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(lines[position.line])


def apply_text_edits(text: str, edits: Sequence[types.TextEdit]) -> str:
    """Every range refers to the text before any edit: apply from the end backwards."""
    spans = sorted(((_offset(text, e.range.start), _offset(text, e.range.end), e.new_text) for e in edits),
                   key=lambda s: (s[0], s[1]), reverse=True)
    for start, end, new_text in spans:
        text = text[:start] + new_text + text[end:]
    return text


def _open(client: LanguageClient, source: Path, text: str | None = None) -> str:
    uri = source.as_uri()
    text = source.read_text() if text is None else text
    client.texts[uri] = [1, text]
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="cuda-cpp", version=1, text=text)))
    return uri


def _change(client: LanguageClient, uri: str, text: str) -> None:
    version = client.texts[uri][0] + 1
    client.texts[uri] = [version, text]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


def _new_token(client: LanguageClient) -> str:
    token = f"t-{uuid.uuid4().hex[:8]}"
    client.progress_reports[token] = []
    return token


def _optimize(client: LanguageClient, uri: str, version: int, token: str | None = None):
    return asyncio.ensure_future(client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="wattson.optimize", arguments=[{"uri": uri, "version": version}], work_done_token=token)))


async def _wait_until(condition, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _wait_for_progress(client: LanguageClient, token: str, matches, timeout_s: float = 30) -> None:
    """Until a progress report's message matches; fails at once, with the messages, if the job ended."""
    deadline = time.monotonic() + timeout_s
    while not any(matches(m) for m in _progress_messages(client, token)):
        if _ended(client, token) or time.monotonic() > deadline:
            raise AssertionError(f"the awaited stage never came; progress: {_progress_messages(client, token)}")
        await asyncio.sleep(0.05)


def _progress_messages(client: LanguageClient, token: str) -> list[str]:
    return [v.message or "" for v in client.progress_reports.get(token, [])
            if isinstance(v, types.WorkDoneProgressReport)]


def _ended(client: LanguageClient, token: str) -> bool:
    return any(isinstance(v, types.WorkDoneProgressEnd) for v in client.progress_reports.get(token, []))


async def _no_programs_left(timeout_s: float = 5) -> None:
    await _wait_until(lambda: not processes_mentioning(str(WS["load_file"])), "the job's programs to exit", timeout_s)


def _path_of(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


# --- the whole loop: progress, a previewed edit, the report ----------------------------------------

async def test_optimize_applies_the_measured_candidate_through_a_previewed_edit(
        client: LanguageClient, llm: FakeLlmServer, source: Path):
    uri = _open(client, source)
    llm.push(*optimize_replies())
    token = _new_token(client)
    result = await asyncio.wait_for(_optimize(client, uri, 1, token), 60)

    assert result["status"] == "applied", result
    # Progress: begin, reports with the stage and a rising percentage, end.
    values = client.progress_reports[token]
    begin, reports, end = values[0], values[1:-1], values[-1]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.title == OPTIMIZE_TITLE and begin.cancellable
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert all(isinstance(v, types.WorkDoneProgressReport) for v in reports)
    messages = _progress_messages(client, token)
    assert any("profiling the original" in m for m in messages), messages
    assert any(m.startswith("trial 1/1") for m in messages), messages
    percentages = [v.percentage for v in reports if v.percentage is not None]
    assert percentages and percentages == sorted(percentages) and 0 < percentages[-1] < 100

    # The edit: versioned, every change annotated with a label that needs confirmation.
    [request] = client.edit_requests
    [doc_edit] = request.edit.document_changes
    assert doc_edit.text_document.uri == uri and doc_edit.text_document.version == 1
    annotations = request.edit.change_annotations
    assert {e.annotation_id for e in doc_edit.edits} == set(annotations) and len(annotations) == 1
    [annotation] = annotations.values()
    assert annotation.needs_confirmation is True
    label = re.fullmatch(r"Wattson: −(\d+\.\d) % energy \[−(\d+\.\d), −(\d+\.\d)\]", annotation.label)
    assert label, annotation.label
    assert request.label == annotation.label
    # The label carries the saving measured for the stored candidate (work 0.6 of the busy part).
    [report] = client.shown_documents
    assert report.uri == result["report_uri"] and report.uri.endswith(".md")
    job_id = int(_path_of(report.uri).parent.name.split("-")[0])
    with History(WS["db"]) as h:
        [accepted] = [c for c in h.candidates(job_id) if c["status"] == "accepted"]
    assert float(label.group(1)) == pytest.approx((1 - accepted["energy_ratio"]) * 100, abs=0.051)
    assert 10 < float(label.group(1)) < 60

    # Round trip: the editor's text is now the candidate, and the server saw the change.
    assert client.texts[uri] == [2, candidate_text()]
    report_text = _path_of(report.uri).read_text()
    assert "## Energy" in report_text and "Judge's verdict: **accept**" in report_text
    assert llm.pending() == 0
    # The key came from the server's environment (SDK versions send it as x-api-key or a bearer token).
    assert all(FAKE_API_KEY in (r.headers.get("x-api-key", "") + r.headers.get("authorization", ""))
               for r in llm.requests)
    assert not client.message_requests
    # The status bar learns the original's figure, measured on the way.
    assert [n.uri if hasattr(n, "uri") else n["uri"] for n in client.energy_notes] == [uri]
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0)))
    assert hover is None or hover.contents  # the server is still serving the edited document


async def test_a_client_without_document_changes_gets_plain_changes(
        plain_client: LanguageClient, llm: FakeLlmServer, source: Path):
    client = plain_client
    uri = _open(client, source)
    llm.push(*optimize_replies())
    result = await asyncio.wait_for(_optimize(client, uri, 1), 60)
    assert result["status"] == "applied", result
    [request] = client.edit_requests
    assert request.edit.document_changes is None and request.edit.change_annotations is None
    assert list(request.edit.changes) == [uri]
    assert client.texts[uri] == [2, candidate_text()]


# --- the document changed while the job ran -------------------------------------------------------

@pytest.mark.parametrize("answer", [None, "Re-run"])
async def test_a_result_for_an_older_text_is_not_applied_and_a_rerun_is_offered(
        client: LanguageClient, llm: FakeLlmServer, source: Path, answer: str | None):
    uri = _open(client, source)
    llm.push(*optimize_replies())
    client.message_answer = answer
    token = _new_token(client)
    job = _optimize(client, uri, 1, token)
    # While the model works on the first trial, the user edits the file.
    await _wait_for_progress(client, token, lambda m: m.startswith("trial 1/1"))
    edited = "// tuned block size below\n" + client.texts[uri][1]
    _change(client, uri, edited)
    if answer == "Re-run":
        llm.push(*optimize_replies())  # the re-run's conversation
    result = await asyncio.wait_for(job, 60)

    assert result["status"] == "stale", result
    [asked] = client.message_requests
    assert asked.type == types.MessageType.Warning and "changed while Wattson was working" in asked.message
    assert [a.title for a in asked.actions] == ["Re-run"]
    assert _ended(client, token)
    if answer is None:
        await asyncio.sleep(1.0)  # a re-run would start at once: give it the chance to show up
        assert client.edit_requests == [] and client.texts[uri] == [2, edited]
        assert len(llm.requests) == 4  # one conversation: nothing was re-run
        return

    # "Re-run": a new job on the edited text, with progress of its own, ends in an edit for version 2.
    await _wait_until(lambda: client.edit_requests, "the re-run's edit", timeout_s=60)
    [request] = client.edit_requests
    assert request.edit.document_changes[0].text_document.version == 2
    assert client.texts[uri] == [3, candidate_text()]
    rerun_tokens = [t for t in client.progress_reports if t != token and client.progress_reports[t]]
    assert len(rerun_tokens) == 1, client.progress_reports.keys()
    rerun = client.progress_reports[rerun_tokens[0]]
    assert isinstance(rerun[0], types.WorkDoneProgressBegin) and rerun[0].title == OPTIMIZE_TITLE
    await _wait_until(lambda: _ended(client, rerun_tokens[0]), "the re-run's progress to end")
    # The re-run measured the edited text: its original profile is stored under that text.
    with History(WS["db"]) as h:
        stored = h.latest_profile(str(source.resolve()))
    assert stored is not None and stored.content_hash == content_hash(edited)
    assert llm.pending() == 0


# --- one job per document; cancellation -----------------------------------------------------------

async def test_a_second_optimize_is_refused_and_cancel_stops_the_candidates_measurement(
        client: LanguageClient, llm: FakeLlmServer, source: Path):
    uri = _open(client, source)
    llm.push(*optimize_replies())
    token = _new_token(client)
    job = _optimize(client, uri, 1, token)
    await _wait_for_progress(client, token, lambda m: m.startswith("trial 1/1: trial 1 of the program"))

    second = await asyncio.wait_for(_optimize(client, uri, 1), 10)
    assert second["status"] == "failed" and "already running an optimize job" in second["message"]
    assert any("already running an optimize job" in m.message for m in client.messages)

    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(job, 20)
    assert result["status"] == "cancelled", result
    assert _ended(client, token)
    assert client.edit_requests == [] and client.texts[uri][0] == 1
    assert len(llm.requests) == 3  # description, plan, candidate: no judge for a cancelled candidate
    await _no_programs_left()


async def test_cancel_request_while_the_original_is_profiled_then_the_next_job_runs(
        client: LanguageClient, llm: FakeLlmServer, source: Path):
    uri = _open(client, source)
    token = _new_token(client)
    future = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command="wattson.optimize", arguments=[{"uri": uri, "version": 1}], work_done_token=token))
    msg_id = next(k for k, f in client.protocol._request_futures.items() if f is future)
    await _wait_for_progress(client, token, lambda m: m.startswith("trial 1 of the program"))
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception, match="cancel"):  # the client sees its request cancelled
        await asyncio.wait_for(asyncio.wrap_future(future), 20)
    await _wait_until(lambda: _ended(client, token), "the job's progress to end", timeout_s=20)
    await _no_programs_left()
    assert client.edit_requests == [] and llm.requests == []  # stopped before the model was asked
    # The document's slot is free again and the server's agent still measures.
    llm.push(*optimize_replies())
    result = await asyncio.wait_for(_optimize(client, uri, 1, _new_token(client)), 60)
    assert result["status"] == "applied", result


async def test_cancel_while_the_model_is_thinking_ends_the_job_at_once(
        client: LanguageClient, llm: FakeLlmServer, source: Path):
    uri = _open(client, source)
    llm.push(*optimize_replies(delay_s=6))  # the model takes 6 s to answer the first request
    token = _new_token(client)
    job = _optimize(client, uri, 1, token)
    await _wait_until(lambda: llm.requests, "the first model request")
    cancelled_at = time.monotonic()
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(job, 20)
    assert result["status"] == "cancelled", result
    assert time.monotonic() - cancelled_at < 3, "the job waited for the model's reply"


# --- no API key -----------------------------------------------------------------------------------

async def test_a_missing_key_is_one_clear_message_before_any_gpu_work(
        client_without_key: LanguageClient, llm: FakeLlmServer, source: Path):
    client = client_without_key
    uri = _open(client, source)
    token = _new_token(client)
    result = await asyncio.wait_for(_optimize(client, uri, 1, token), 30)

    assert result["status"] == "failed"
    [shown] = client.messages
    assert shown.type in (types.MessageType.Warning, types.MessageType.Error)
    assert "ANTHROPIC_API_KEY is not set" in shown.message and "Traceback" not in shown.message
    assert result["message"] == shown.message and result["report_uri"] is None
    assert client.edit_requests == [] and client.shown_documents == [] and llm.requests == []
    assert _ended(client, token)
    with History(WS["db"]) as h:
        assert h.latest_profile(str(source.resolve())) is None  # nothing was measured
