"""The lifecycle the throwaway database servers of the rotator tests share.

A subclass (`mysql_server.MariaDB`, `redis_server.RedisServer`, `pg_server.PgServer`) says how
to launch its server (`_launch`, which sets `self.proc` when it runs the server as a child)
and how to check it answers (`_probe`, which raises one of `not_ready_errors` while it is
coming up). This class waits for it, stops it with SIGTERM (then SIGKILL), keeps its log
tail for error messages, and removes its directory on `cleanup()`. `stop()` keeps the
directory, so `start()` brings the same users back on the same port (the "database down,
then up" tests).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DbServer:
    #: Shown in errors.
    label = "server"
    #: What `_probe` raises while the server is not ready yet.
    not_ready_errors: tuple[type[BaseException], ...] = (OSError,)
    #: How long `stop()` waits after SIGTERM before SIGKILL.
    stop_timeout = 15.0
    host = "127.0.0.1"

    #: The server's directory (removed by `cleanup`) and log file; set by the subclass.
    base: Path | None = None
    log_path: Path | None = None

    def __init__(self):
        self.proc: subprocess.Popen | None = None

    # -- to implement ----------------------------------------------------------------------
    def _launch(self) -> None:
        raise NotImplementedError

    def _probe(self) -> None:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0):
        self._launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited rc={self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self._probe()
                return
            except self.not_ready_errors as e:
                last = e
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.label} not ready after {timeout}s ({last}):\n"
                           f"{self.log_tail()}")

    def _popen(self, cmd: list[str]) -> None:
        """Runs the server as a child, its output appended to the log."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (OSError, AttributeError, TypeError):
            return f"<no {self.label} log>"
