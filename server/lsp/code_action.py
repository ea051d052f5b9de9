"""textDocument/codeAction: "Optimize for energy", "Optimize kernel `k` for energy", "Profile energy".

Returned at once with commands; the work happens only when the user picks one.
"""

from __future__ import annotations

from lsprotocol import types

from .documents import is_cuda_document
from .kernels import kernel_at_line


def code_actions(uri: str, version: int | None, text: str, line0: int,
                 optimize_available: bool) -> list[types.CodeAction]:
    target = {"uri": uri, "version": version}
    actions = []
    if optimize_available:
        actions.append(types.CodeAction(
            title="Optimize for energy", kind=types.CodeActionKind.RefactorRewrite,
            command=types.Command(title="Optimize for energy", command="wattson.optimize", arguments=[target])))
        kernel = kernel_at_line(text, line0 + 1)
        if kernel is not None:
            actions.append(types.CodeAction(
                title=f"Optimize kernel `{kernel.name}` for energy", kind=types.CodeActionKind.RefactorRewrite,
                command=types.Command(title=f"Optimize kernel {kernel.name} for energy", command="wattson.optimize",
                                      arguments=[{**target, "kernel": kernel.name}])))
    actions.append(types.CodeAction(
        title="Profile energy", kind=types.CodeActionKind.Source,
        command=types.Command(title="Profile energy", command="wattson.profile", arguments=[target])))
    return actions


def register(server) -> None:
    from .commands import optimize_available

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite, types.CodeActionKind.Source]))
    @server.isolated("codeAction")
    def on_code_action(ls, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not is_cuda_document(doc.uri, doc.language_id):
            return None
        return code_actions(doc.uri, doc.version, doc.source, params.range.start.line, optimize_available())
