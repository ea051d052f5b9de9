"""A real OpenSSH server on 127.0.0.1 (random free port, key auth only) for the remote-agent tests.

Skips the test, saying why, when /usr/sbin/sshd is missing or does not start
(`apt-get install -y openssh-server` provides it). Only loopback; stopped when the module ends.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass
class SshServer:
    port: int
    key: Path
    user: str

    def ssh_argv(self) -> list[str]:
        """`ssh` to this server, ignoring the user's own ~/.ssh/config and known hosts."""
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", str(self.key),
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
                f"{self.user}@127.0.0.1"]

    def prefix(self, remote_env: dict[str, str]) -> list[str]:
        """A remote prefix that sets the remote side's environment (sshd passes none of ours)."""
        return [*self.ssh_argv(), "env", *(shlex.quote(f"{k}={v}") for k, v in remote_env.items())]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not SSHD.exists():
        pytest.skip("sshd is not installed: apt-get install -y openssh-server")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("the OpenSSH client (ssh, ssh-keygen) is missing: apt-get install -y openssh-client")
    d = tmp_path_factory.mktemp("sshd")
    host_key, client_key = d / "host_key", d / "client_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    port = _free_port()
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "UsePAM no", "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "LogLevel ERROR", ""]))
    log_path = d / "sshd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(SSHD), "-f", str(config), "-D", "-e"], stdout=log, stderr=log,
                                start_new_session=True)
    try:
        if not _wait_listening(port, proc):
            pytest.skip(f"sshd did not start on 127.0.0.1:{port}: {log_path.read_text()[-500:]}")
        server = SshServer(port=port, key=client_key, user=getpass.getuser())
        probe = subprocess.run([*server.ssh_argv(), "true"], capture_output=True, text=True, timeout=20)
        if probe.returncode != 0:
            pytest.skip(f"ssh to the test sshd failed: {probe.stderr.strip()[-500:]}")
        yield server
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
