"""How a source file is built and run, and which files travel with it to the GPU host.

The project a file belongs to is found in this order:
1. a wattson.toml beside the file or in a parent folder: its folder is the root, its [build] and
   [run] say how to build and run;
2. else a Makefile in the file's folder with a `run` target: `make ARCH=$WATTSON_ARCH`, `make run`
   (the agent sets WATTSON_ARCH to the GPU's architecture, e.g. sm_90);
3. else the file alone: `nvcc -O3 -arch=native -o STEM FILE` (`hipcc` for HIP), run `./STEM`.
`resolve_program` turns that into a ProgramSpec (docs/internals.md), the JSON object the agent builds
and runs in a fresh directory.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import Config, find_config_file, load_config

SOURCE_SUFFIXES = (".cu", ".cuh", ".hip", ".cpp")
HEADER_SUFFIXES = (".cuh", ".h", ".hpp", ".hh")
MAX_SOURCE_BYTES = 1024 * 1024  # the file the user opened; larger ones are generated code, not ours to edit
MAX_TRAVEL_FILE_BYTES = 5 * 1024 * 1024  # larger files stay behind (and the spec says so)
MAX_TRAVEL_TOTAL_BYTES = 32 * 1024 * 1024  # the spec travels as JSON through the agent's stdin
MAX_TRAVEL_FILES = 2000
MAKEFILE_NAMES = ("GNUmakefile", "makefile", "Makefile")

# Compiled outputs never travel: they are rebuilt on the GPU host, for its architecture.
BUILD_OUTPUT_SUFFIXES = frozenset({".o", ".obj", ".a", ".so", ".dylib", ".dll", ".exe", ".lib", ".cubin",
                                   ".fatbin", ".pyc", ".d"})
SKIPPED_DIR_NAMES = frozenset({"__pycache__", "node_modules"})
EXECUTABLE_MAGICS = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")  # ELF, Mach-O 64/32

# Single files that include these headers link the matching library.
LIBRARY_FOR_HEADER = {
    "cublas_v2.h": "-lcublas", "cublas.h": "-lcublas", "cublasLt.h": "-lcublasLt", "cufft.h": "-lcufft",
    "curand.h": "-lcurand", "cusparse.h": "-lcusparse", "cusolverDn.h": "-lcusolver", "nvml.h": "-lnvidia-ml",
}

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^">]+)[">]', re.MULTILINE)
_HIP_MARKERS = re.compile(r"hip/hip_runtime|hipLaunchKernelGGL|hipMalloc\b")
_MAKE_PROGRAM = re.compile(r"^[ \t]*program[ \t]*[:?]?=[ \t]*(\S+)", re.MULTILINE)

ProjectKind = Literal["toml", "makefile", "single-file"]


class ProjectError(Exception):
    """A file that cannot be built or sent as it is, worded with what to do next."""


@dataclass
class Project:
    root: Path  # the folder build and run commands execute in
    source_file: Path  # the file the user opened
    kind: ProjectKind
    config: Config


# --- the file the user opened --------------------------------------------------------------------

def read_source(path: Path) -> str:
    """The text of a CUDA/HIP source file, or a ProjectError saying why it cannot be used."""
    if not path.exists():
        raise ProjectError(f"{path}: no such file; check the path (relative paths start from {Path.cwd()})")
    if path.is_dir():
        raise ProjectError(f"{path} is a folder; give one of its source files ({', '.join(SOURCE_SUFFIXES)})")
    if path.suffix.lower() not in SOURCE_SUFFIXES:
        raise ProjectError(f"{path}: Wattson works on CUDA and HIP sources ({', '.join(SOURCE_SUFFIXES)}); "
                           f"this is a '{path.suffix or 'no suffix'}' file")
    size = path.stat().st_size
    if size == 0:
        raise ProjectError(f"{path} is empty; there is no program to build")
    if size > MAX_SOURCE_BYTES:
        raise ProjectError(f"{path} is {_size(size)}, larger than the {_size(MAX_SOURCE_BYTES)} Wattson "
                           "reads; it looks generated: open the file it is generated from")
    data = path.read_bytes()
    if b"\0" in data:
        raise ProjectError(f"{path} is a binary file, not source code")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProjectError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not text.strip():
        raise ProjectError(f"{path} holds only white space; there is no program to build")
    return text


# --- which project a file belongs to ------------------------------------------------------------

def find_project(path: Path, config: Config | None = None) -> Project:
    """The project `path` belongs to, by the order in this module's docstring.

    `config` carries editor settings; when it came from a different wattson.toml than the one that
    governs `path` (or from none while one exists), that toml decides how the file is built and run.
    """
    read_source(path)
    return _project_of(path.resolve(), config)


def _project_of(source: Path, config: Config | None) -> Project:
    toml = find_config_file(source.parent)
    if toml is not None:
        file_config = config if config is not None and config.source_path == toml else load_config(toml)
        return Project(root=toml.parent, source_file=source, kind="toml", config=file_config)
    config = config if config is not None else Config()
    if makefile_with_run_target(source.parent) is not None:
        return Project(root=source.parent, source_file=source, kind="makefile", config=config)
    return Project(root=source.parent, source_file=source, kind="single-file", config=config)


def makefile_with_run_target(folder: Path) -> Path | None:
    """The folder's Makefile if it (or a file it includes) has a `run` target."""
    for name in MAKEFILE_NAMES:
        makefile = folder / name
        if makefile.is_file():
            return makefile if _has_run_target(makefile, depth=0) else None
    return None


def _has_run_target(makefile: Path, depth: int) -> bool:
    try:
        text = makefile.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if not line or line[0] in "\t#":
            continue
        words = line.split()
        if words[0] in ("include", "-include", "sinclude") and depth < 3:
            if any(_has_run_target(makefile.parent / w, depth + 1) for w in words[1:] if "$" not in w):
                return True
            continue
        head, colon, rest = line.partition(":")
        if colon and "=" not in head and not rest.startswith("=") and "run" in head.split():
            return True
    return False


# --- build and run commands ----------------------------------------------------------------------

def build_command(project: Project, source_text: str) -> str | None:
    if project.kind == "toml" and project.config.build.command is not None:
        return project.config.build.command or None  # "" means: no build step
    if project.kind == "makefile":
        return "make ARCH=$WATTSON_ARCH"
    return _compile_command(project, source_text)


def run_command(project: Project, args: list[str] | None) -> str:
    """The run command with its arguments: `args` from the command line replace the toml's."""
    cfg = project.config
    chosen = list(args) if args is not None else list(cfg.run.args if project.kind == "toml" else ())
    if project.kind == "toml" and cfg.run.command:
        base = cfg.run.command
    elif project.kind == "makefile":
        if args is None:
            return "make run"
        base = _makefile_program(project)
    else:
        base = "./" + shlex.quote(_output_name(project))
    return " ".join([base, *map(shlex.quote, chosen)]) if chosen else base


def _compile_command(project: Project, source_text: str) -> str:
    source = project.source_file
    if source.suffix.lower() in HEADER_SUFFIXES:
        raise ProjectError(f"{source} is a header: it cannot be built on its own. Open the .cu file that "
                           "includes it, or add a wattson.toml with [build] command and [run] command")
    rel = shlex.quote(os.path.relpath(source, project.root))
    out = shlex.quote(_output_name(project))
    if _is_hip(source, source_text):
        return f"hipcc -O3 -o {out} {rel}"
    language = " -x cu" if source.suffix.lower() == ".cpp" else ""
    libs = sorted({lib for header, lib in LIBRARY_FOR_HEADER.items()
                   if re.search(rf'#\s*include\s*[<"]{re.escape(header)}[">]', source_text)})
    return " ".join([f"nvcc -O3 -arch=native{language} -o {out} {rel}", *libs])


def _is_hip(source: Path, text: str) -> bool:
    suffix = source.suffix.lower()
    return suffix == ".hip" or (suffix == ".cpp" and _HIP_MARKERS.search(text) is not None)


def _output_name(project: Project) -> str:
    """The executable's name: `-o NAME` of a configured build command, else the source's stem."""
    command = project.config.build.command if project.kind == "toml" else None
    if command:
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        for flag, value in zip(words, words[1:], strict=False):
            if flag == "-o":
                return value
    return project.source_file.stem


def _makefile_program(project: Project) -> str:
    makefile = makefile_with_run_target(project.root)
    text = makefile.read_text(errors="replace") if makefile else ""
    match = _MAKE_PROGRAM.search(text)
    if match is None or "$" in match.group(1):
        raise ProjectError(f"{project.root}: the Makefile's run target fixes the program's arguments, and "
                           "Wattson cannot tell which executable it runs. Add a wattson.toml there with "
                           '[run] command = "./PROGRAM" and args = [...] to pass your own')
    return "./" + shlex.quote(match.group(1))


# --- files that travel ---------------------------------------------------------------------------

def local_includes(source: Path) -> list[Path]:
    """Every `#include "…"` file reachable from `source` that exists next to the file that names it.

    Angle-bracket includes are system or -I headers and stay on the GPU host; quoted includes that
    do not exist here are left for the compiler to find (or report).
    """
    seen: set[Path] = {source.resolve()}
    order: list[Path] = []
    pending = [source.resolve()]
    while pending:
        current = pending.pop()
        try:
            text = current.read_text(errors="replace")
        except OSError:
            continue
        for bracket, name in _INCLUDE.findall(text):
            if bracket != '"' or Path(name).is_absolute():
                continue
            candidate = (current.parent / name).resolve()
            if candidate in seen or not candidate.is_file():
                continue
            seen.add(candidate)
            order.append(candidate)
            pending.append(candidate)
    return order


def project_files(project: Project) -> list[Path]:
    """The files that travel: the whole root for toml/Makefile projects, else the file and its headers.

    Sources under the root that include headers outside it bring those headers too.
    """
    if project.kind == "single-file":
        return [project.source_file, *local_includes(project.source_file)]
    found = list(_walk(project.root))
    if project.source_file not in found:
        found.append(project.source_file)
    inside = set(found)
    for path in list(found):
        if path.suffix.lower() in SOURCE_SUFFIXES + HEADER_SUFFIXES or path.suffix == ".c":
            for header in local_includes(path):
                if header not in inside:
                    inside.add(header)
                    found.append(header)
    return found


def _walk(root: Path):
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        # Hidden folders (.git, .venv, .vscode), caches and CMake build trees are not the program.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIR_NAMES
                         and not (here / d / "CMakeCache.txt").exists())
        for name in sorted(names):
            path = here / name
            if path.is_file() and not name.startswith("."):
                yield path


def pack_files(root: Path, paths: list[Path], source: Path) -> tuple[Path, dict[str, dict], dict[str, str]]:
    """(files root, ProgramSpec `files`, skipped files with the reason) for `paths`.

    The files root is `root`, or the folder above it that also holds headers included from outside.
    """
    base = Path(os.path.commonpath([root, *(p.parent for p in paths)]))
    skipped: dict[str, str] = {}
    kept: list[tuple[int, str, Path]] = []
    for path in paths:
        rel = path.relative_to(base).as_posix()
        size = path.stat().st_size
        reason = None if path == source else _reason_to_skip(path, size)
        if reason:
            skipped[rel] = reason
        else:
            kept.append((size, rel, path))
    # Limits first, from sizes alone: a wattson.toml at the top of a big tree fails fast.
    total = sum(size for size, _, _ in kept)
    if total > MAX_TRAVEL_TOTAL_BYTES or len(kept) > MAX_TRAVEL_FILES:
        largest = ", ".join(f"{rel} ({_size(size)})" for size, rel, _ in sorted(kept, reverse=True)[:3])
        raise ProjectError(
            f"{base}: {len(kept)} files, {_size(total)} in all, would be sent to the GPU host (limits: "
            f"{MAX_TRAVEL_FILES} files, {_size(MAX_TRAVEL_TOTAL_BYTES)}); largest: {largest}. Move data the "
            "program does not need out of that folder, or put a wattson.toml in the program's own folder")
    files = {rel: _encode(path.read_bytes()) for _, rel, path in kept}
    return base, files, skipped


def _reason_to_skip(path: Path, size: int) -> str | None:
    if path.suffix.lower() in BUILD_OUTPUT_SUFFIXES:
        return "build output"
    if size > MAX_TRAVEL_FILE_BYTES:
        return f"larger than {_size(MAX_TRAVEL_FILE_BYTES)}"
    with path.open("rb") as f:
        if f.read(4).startswith(EXECUTABLE_MAGICS):
            return "executable (rebuilt on the GPU host)"
    return None


def _encode(data: bytes) -> dict:
    if b"\0" not in data:
        try:
            return {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"base64": base64.b64encode(data).decode("ascii")}


# --- the ProgramSpec -----------------------------------------------------------------------------

def resolve_program(path: Path, args: list[str] | None, config: Config | None = None) -> dict:
    """The ProgramSpec for `path`: files, build and run commands, limits and environment.

    `args` from the command line replace the wattson.toml's [run] args; None keeps them.
    """
    text = read_source(path)
    project = _project_of(path.resolve(), config)
    build = build_command(project, text)
    run = run_command(project, args)
    base, files, skipped = pack_files(project.root, project_files(project), project.source_file)
    workdir = os.path.relpath(project.root, base)
    cfg = project.config
    spec = {
        "name": project.source_file.stem if project.kind == "single-file" else project.root.name,
        "files": files,
        "build": build,
        "run": run,
        "workdir": Path(workdir).as_posix(),
        "build_timeout_s": cfg.build.timeout_s,
        "run_timeout_s": cfg.run.timeout_s,
        "env": dict(cfg.run.env),
        "source_file": project.source_file.relative_to(base).as_posix(),
        "skipped_files": skipped,
    }
    if cfg.verify.output_files:  # relative to the run folder (the project root); each run returns them
        spec["output_files"] = list(cfg.verify.output_files)
    return spec


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"
