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
import subprocess
from pathlib import Path

import pymysql

from db_server import DbServer, free_port

ROOT_PASSWORD = "root-Pw-for-tests-1"


def _which(*names: str) -> str | None:
    for n in names:
        p = shutil.which(n) or (f"/usr/sbin/{n}" if os.path.exists(f"/usr/sbin/{n}") else None)
        if p:
            return p
    return None


def available() -> bool:
    return bool(_which("mariadbd", "mysqld") and _which("mariadb-install-db", "mysql_install_db"))


class MariaDB(DbServer):
    label = "mariadbd"
    not_ready_errors = (pymysql.err.OperationalError,)
    stop_timeout = 30.0

    def __init__(self, base_dir: Path):
        super().__init__()
        self.base = Path(base_dir)
        self.log_path = self.base / "mariadb.log"
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.port = free_port()
        self._initialised = False
        self._bootstrapped = False
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
        return super().start(timeout)

    def _launch(self) -> None:
        if not self._initialised:
            self._install()
        daemon = _which("mariadbd", "mysqld")
        self._popen(
            [daemon, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}",
             f"--pid-file={self.base / 'mysqld.pid'}", "--skip-name-resolve", "--user=root",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
             "--performance-schema=OFF", "--skip-log-bin", "--max-connections=500",
             f"--log-error={self.log_path}"])

    def _probe(self) -> None:
        if not self._bootstrapped:
            # Fresh install: root has no password yet; reach it over the socket.
            conn = pymysql.connect(unix_socket=str(self.socket), user="root",
                                   password="", connect_timeout=2)
            self._bootstrapped = True
            self._bootstrap(conn)
        conn = self.root()
        with conn.cursor() as c:
            c.execute("SELECT VERSION()")
            self.version = c.fetchone()[0]
        conn.close()

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

    def rows_as(self, user: str, password: str, database: str, query: str):
        """The rows of `query`, run on a NEW connection as user/password in `database`;
        None when the login fails."""
        try:
            conn = self.connect(user, password, database=database)
        except pymysql.err.OperationalError:
            return None
        try:
            with conn.cursor() as c:
                c.execute(query)
                return c.fetchall()
        finally:
            conn.close()

    def reads_items(self, user: str, password: str) -> bool:
        """A NEW connection logs in as `user` and reads the tests' appdb.items (one, two)."""
        rows = self.rows_as(user, password, "appdb", "SELECT name FROM appdb.items ORDER BY id")
        return rows is not None and [r[0] for r in rows] == ["one", "two"]

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
