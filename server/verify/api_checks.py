"""Anti-hack checks on what a candidate calls: precision, device settings, escapes from the sandbox.

Each rule counts a pattern in the original and in the candidate (comments and, where names matter,
string literals blanked) and speaks up only about what the candidate adds: a program that already
read a file or set a device limit before the LLM touched it is the user's business.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .cuda_source import CudaSource, tidy
from .findings import Finding, Severity

DOUBLE_TYPES = {"double", "double2", "double3", "double4", "cuDoubleComplex", "hipDoubleComplex"}
FLOAT_TYPES = {"float", "float2", "float3", "float4", "cuFloatComplex", "cuComplex", "hipFloatComplex"}
LOW_TYPES = {
    "half", "__half", "half2", "__half2", "_Float16", "__fp16",
    "__nv_bfloat16", "__nv_bfloat162", "nv_bfloat16", "nv_bfloat162", "__hip_bfloat16", "hip_bfloat16",
    "__nv_fp8_e4m3", "__nv_fp8_e5m2", "__nv_fp8x2_e4m3", "__nv_fp8x2_e5m2",
    "__nv_fp8x4_e4m3", "__nv_fp8x4_e5m2",
}  # fmt: skip
_FAST_INTRINSICS_RE = re.compile(
    r"\b(?:__(?:expf|exp10f|logf|log2f|log10f|sinf|cosf|tanf|sincosf|powf|fdividef)"
    r"|__double2float_r[nzud]|__double2half\w*|__float2half\w*|__float2bfloat16\w*|__double2bfloat16\w*)\b"
)
_FAST_FLAGS_RE = re.compile(
    r"(?:^|\s)(?:-{1,2}use_fast_math|-{1,2}ftz=true|-{1,2}prec-div=false|-{1,2}prec-sqrt=false|-ffast-math"
    r"|-Ofast)(?=\s|$)"
)


@dataclass(frozen=True)
class Rule:
    check: str
    severity: Severity
    pattern: re.Pattern[str]
    what: str  # words for the message
    in_strings: bool = False  # match against code with string literals kept


def _call(*names: str) -> re.Pattern[str]:
    """A call of one of names, or a macro standing in for one (`#define RUN system`)."""
    alternatives = "|".join(names)
    return re.compile(
        rf"\b(?:std::)?(?:{alternatives})\s*\(|#\s*define\s+\w+(?:\([^)]*\))?\s+(?:std::)?(?:{alternatives})\b"
    )


_FILE_IO = "opens or changes files the original does not (results must be computed on every run, not cached)"

RULES: list[Rule] = [
    Rule("device-limits", "fail", _call("cudaDeviceSetLimit", "hipDeviceSetLimit"),
         "changes a device limit (cudaDeviceSetLimit)"),
    Rule("device-limits", "fail", re.compile(r"\bnvmlDevice(?:Set|Reset)\w*"),
         "changes GPU clocks or power settings through NVML", in_strings=True),
    Rule("device-limits", "fail", re.compile(r"\b(?:rsmi_dev_\w*_set\w*|amdsmi_set_\w*)"),
         "changes GPU clocks or power settings through ROCm SMI", in_strings=True),
    Rule("device-limits", "fail", re.compile(r"\b(?:nvidia-smi|rocm-smi|amd-smi)\b"),
         "runs a GPU management tool (nvidia-smi / rocm-smi)", in_strings=True),
    Rule("device-limits", "review",
         _call("cudaSetDeviceFlags", "hipSetDeviceFlags", "cudaSetDevice", "hipSetDevice"),
         "changes which GPU runs the work, or how the host waits for it (cudaSetDevice*)"),
    Rule("escape", "fail", _call("system", "popen", "fork", "vfork", "execl", "execlp", "execle", "execv",
                                 "execvp", "execve", "execvpe", "posix_spawn", "posix_spawnp", "ptrace",
                                 "kill", "syscall", "setuid", "chroot", "mount", "dlopen", "dlsym"),
         "starts processes or loads code (system, popen, fork/exec, dlopen)"),
    Rule("escape", "fail", _call("socket", "connect", "getaddrinfo", "gethostbyname", "curl_easy_init",
                                 "curl_easy_perform"),
         "opens network connections"),
    Rule("escape", "fail", re.compile(r"/bin/(?:ba)?sh\b|\bhttps?://|\b(?:curl|wget|nc|ssh|scp)\s"),
         "names a shell, a URL or a network tool in a string", in_strings=True),
    Rule("file-io", "fail", _call("fopen", "freopen", "open", "openat", "creat", "mkfifo", "mkstemp",
                                  "tmpfile", "unlink", "rename", "mkdir", "opendir", "fdopen"),
         _FILE_IO),
    Rule("file-io", "fail", re.compile(r"\b(?:std::)?[io]?fstream\b|\bfilesystem::"),
         _FILE_IO),
    Rule("host-threads", "review", re.compile(r"\b(?:std::thread|std::jthread|std::async|pthread_create"
                                              r"|omp_set_num_threads|tbb::)\b|#\s*pragma\s+omp\b"),
         "runs work on host threads, where GPU energy does not see it"),
]  # fmt: skip

_GETENV_RE = re.compile(r"\b(?:std::)?(?:getenv|secure_getenv)\s*\(\s*\"([^\"]*)\"")
_SECRET_NAME_RE = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|^AWS_|^AZURE_|^GCP_|^GOOGLE_|^GH_|^GITHUB_|^SSH_",
    re.IGNORECASE,
)
# The path literal given to fopen/open/openat/creat or to a file stream's constructor.
_PATH_CALL_RE = re.compile(
    r"\b(?:fopen|freopen|open|openat|creat)\s*\(\s*(?:[^,()\"]*,\s*)?\"([^\"]*)\""
    r"|\b[io]?fstream\s*(?:\w+\s*)?[({]\s*\"([^\"]*)\""
)


def added_lines(original: str, candidate: str) -> list[tuple[int, str]]:
    """(line number in the candidate, text) of lines the candidate adds or changes."""
    a, b = original.splitlines(), candidate.splitlines()
    added: list[tuple[int, str]] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            added.extend((j + 1, b[j]) for j in range(j1, j2))
    return added


def first_line_matching(pattern: re.Pattern[str], candidate: CudaSource, original: CudaSource) -> int | None:
    for number, text in added_lines(original.code, candidate.code):
        if pattern.search(text):
            return number
    for number, text in enumerate(candidate.code.splitlines(), start=1):
        if pattern.search(text):
            return number
    return None


def check_apis(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    findings: list[Finding] = []
    for rule in RULES:
        ours = rule.pattern.findall(original.code if rule.in_strings else original.code_no_strings)
        theirs = rule.pattern.findall(candidate.code if rule.in_strings else candidate.code_no_strings)
        if len(theirs) <= len(ours):
            continue
        line = first_line_matching(rule.pattern, candidate, original)
        shown = _line_text(candidate, line)
        findings.append(Finding(rule.check, rule.severity, f"the candidate {rule.what}: {shown}", line))
    findings += _check_getenv(original, candidate)
    findings += _check_paths(original, candidate)
    return findings


def _line_text(source: CudaSource, line: int | None) -> str:
    if line is None:
        return "(see the diff)"
    lines = source.text.splitlines()
    return f"`{tidy(lines[line - 1])}`" if 0 < line <= len(lines) else "(see the diff)"


def _check_getenv(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    before = set(_GETENV_RE.findall(original.code))
    findings: list[Finding] = []
    for name in sorted(set(_GETENV_RE.findall(candidate.code)) - before):
        line = first_line_matching(re.compile(re.escape(f'"{name}"')), candidate, original)
        if _SECRET_NAME_RE.search(name):
            findings.append(
                Finding(
                    "escape",
                    "fail",
                    f"the candidate reads the secret-looking environment variable {name}",
                    line,
                )
            )
        else:
            findings.append(
                Finding(
                    "environment",
                    "review",
                    f"the candidate reads the environment variable {name}, which the original does not",
                    line,
                )
            )
    return findings


def _paths(code: str) -> set[str]:
    return {a or b for a, b in _PATH_CALL_RE.findall(code)}


def _check_paths(original: CudaSource, candidate: CudaSource) -> list[Finding]:
    before = _paths(original.code)
    findings: list[Finding] = []
    for path in sorted(_paths(candidate.code) - before):
        if path.startswith(("/", "~")) or ".." in path.split("/"):
            line = first_line_matching(re.compile(re.escape(f'"{path}"')), candidate, original)
            findings.append(
                Finding(
                    "escape", "fail", f"the candidate opens {path!r}, outside its working directory", line
                )
            )
    return findings


def _count(types: dict[str, int], family: set[str]) -> int:
    return sum(n for name, n in types.items() if name in family)


def check_precision(
    original: CudaSource,
    candidate: CudaSource,
    *,
    original_build: str = "",
    candidate_build: str = "",
    allowed: bool = False,
) -> list[Finding]:
    """Lower precision than the original: double -> float, float -> half/bf16/fp8, fast-math."""
    severity: Severity = "info" if allowed else "fail"
    suffix = (
        " (the declared tolerance allows lower precision)"
        if allowed
        else "; results lose precision the declared tolerance does not allow (set "
        "allow_lower_precision in wattson.toml if it should)"
    )
    findings: list[Finding] = []
    ot, ct = original.type_counts, candidate.type_counts
    od, cd = _count(ot, DOUBLE_TYPES), _count(ct, DOUBLE_TYPES)
    of, cf = _count(ot, FLOAT_TYPES), _count(ct, FLOAT_TYPES)
    ol, cl = _count(ot, LOW_TYPES), _count(ct, LOW_TYPES)
    if od and cd < od and (cf > of or cl > ol):
        line = first_line_matching(re.compile(r"\b(?:float\w*|half\w*|__half\w*)\b"), candidate, original)
        findings.append(
            Finding(
                "precision-lowered",
                severity,
                f"the candidate uses double {od - cd} time(s) less and lower-precision types more "
                f"(double: {od} -> {cd}, float: {of} -> {cf}, half/bf16/fp8: {ol} -> {cl}){suffix}",
                line,
            )
        )
    elif cl > ol:
        low = re.compile(r"\b(?:" + "|".join(sorted(LOW_TYPES, key=len, reverse=True)) + r")\b")
        line = first_line_matching(low, candidate, original)
        findings.append(
            Finding(
                "precision-lowered",
                severity,
                f"the candidate introduces half/bfloat16/fp8 types (uses: {ol} -> {cl}){suffix}",
                line,
            )
        )
    if len(_FAST_INTRINSICS_RE.findall(candidate.code_no_strings)) > len(
        _FAST_INTRINSICS_RE.findall(original.code_no_strings)
    ):
        line = first_line_matching(_FAST_INTRINSICS_RE, candidate, original)
        findings.append(
            Finding(
                "precision-lowered",
                severity,
                "the candidate uses approximate intrinsics or narrowing conversions: "
                f"{_line_text(candidate, line)}" + suffix,
                line,
            )
        )
    new_flags = set(m.strip() for m in _FAST_FLAGS_RE.findall(candidate_build)) - set(
        m.strip() for m in _FAST_FLAGS_RE.findall(original_build)
    )
    if new_flags:
        findings.append(
            Finding(
                "precision-lowered",
                severity,
                f"the candidate's build adds {', '.join(sorted(new_flags))}, which trades accuracy for "
                f"speed{suffix}",
            )
        )
    return findings
