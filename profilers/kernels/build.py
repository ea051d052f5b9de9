"""Builds the CUPTI kernel tracer (inject.c) on the GPU host, with that host's own compiler and CUPTI.

The library is cached by (source hash, CUPTI version, CUPTI library path, compiler), so a host
builds it once per toolkit. `kernel_trace_env` gives the environment that loads it into a program.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

TRACE_ENV = "WATTSON_KERNEL_TRACE"
COPIES_ENV = "WATTSON_KERNEL_TRACE_COPIES"  # "1": memcpy and memset records too
INJECTION_ENV = "CUDA_INJECTION64_PATH"
SOURCE = Path(__file__).with_name("inject.c")
_BUILD_TIMEOUT_S = 120.0
_CUPTI_HINT = (
    "install the CUDA toolkit's CUPTI (it ships with the toolkit: extras/CUPTI or include/cupti.h "
    "and lib64/libcupti.so; on Debian/Ubuntu also the package libcupti-dev) or set CUDA_HOME to the "
    "toolkit, or run without --kernels"
)


class KernelTraceUnavailable(RuntimeError):
    """Per-kernel tracing cannot run here; the message says why and what to do next."""


@dataclass(frozen=True)
class CuptiLocation:
    """Where this host's CUPTI is: the directory holding cupti.h and the libcupti file to link."""

    include_dir: Path
    library: Path
    api_version: int  # CUPTI_API_VERSION from the header, e.g. 130001 for CUDA 13.0 Update 1
    cuda_include_dirs: tuple[Path, ...] = ()  # where cuda.h is, when not beside cupti.h (extras/CUPTI)

    def describe(self) -> str:
        return f"CUPTI API {self.api_version} ({self.library})"


def check_vendor_supported(vendor: str) -> None:
    """Per-kernel data needs CUPTI (NVIDIA); on AMD it is not available yet."""
    if vendor == "amd":
        raise KernelTraceUnavailable(
            "per-kernel energy is not available on AMD/HIP GPUs yet (it needs a rocprofiler-sdk "
            "tracer); run without --kernels to measure the whole program"
        )


def toolkit_roots() -> Iterator[Path]:
    """Candidate CUDA toolkit roots, most specific first: the user's setting, nvcc's, the usual."""
    seen: set[Path] = set()

    def fresh(paths: Iterable[Path]) -> Iterator[Path]:
        for path in paths:
            if path not in seen and path.is_dir():
                seen.add(path)
                yield path

    variables = ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")
    yield from fresh(Path(os.environ[v]) for v in variables if os.environ.get(v))
    nvcc = shutil.which("nvcc")
    if nvcc:
        yield from fresh([Path(nvcc).resolve().parent.parent])
    yield from fresh([Path("/usr/local/cuda")])
    if nvcc:  # nvcc may be a wrapper script outside the toolkit: ask it where it lives
        here = _nvcc_bin_dir(nvcc)
        yield from fresh([here.parent] if here else [])
    versioned = sorted((Path(p) for p in glob.glob("/usr/local/cuda-*")), key=_version_key, reverse=True)
    yield from fresh(versioned)
    yield from fresh([Path("/opt/cuda"), Path("/usr")])
    # Python wheels (nvidia-cuda-cupti-cu12, the cu13 layout): CUPTI without a full toolkit.
    for site in sys.path:
        yield from fresh(Path(p) for p in sorted(glob.glob(os.path.join(site, "nvidia", "cu*"))))


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.name))


def _nvcc_bin_dir(nvcc: str) -> Path | None:
    """nvcc's real bin directory, as nvcc itself reports it (`_HERE_` in a dry run)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.cu"
        probe.write_text("")
        try:
            out = subprocess.run([nvcc, "-dryrun", "-c", str(probe), "-o", str(Path(tmp) / "p.o")],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
    m = re.search(r"^#\$ _HERE_=(.+)$", out.stdout + out.stderr, re.MULTILINE)
    return Path(m.group(1).strip()) if m else None


def _include_dirs(root: Path) -> list[Path]:
    return [root / "extras" / "CUPTI" / "include", root / "include",
            *sorted(Path(p) for p in glob.glob(str(root / "targets" / "*" / "include")))]


def _library_dirs(root: Path) -> list[Path]:
    dirs = [root / "extras" / "CUPTI" / "lib64", root / "extras" / "CUPTI" / "lib", root / "lib64",
            root / "lib", *sorted(Path(p) for p in glob.glob(str(root / "targets" / "*" / "lib")))]
    if root == Path("/usr"):
        dirs += [Path(p) for p in glob.glob("/usr/lib/*-linux-gnu")]
    return dirs


def _find_library(directory: Path) -> Path | None:
    plain = directory / "libcupti.so"
    if plain.exists():
        return plain
    versioned = sorted(glob.glob(str(directory / "libcupti.so.*")), key=lambda p: _version_key(Path(p)))
    return Path(versioned[-1]) if versioned else None


def _api_version(include_dir: Path) -> int:
    for header in ("cupti_version.h", "cupti.h"):
        path = include_dir / header
        if path.exists():
            m = re.search(r"#define\s+CUPTI_API_VERSION\s+(\d+)", path.read_text(errors="replace"))
            if m:
                return int(m.group(1))
    return 0


def locate_cupti() -> CuptiLocation:
    """This host's CUPTI: CUDA_HOME, nvcc's toolkit, /usr/local/cuda*, distro and wheel layouts."""
    searched: list[str] = []
    for root in toolkit_roots():
        searched.append(str(root))
        include = next((d for d in _include_dirs(root) if (d / "cupti.h").exists()), None)
        if include is None:
            continue
        library = next((lib for d in _library_dirs(root) if (lib := _find_library(d))), None)
        if library is None:
            continue
        cuda = tuple(d for d in _include_dirs(root) if d != include and (d / "cuda.h").exists())
        return CuptiLocation(include_dir=include, library=library, api_version=_api_version(include),
                             cuda_include_dirs=cuda)
    where = ", ".join(searched) if searched else "no CUDA toolkit found"
    raise KernelTraceUnavailable(f"CUPTI not found (searched {where}): {_CUPTI_HINT}")


def _c_compiler() -> list[str]:
    """A C compiler command: $CC, gcc, cc, clang, else nvcc (which hands C to its host compiler)."""
    if os.environ.get("CC") and shutil.which(os.environ["CC"].split()[0]):
        return os.environ["CC"].split()
    for name in ("gcc", "cc", "clang"):
        if shutil.which(name):
            return [name]
    if shutil.which("nvcc"):
        return ["nvcc"]
    raise KernelTraceUnavailable(
        "no C compiler found to build the kernel tracer: install gcc (or set CC), or run without --kernels"
    )


def _build_command(compiler: list[str], cupti: CuptiLocation, output: str, source: Path = SOURCE) -> list[str]:
    rpath = str(cupti.library.parent)  # the program finds libcupti without LD_LIBRARY_PATH
    if Path(compiler[0]).name == "nvcc":
        flags = ["-Xcompiler", "-fPIC", "-shared", "-O2", "-Xlinker", f"-rpath={rpath}"]
    else:
        flags = ["-std=gnu11", "-fPIC", "-shared", "-O2", f"-Wl,-rpath,{rpath}"]
    includes = [arg for d in (cupti.include_dir, *cupti.cuda_include_dirs) for arg in ("-I", str(d))]
    return [*compiler, *flags, *includes, str(source), str(cupti.library), "-lpthread", "-o", output]


def _default_cache_dir() -> Path:
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("wattson")) / "kernel-tracer"
    except ImportError:
        return Path.home() / ".cache" / "wattson" / "kernel-tracer"


def compile_tracer(source: Path, output: Path, *, cupti: CuptiLocation | None = None,
                   compiler: list[str] | None = None) -> None:
    """Compile a tracer source (inject.c, or a variant of it) into a shared library at `output`."""
    cupti = cupti or locate_cupti()
    command = _build_command(compiler or _c_compiler(), cupti, str(output), source)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelTraceUnavailable(f"building the kernel tracer failed to start ({e}); "
                                     "check the C compiler, or run without --kernels") from e
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-1500:]
        raise KernelTraceUnavailable(
            f"building the kernel tracer against {cupti.describe()} failed:\n{tail}\n"
            "check that cupti.h matches libcupti (same CUDA toolkit), or run without --kernels"
        )


def build_injection_library(cache_dir: Path | None = None) -> Path:
    """The tracer's shared library for this host: built once, then taken from the cache."""
    cupti = locate_cupti()
    compiler = _c_compiler()
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([
        source, str(cupti.api_version).encode(), str(cupti.library.resolve()).encode(),
        " ".join(compiler).encode(),
    ])).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    target = cache / f"libwattson_inject-{key}.so"
    if target.exists():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KernelTraceUnavailable(f"cannot create the tracer cache {cache}: {e}; "
                                     "set a writable cache directory or run without --kernels") from e
    # Built under a temporary name and renamed, so concurrent builds never load a half-written file.
    fd, tmp_name = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=cache)
    os.close(fd)
    try:
        compile_tracer(SOURCE, Path(tmp_name), cupti=cupti, compiler=compiler)
    except KernelTraceUnavailable:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    os.replace(tmp_name, target)
    return target


def kernel_trace_env(trace_path: Path | str, lib_path: Path | str, copies: bool = False) -> dict[str, str]:
    """Environment variables that load the tracer into a CUDA program and name its trace file;
    `copies` also traces memcpy and memset (off by default: it costs wall time in copy-heavy loops)."""
    env = {INJECTION_ENV: str(Path(lib_path).resolve()), TRACE_ENV: str(Path(trace_path).resolve())}
    if copies:
        env[COPIES_ENV] = "1"
    return env
