"""Reading code out of a model's reply: fenced blocks naming their file, several files, replies
without fences, abbreviated files, and replies cut off before `END OF FILES`.

The reply shape is the contract in docs/llm.md ("What a candidate reply looks like"): a `## Changes`
section, each changed file complete in a block opened with ```<language> file=<path>, then a line
`END OF FILES`. Models do not always keep to it, so what can be recovered safely is recovered (a
single unnamed block, a file named without its folder, no fences at all), and what cannot is
reported in words the model can act on (`ExtractedReply.problem`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

END_MARKER = "END OF FILES"

_OPEN_FENCE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_END_LINE = re.compile(r"^\s*\**\s*END OF FILES\s*\**\s*$")
_FILE_ATTR = re.compile(r"""\bfile\s*=\s*(?:"([^"]+)"|'([^']+)'|(\S+))""")
_CHANGES_HEADING = re.compile(r"^\s*#{1,6}\s*Changes\b", re.IGNORECASE)
_HEADING = re.compile(r"^\s*#{1,6}\s+\S")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# Lines that say "the rest is as before" instead of being the rest.
_ABBREVIATION = re.compile(
    r"^\s*(?://|/\*|#)?\s*(?:\.\.\.|…)\s*"
    r"(?:\(?\s*(?:rest|remainder|unchanged|same|existing|other|as before)\b.*)?$"
    r"|\b(?:rest|remainder) of (?:the )?(?:file|code|program|function|kernel)\b.*"
    r"\b(?:unchanged|as before|omitted|same)\b|\b(?:existing|unchanged) code\b.*(?:here|omitted|\.\.\.|…)",
    re.IGNORECASE,
)
# Where code starts in a reply that has no fences.
_CODE_START = re.compile(
    r"^\s*(?:#\s*(?:include|define|pragma|if|ifdef|ifndef)\b|//|/\*|__global__|__device__|template\s*<|"
    r"static\b|struct\b|class\b|extern\b|using\b|namespace\b|typedef\b|(?:int|void)\s+\w+\s*\()"
)
_CODE_LANGUAGES = frozenset({"", "cuda", "cu", "cpp", "c++", "cxx", "c", "hip", "cc", "h", "hpp", "cuh"})


@dataclass
class CodeBlock:
    info: str  # the opening fence's text after the backticks, e.g. "cuda file=src/relax.cu"
    language: str  # first word of info, lower case ("" when none)
    path: str | None  # from file=..., normalised; None when the block names no file
    text: str  # the block's content, ending with a newline
    closed: bool  # False when the reply ended inside the block (cut off)


@dataclass
class ExtractedReply:
    files: dict[str, str] = field(default_factory=dict)  # editable path -> the whole new text
    changes: list[str] = field(default_factory=list)  # the `## Changes` lines, bullets stripped
    complete: bool = False  # every block closed and END OF FILES present
    ignored: dict[str, str] = field(default_factory=dict)  # path -> why it was not taken
    notes: list[str] = field(default_factory=list)  # how the code was found, when not by the contract
    problem: str | None = None  # why the reply gives no usable file, worded for the model

    @property
    def ok(self) -> bool:
        return self.problem is None and bool(self.files)


def parse_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block, in order. A closing fence is the same character, at least as long, alone
    on its line; so a block opened with four backticks may contain lines of three."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _OPEN_FENCE.match(lines[i].rstrip("\r\n"))
        if match is None:
            i += 1
            continue
        fence, info = match.group("fence"), match.group("info").strip()
        closer = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            if closer.match(lines[i].rstrip("\r\n")):
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        content = "".join(body)
        if content and not content.endswith("\n"):
            content += "\n"
        language = info.split()[0].lower() if info.split() and "=" not in info.split()[0] else ""
        blocks.append(
            CodeBlock(info=info, language=language, path=_file_attr(info), text=content, closed=closed)
        )
    return blocks


def _file_attr(info: str) -> str | None:
    match = _FILE_ATTR.search(info)
    if match is None:
        return None
    raw = next(g for g in match.groups() if g)
    return normalise_path(raw.strip("`"))


def normalise_path(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return str(PurePosixPath(path)) if path else path


def has_end_marker(text: str) -> bool:
    """END OF FILES on a line of its own, outside every code block."""
    in_block: str | None = None
    for line in text.splitlines():
        bare = line.rstrip("\r\n")
        if in_block is None:
            match = _OPEN_FENCE.match(bare)
            if match:
                in_block = match.group("fence")
            elif _END_LINE.match(bare):
                return True
        elif re.match(rf"^[ \t]{{0,3}}{re.escape(in_block[0])}{{{len(in_block)},}}[ \t]*$", bare):
            in_block = None
    return False


def is_cut_off(text: str) -> bool:
    """The reply stopped early: a code block left open, or no END OF FILES line."""
    return any(not b.closed for b in parse_blocks(text)) or not has_end_marker(text)


def changes_section(text: str) -> list[str]:
    """The lines under `## Changes`, up to the next heading or code block, bullets stripped."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if _CHANGES_HEADING.match(line):
            inside = True
            continue
        if not inside:
            continue
        if _HEADING.match(line) or _OPEN_FENCE.match(line) or _END_LINE.match(line):
            break
        stripped = line.strip()
        if not stripped:
            continue
        if _BULLET.match(line) or not out:
            out.append(_BULLET.sub("", line).strip())
        else:
            out[-1] += " " + stripped  # a wrapped bullet continues on the next line
    return out


def abbreviated_line(code: str) -> str | None:
    """The first line that stands for omitted code ("// ... rest unchanged"), or None."""
    for line in code.splitlines():
        stripped = line.strip()
        if stripped and _ABBREVIATION.search(stripped) and not _looks_like_code_with_dots(stripped):
            return stripped
    return None


def _looks_like_code_with_dots(line: str) -> bool:
    # Variadic parameters and printf("...") are code, not abbreviations.
    return "(" in line and ("..." in line.split("(", 1)[1]) and not line.lstrip().startswith(("//", "/*"))


def extract_reply(text: str, *, source_file: str, editable: list[str] | None = None) -> ExtractedReply:
    """The files a reply gives, for the files that may change (default: source_file only)."""
    editable_paths = [normalise_path(p) for p in (editable or [source_file])]
    source_file = normalise_path(source_file)
    result = ExtractedReply(changes=changes_section(text))
    blocks = parse_blocks(text)
    result.complete = all(b.closed for b in blocks) and has_end_marker(text)
    if not blocks:
        _take_unfenced(text, source_file, result)
    else:
        _take_blocks(blocks, source_file, editable_paths, result)
    if result.problem is None and not result.files:
        result.problem = (
            f"Your reply contains no complete `{source_file}`. Give the whole file in one block "
            f"opened with ```cuda file={source_file}, then a line containing only {END_MARKER}."
        )
    for path, code in list(result.files.items()):
        cut = abbreviated_line(code)
        if cut is not None:
            del result.files[path]
            result.problem = (
                f"Your `{path}` is abbreviated (the line `{cut[:80]}` stands for code that is "
                "left out). Give every changed file complete: it replaces the file as it is."
            )
    return result


def _take_blocks(
    blocks: list[CodeBlock], source_file: str, editable: list[str], result: ExtractedReply
) -> None:
    basenames = {PurePosixPath(p).name: p for p in editable}
    unnamed: list[CodeBlock] = []
    for block in blocks:
        if block.path is None:
            if block.language in _CODE_LANGUAGES:
                unnamed.append(block)
            continue
        path = block.path
        if path not in editable and "/" not in path and path in basenames:
            result.notes.append(f"the block for `{path}` was taken as `{basenames[path]}`")
            path = basenames[path]
        if path not in editable:
            result.ignored[path] = "only " + ", ".join(f"`{p}`" for p in editable) + " may change"
            continue
        if not block.closed:
            result.ignored[path] = "its block was cut off"
            continue
        result.files[path] = block.text  # a later block for the same file wins: models restate fixes
    if not result.files and unnamed:
        # One plain block is the file; of several, the largest that looks like a whole program.
        closed = [b for b in unnamed if b.closed]
        whole = [b for b in closed if _looks_like_program(b.text)]
        pick = max(whole or closed, key=lambda b: len(b.text), default=None)
        if pick is not None and (len(closed) == 1 or whole):
            result.files[source_file] = pick.text
            result.notes.append(
                "the code block named no file: it was taken as "
                f"`{source_file}`" + (f" (the largest of {len(closed)} blocks)" if len(closed) > 1 else "")
            )
        elif unnamed and not closed:
            result.problem = (
                f"Your reply was cut off inside the code block for `{source_file}`. Give the "
                f"whole file again, then a line containing only {END_MARKER}."
            )
    if not result.files and result.ignored and result.problem is None:
        named = ", ".join(f"`{p}` ({why})" for p, why in result.ignored.items())
        result.problem = (
            f"Your reply changes {named}, but no complete `{source_file}`. Change only the "
            f"editable files and give each one whole, in a block opened with "
            f"```cuda file={source_file}."
        )


def _take_unfenced(text: str, source_file: str, result: ExtractedReply) -> None:
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return
    body = [line for line in lines[start:] if not _END_LINE.match(line.rstrip("\r\n"))]
    code = "".join(body).rstrip() + "\n"
    if not _looks_like_program(code):
        return
    result.files[source_file] = code
    result.notes.append(
        f"the reply had no code fences: the code from line {start + 1} on was taken as `{source_file}`"
    )


def _looks_like_program(code: str) -> bool:
    return bool(re.search(r"#\s*include\b|__global__|\bmain\s*\(", code))


def join_continuation(partial: str, continuation: str) -> str:
    """A cut-off reply and the model's continuation, as one reply.

    Models often reopen the code block they were in, or repeat the last lines before going on:
    both are undone, so the file reads as if it had been written in one piece."""
    open_block = next((b for b in reversed(parse_blocks(partial)) if not b.closed), None)
    lines = continuation.splitlines(keepends=True)
    if open_block is not None:
        # Skip a preamble ("Continuing:") and a reopened fence before the code goes on.
        for i, line in enumerate(lines[:3]):
            if _OPEN_FENCE.match(line.rstrip("\r\n")) and (
                i == 0 or not lines[0].strip() or not _CODE_START.match(lines[0])
            ):
                lines = lines[i + 1 :]
                break
    continuation = "".join(lines)
    if partial.endswith("\n"):
        continuation = _drop_repeated_lines(partial, continuation)
    return partial + continuation


def _drop_repeated_lines(partial: str, continuation: str, max_lines: int = 40) -> str:
    """Remove from the continuation's start the lines that repeat the partial reply's end."""
    tail = partial.splitlines(keepends=True)[-max_lines:]
    head = continuation.splitlines(keepends=True)
    for k in range(min(len(tail), len(head)), 0, -1):
        if [line.rstrip() for line in tail[-k:]] == [line.rstrip() for line in head[:k]]:
            if sum(len(line.strip()) for line in head[:k]) >= 8:  # a lone brace can repeat by chance
                return "".join(head[k:])
    return continuation
