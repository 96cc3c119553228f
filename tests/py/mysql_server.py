"""A throwaway MariaDB (or MySQL) server for the rotator tests.

`MariaDB(base_dir).start()` initialises a data dir with `mariadb-install-db`, starts
`mariadbd` on a free loopback port (TCP only for clients; the socket lives in the temp dir),
removes the anonymous accounts the installer creates (they would shadow `'app'@'%'` for
logins from localhost), and sets a root password usable over TCP. `stop()` ends the server
and keeps the data dir, so `start()` brings the same accounts back on the same port (the
"database down, then up" tests). `cleanup()` stops it and removes everything.

Nothing here is Rotary-specific; it talks to the server with pymysql.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pymysql

ROOT_PASSWORD = "root-Pw-for-tests-1"


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(*names: str) -> str | None:
    for n in names:
        p = shutil.which(n) or (f"/usr/sbin/{n}" if os.path.exists(f"/usr/sbin/{n}") else None)
        if p:
            return p
    return None


def available() -> bool:
    return bool(_which("mariadbd", "mysqld") and _which("mariadb-install-db", "mysql_install_db"))


class MariaDB:
    def __init__(self, base_dir: Path):
        self.base = Path(base_dir)
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.log_path = self.base / "mariadb.log"
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self._initialised = False
        self.version = ""

    # -- lifecycle -------------------------------------------------------------------------
    def _install(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        installer = _which("mariadb-install-db", "mysql_install_db")
        cmd = [installer, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
               "--auth-root-authentication-method=normal", "--user=root"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
        self._initialised = True

    def start(self, timeout: float = 60.0) -> "MariaDB":
        if not self._initialised:
            self._install()
            first = True
        else:
            first = False
        daemon = _which("mariadbd", "mysqld")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [daemon, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}",
             f"--pid-file={self.base / 'mysqld.pid'}", "--skip-name-resolve", "--user=root",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
             "--performance-schema=OFF", "--skip-log-bin", "--max-connections=500",
             f"--log-error={self.log_path}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited rc={self.proc.returncode}:\n{self.log_tail()}")
            try:
                if first:
                    # Fresh install: root has no password yet; reach it over the socket.
                    conn = pymysql.connect(unix_socket=str(self.socket), user="root",
                                           password="", connect_timeout=2)
                    first = False
                    self._bootstrap(conn)
                conn = self.root()
                with conn.cursor() as c:
                    c.execute("SELECT VERSION()")
                    self.version = c.fetchone()[0]
                conn.close()
                return self
            except pymysql.err.OperationalError as e:
                last = e
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"MariaDB not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def _bootstrap(self, conn) -> None:
        with conn.cursor() as c:
            # The installer's anonymous accounts (''@'localhost', ''@'<hostname>') match
            # logins from localhost before 'app'@'%' does; remove them.
            c.execute("SELECT User, Host FROM mysql.user WHERE User = ''")
            for user, host in c.fetchall():
                c.execute("DROP USER %s@%s", (user, host))
            c.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            c.execute("SELECT Host FROM mysql.user WHERE User = 'root'")
            for (host,) in c.fetchall():
                c.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, ROOT_PASSWORD))
            c.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
            c.execute("FLUSH PRIVILEGES")
        conn.commit()
        conn.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    # -- clients ---------------------------------------------------------------------------
    def connect(self, user: str, password: str, database: str | None = None,
                timeout: float = 5.0):
        return pymysql.connect(host=self.host, port=self.port, user=user, password=password,
                               database=database, connect_timeout=timeout, autocommit=True)

    def root(self):
        return self.connect("root", ROOT_PASSWORD)

    def can_login(self, user: str, password: str) -> bool:
        try:
            conn = self.connect(user, password)
        except pymysql.err.OperationalError:
            return False
        try:
            with conn.cursor() as c:
                c.execute("SELECT 1")
                return c.fetchone()[0] == 1
        finally:
            conn.close()

    def sql(self, statement: str, args=None):
        """Runs one statement as root; returns all rows."""
        conn = self.root()
        try:
            with conn.cursor() as c:
                c.execute(statement, args)
                return c.fetchall()
        finally:
            conn.close()

    def create_user(self, user: str, password: str, host: str = "%", grants=()) -> None:
        """Creates user@host with a password and runs each GRANT template in `grants`
        (`{u}` is replaced by the quoted account)."""
        conn = self.root()
        try:
            with conn.cursor() as c:
                c.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                account = conn.escape(user) + "@" + conn.escape(host)
                for g in grants:
                    c.execute(g.format(u=account))
        finally:
            conn.close()

    def user_exists(self, user: str, host: str = "%") -> bool:
        return bool(self.sql("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s",
                             (user, host)))
