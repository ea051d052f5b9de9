"""textDocument/codeLens above each `__global__`: "⚡ 41 % of energy · 212 W · 3.1 ms" and "Optimize"."""

from __future__ import annotations

from lsprotocol import types

from ..kernel_costs import kernel_costs, lens_title
from .documents import MAX_DOCUMENT_CHARS, document_path, is_cuda_document
from .kernels import kernel_definitions


def code_lenses(ls, uri: str, version: int | None, text: str, optimize_available: bool) -> list[types.CodeLens]:
    if len(text) > MAX_DOCUMENT_CHARS:
        return []
    path = document_path(uri)
    costs = kernel_costs(ls.history, str(path.resolve()), text) if path else {}
    lenses = []
    for k in kernel_definitions(text):
        rng = types.Range(start=types.Position(line=k.line - 1, character=0),
                          end=types.Position(line=k.line - 1, character=0))
        cost = costs.get(k.name)
        if cost is not None:
            lenses.append(types.CodeLens(range=rng, command=types.Command(
                title=lens_title(cost), command="wattson.profile", arguments=[{"uri": uri, "version": version}])))
        if optimize_available:
            lenses.append(types.CodeLens(range=rng, command=types.Command(
                title="Optimize", command="wattson.optimize",
                arguments=[{"uri": uri, "version": version, "kernel": k.name}])))
    return lenses


def register(server) -> None:
    from .commands import optimize_available

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    @server.isolated("codeLens")
    def on_code_lens(ls, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not is_cuda_document(doc.uri, doc.language_id):
            return None
        return code_lenses(ls, doc.uri, doc.version, doc.source, optimize_available())
