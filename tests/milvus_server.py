"""A real Milvus server for the tests: the PyPI package ``milvus`` (embedded standalone Milvus 2.3.5).

It runs the real server binary (etcd, rocksmq and local storage in one process) without Docker.
Every component is told to advertise 127.0.0.1, so all traffic stays on loopback; the clients
only ever connect to 127.0.0.1.

``COLPALI_MILVUS_TEST_URI=http://127.0.0.1:19530`` runs the server tests against a server you
started yourself instead (a Milvus 2.4/2.5 in Docker, say); the restart tests then skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_URI_VARIABLE = "COLPALI_MILVUS_TEST_URI"


class EmbeddedMilvus:
    """Start, stop and restart one standalone Milvus server on loopback, with its data under ``base_dir``."""

    def __init__(self, base_dir: Path) -> None:
        import milvus

        template = Path(milvus.__file__).parent / "data" / "config.yaml.template"
        text = template.read_text(encoding="utf-8")
        # "ip:" left empty makes each component advertise the machine's first non-loopback address.
        text, count = re.subn(r"(?m)^(\s+)ip:[^\n]*$", r"\g<1>ip: 127.0.0.1", text)
        assert count > 0, "the milvus package's config template changed"
        patched = base_dir / "config.yaml.template"
        base_dir.mkdir(parents=True, exist_ok=True)
        patched.write_text(text, encoding="utf-8")
        config = _loopback_config(template=str(patched), data_dir=str(base_dir / "milvus"))
        config.glog_conf_file = str(template.parent / "glog.conf")  # only set for the default template
        self._server: Any = milvus.MilvusServer(config)
        self._server.show_startup_banner = False
        self.base_dir = base_dir

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.listen_port}"

    @property
    def running(self) -> bool:
        return bool(self._server.running)

    def start(self) -> None:
        self._server.start()
        # A restart must come back on the same ports, or clients would be talking to nothing.
        for key, (port, _) in self._server.config.listen_ports.items():
            self._server.config.configs[key] = port

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server: SIGTERM and a short grace period, or SIGKILL at once (``crash=True``)."""
        process: subprocess.Popen[bytes] | None = self._server.server_proc
        if process is None:
            return
        process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self._server.server_proc = None
        for handle in self._server.proc_fds.values():
            handle.close()
        self._server.proc_fds.clear()
        time.sleep(0.5)  # let the kernel release the ports

    def restart(self, *, crash: bool = False) -> None:
        self.stop(crash=crash)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        log = self.base_dir / "milvus" / "logs" / "milvus-stdout.log"
        if not log.is_file():
            return ""
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _loopback_config(**kwargs: Any) -> Any:
    """The package's server config, but checking ports the way the server binds them."""
    import milvus

    class LoopbackConfig(milvus.MilvusServerConfig):  # type: ignore[misc]
        def try_bind_port(self, port: int) -> socket.socket | None:
            # Like the package's check, but with SO_REUSEADDR, as the Go server binds: a port whose
            # last connections sit in TIME_WAIT after a restart is free for the server.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
            except OSError:
                sock.close()
                return None
            return sock

    return LoopbackConfig(**kwargs)


@dataclass
class ExternalMilvus:
    """A server the developer started (``COLPALI_MILVUS_TEST_URI``); it cannot be restarted from here."""

    uri: str
    running: bool = True


def external_test_uri() -> str | None:
    return os.environ.get(TEST_URI_VARIABLE) or None
