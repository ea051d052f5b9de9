"""How an untrusted candidate runs: its own directory, a scrubbed environment, rlimits, no network.

LLM output is untrusted code. The agent builds and runs every candidate through a Sandbox:

- argv(): prefixes `unshare --net --pid --fork --mount-proc --kill-child` (plus --map-root-user when not root).
  The new network namespace has only a loopback that is down, so nothing can be reached, not even
  127.0.0.1. The new PID namespace dies with its first process, so a grandchild that escaped the
  process group with setsid() is killed too when the run is killed. A small shell stays PID 1 and runs
  the program as its child, because PID 1 ignores signals it has no handler for (abort() would not
  end it). Where unshare is missing or not permitted, the run goes ahead with network access and
  a warning says so.
- env(): only an allowlist of variables (PATH, locale, CUDA_*/HIP_*/ROCR_*/NVIDIA_*, ...) and never
  anything that looks like a key, token or credential. HOME and TMPDIR point into the working dir.
- preexec(): rlimits in the child: CPU seconds, file size, processes, core dumps off, and address
  space only when asked, because CUDA and ROCm reserve tens of GB of virtual memory at start-up.

Caveats, by design of the kernel: RLIMIT_NPROC counts every process of the user, not only the
sandbox's, so the limit is the user's current count plus max_processes; root is exempt from it.
A signal that kills the program shows as exit code 128 + N (reported by the PID-1 shell), not -N.
Killing the process group on timeout is profilers/run.py's job (measured_run).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

# Names passed through from the agent's environment, exactly or by prefix.
_ALLOWED_NAMES = {
    "PATH", "LANG", "LANGUAGE", "TERM", "TZ", "USER", "LOGNAME", "LD_LIBRARY_PATH", "LIBRARY_PATH",
    "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "PKG_CONFIG_PATH", "CC", "CXX", "CFLAGS", "CXXFLAGS",
}  # fmt: skip
_ALLOWED_PREFIXES = ("LC_", "CUDA_", "HIP_", "ROCR_", "ROCM_", "HSA_", "NVIDIA_", "NVCC_", "OMP_", "WATTSON_")
# Never passed, whatever the allowlist or the caller says: keys, tokens, credentials, agent sockets.
_SECRET_RE = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|CERT|"
    r"^AWS_|^AZURE_|^GCP_|^GOOGLE_|^GH_|^GITHUB_|^GITLAB_|^SSH_|^GPG_|^ANTHROPIC|^OPENAI|^HF_|^HUGGING",
    re.IGNORECASE,
)
_PID1_WRAPPER = ["/bin/sh", "-c", '"$@"; exit $?', "wattson-sandbox"]
_PROBE_TIMEOUT_S = 10


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_RE.search(name))


def _allowed(name: str) -> bool:
    return (name in _ALLOWED_NAMES or name.startswith(_ALLOWED_PREFIXES)) and not is_secret_name(name)


def _unshare_flags(network: bool) -> list[str]:
    # --mount-proc: the CUDA driver reads /proc; in a PID namespace with the host's /proc it fails
    # with cudaErrorOperatingSystem (seen on an H100 host, driver 580).
    flags = ["--pid", "--fork", "--mount-proc", "--kill-child"]
    if not network:
        flags.insert(0, "--net")
    if os.geteuid() != 0:
        flags.append("--map-root-user")  # an unprivileged user namespace lets a normal user unshare
    return flags


@cache
def _probe(unshare: str, flags: tuple[str, ...]) -> str | None:
    """None when `unshare FLAGS true` works here, else why not (cached: the answer does not change)."""
    try:
        proc = subprocess.run(
            [unshare, *flags, "--", "true"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
    return None


def _isolation_problem(network: bool) -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "`unshare` (util-linux) is not installed"
    return _probe(unshare, tuple(_unshare_flags(network)))


def network_isolation_available() -> bool:
    """True when candidates can run without network (and in their own PID namespace) on this host."""
    return _isolation_problem(network=False) is None


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _lower_limit(kind: int, value: int) -> None:
    """Set soft and hard limit to value, or to the current hard limit if that is lower."""
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


@dataclass
class Sandbox:
    workdir: Path
    cpu_time_s: int = 600
    file_size_bytes: int = 2**30
    max_processes: int = 256
    memory_bytes: int | None = None  # GPU programs reserve huge virtual memory: off unless asked
    network: bool = False
    warnings: list[str] = field(default_factory=list)
    _nproc_limit: int | None = field(default=None, init=False, repr=False)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def argv(self, argv: list[str]) -> list[str]:
        """The command line that runs argv inside the isolation this host allows."""
        self.prepare()
        problem = _isolation_problem(self.network)
        if problem is not None:
            what = (
                "network isolation and a separate PID namespace"
                if not self.network
                else "a separate PID namespace"
            )
            self._warn(
                f"the candidate ran without {what}: {problem}. Install util-linux `unshare` and allow "
                "namespaces (run the agent as root, or enable unprivileged user namespaces) to isolate it"
            )
            return list(argv)
        return ["unshare", *_unshare_flags(self.network), "--", *_PID1_WRAPPER, *argv]

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        """The agent's environment cut down to the allowlist, plus `extra` (minus anything secret)."""
        env = {k: v for k, v in os.environ.items() if _allowed(k)}
        env.setdefault("PATH", os.defpath)
        for name, value in extra.items():
            if is_secret_name(name):
                self._warn(
                    f"the environment variable {name} looks like a secret and was not given to the candidate"
                )
                continue
            env[name] = value
        self.prepare()
        env["HOME"] = str(self.workdir)
        env["TMPDIR"] = str(Path(self.workdir) / "tmp")
        return env

    def preexec(self) -> None:
        """Runs in the child between fork and exec: only setrlimit calls, nothing that can block."""
        _lower_limit(resource.RLIMIT_CORE, 0)
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cpu_hard = self.cpu_time_s + 5  # SIGXCPU at the soft limit; SIGKILL if it is ignored
        if hard != resource.RLIM_INFINITY:
            cpu_hard = min(cpu_hard, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(self.cpu_time_s, cpu_hard), cpu_hard))
        _lower_limit(resource.RLIMIT_FSIZE, self.file_size_bytes)
        if self._nproc_limit is not None:
            _lower_limit(resource.RLIMIT_NPROC, self._nproc_limit)
        if self.memory_bytes is not None:
            _lower_limit(resource.RLIMIT_AS, self.memory_bytes)

    def prepare(self) -> None:
        """Work done in the parent, once (preexec must stay minimal): the tmp dir, the process limit."""
        (Path(self.workdir) / "tmp").mkdir(parents=True, exist_ok=True)
        if self._nproc_limit is None:
            self._nproc_limit = _user_process_count() + self.max_processes


_LIMIT_NAMES = {f.name for f in fields(Sandbox) if f.init and f.name not in ("workdir", "warnings")}


def make_sandbox(workdir: Path, **limits) -> Sandbox:
    """A Sandbox for a candidate working in `workdir` (created if missing); limits override the defaults."""
    unknown = sorted(set(limits) - _LIMIT_NAMES)
    if unknown:
        raise TypeError(
            f"unknown sandbox setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_LIMIT_NAMES))}"
        )
    sandbox = Sandbox(workdir=Path(workdir), **limits)
    sandbox.prepare()
    return sandbox
