"""textDocument/hover on a kernel's name (definition or launch): what it measurably costs."""

from __future__ import annotations

from lsprotocol import types

from ..kernel_costs import hover_markdown, kernel_costs
from .documents import document_path, is_cuda_document
from .kernels import kernel_definitions, word_at


def hover_text(ls, uri: str, text: str, line0: int, char0: int) -> str | None:
    word = word_at(text, line0, char0)
    if word is None or word not in {k.name for k in kernel_definitions(text)}:
        return None
    path = document_path(uri)
    costs = kernel_costs(ls.history, str(path.resolve()), text) if path else {}
    cost = costs.get(word)
    if cost is None:
        return f"**`{word}`** — no per-kernel measurement yet. Run **Profile energy** on this file."
    return hover_markdown(cost)


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @server.isolated("hover")
    def on_hover(ls, params: types.HoverParams) -> types.Hover | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if not is_cuda_document(doc.uri, doc.language_id):
            return None
        text = hover_text(ls, doc.uri, doc.source, params.position.line, params.position.character)
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))
