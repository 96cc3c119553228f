"""A throwaway PostgreSQL server for the rotator tests (tests/py/test_rotator_postgres.py).

`PgServer(...).start()` runs initdb in a fresh temp dir and starts `postgres` on a free
127.0.0.1 port with scram-sha-256 password authentication for every connection (TCP and the
Unix socket, which lives in the temp dir). As root, the data dir belongs to the `postgres`
user and the server binaries run through `runuser -u postgres --` (initdb refuses root).
With `tls=True` (and `openssl` on PATH) it also makes a throwaway CA and a server
certificate for `localhost` / `127.0.0.1`, turns `ssl` on, and rejects plaintext logins of
members of the role `tls_only` (pg_hba `hostnossl … +tls_only … reject`).

Logins are checked with psycopg 3 (`psycopg[binary]`, tests/py/requirements.txt).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from db_server import DbServer, free_port

SUPERUSER = "postgres"
TLS_ONLY_ROLE = "tls_only"


def pg_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin holding initdb, else the dir of `initdb` on PATH."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if dirs:
        return Path(dirs[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def available() -> bool:
    return pg_bin_dir() is not None


def _as_root() -> bool:
    return os.geteuid() == 0


def _chown_to_postgres(path: Path) -> None:
    if _as_root():
        shutil.chown(path, user="postgres", group="postgres")


class PgServer(DbServer):
    """One PostgreSQL instance. `host`/`port` for TCP; `superuser_password` for `postgres`.
    `pg_ctl` runs the server (not a child of the tests), so `stop()` goes through it too."""

    label = "PostgreSQL"
    not_ready_errors = (psycopg.Error,)

    def __init__(self, name: str = "pg", tls: bool = False,
                 superuser_password: str = "Super-Secret-Pg-Pass-0001"):
        super().__init__()
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = bindir
        self.name = name
        self.superuser_password = superuser_password
        self.want_tls = tls and shutil.which("openssl") is not None
        self.port: int | None = None
        self.dir: Path | None = None
        self.ca_cert: Path | None = None

    # paths ---------------------------------------------------------------------------------
    @property
    def base(self) -> Path | None:
        return self.dir

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def tls(self) -> bool:
        return self.ca_cert is not None

    # process -------------------------------------------------------------------------------
    def _run(self, *args: str, timeout: float = 60, check: bool = True):
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if _as_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, cwd=self.dir)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (rc={p.returncode}):\n"
                               f"{p.stdout}\n{p.stderr}\n{self.log_tail()}")
        return p

    def start(self, timeout: float = 30.0) -> "PgServer":
        return super().start(timeout)

    def _launch(self) -> None:
        if self.dir is None:
            self._init()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60",
                  "start")

    def _probe(self) -> None:
        with self.admin():
            pass

    def _init(self) -> None:
        # Not under pytest's basetemp: that is 0700 root, which `postgres` cannot enter.
        self.dir = Path(tempfile.mkdtemp(prefix=f"rotary-{self.name}-"))
        _chown_to_postgres(self.dir)
        self.port = free_port()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        _chown_to_postgres(pwfile)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C", timeout=120)
        pwfile.unlink()
        conf = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.dir}'",
            "password_encryption = 'scram-sha-256'",
            "max_connections = 200",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "log_connections = off",
        ]
        if self.want_tls:
            self._make_certs()
            conf += ["ssl = on", f"ssl_cert_file = '{self.dir / 'server.crt'}'",
                     f"ssl_key_file = '{self.dir / 'server.key'}'"]
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# rotary test settings\n" + "\n".join(conf) + "\n")
        hba = [
            "local all all scram-sha-256",
            f"hostnossl all +{TLS_ONLY_ROLE} 127.0.0.1/32 reject",
            "host all all 127.0.0.1/32 scram-sha-256",
        ]
        (self.data / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def _make_certs(self) -> None:
        d = self.dir
        (d / "ca.cnf").write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = Rotary Test CA\n"
            "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n")
        (d / "server.cnf").write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n"
            "[v3_srv]\nbasicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
            "subjectAltName = DNS:localhost,IP:127.0.0.1\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d,
                           timeout=60)

        openssl("req", "-x509", "-config", "ca.cnf", "-extensions", "v3_ca", *ec,
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "3")
        openssl("req", "-new", "-config", "server.cnf", *ec, "-keyout", "server.key",
                "-out", "server.csr")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", "2", "-days", "3", "-extfile", "server.cnf",
                "-extensions", "v3_srv", "-out", "server.crt")
        for f in ("server.crt", "server.key"):
            _chown_to_postgres(d / f)
        os.chmod(d / "server.key", 0o600)
        os.chmod(d / "ca.crt", 0o644)
        self.ca_cert = d / "ca.crt"

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self) -> None:
        if self.dir is not None and self.data.exists() and self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        self.cleanup()

    # clients -------------------------------------------------------------------------------
    def connect(self, user: str, password: str, dbname: str = "postgres",
                sslmode: str = "disable", host: str | None = None, **kw) -> psycopg.Connection:
        return psycopg.connect(host=host or self.host, port=self.port, user=user,
                               password=password, dbname=dbname, sslmode=sslmode,
                               connect_timeout=5, autocommit=True, **kw)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return self.connect(SUPERUSER, self.superuser_password, dbname)

    def can_login(self, user: str, password: str, dbname: str = "postgres",
                  sslmode: str = "disable") -> bool:
        try:
            with self.connect(user, password, dbname, sslmode) as c:
                c.execute("SELECT 1").fetchone()
            return True
        except psycopg.OperationalError:
            return False

    def login_error(self, user: str, password: str, dbname: str = "postgres",
                    sslmode: str = "disable") -> str | None:
        """None if the login works, else the server's reason."""
        try:
            with self.connect(user, password, dbname, sslmode) as c:
                c.execute("SELECT 1").fetchone()
            return None
        except psycopg.OperationalError as e:
            return str(e)

    def sql(self, query: str, params=None, dbname: str = "postgres"):
        """Runs `query` as the superuser; returns all rows (or [] for commands)."""
        with self.admin(dbname) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else []

    def role_exists(self, role: str) -> bool:
        return bool(self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)))

    def create_role(self, role: str, password: str, *, login: bool = True,
                    member_of: tuple[str, ...] = ()) -> None:
        from psycopg import sql as pgsql
        stmt = pgsql.SQL("CREATE ROLE {} WITH {} PASSWORD {}").format(
            pgsql.Identifier(role), pgsql.SQL("LOGIN" if login else "NOLOGIN"),
            pgsql.Literal(password))
        with self.admin() as c:
            c.execute(stmt)
            for group in member_of:
                c.execute(pgsql.SQL("GRANT {} TO {}").format(pgsql.Identifier(group),
                                                             pgsql.Identifier(role)))


def main() -> None:
    """`scripts/dbs/start-postgres`: a throwaway server for trying the rotators by hand."""
    import argparse
    import signal

    ap = argparse.ArgumentParser(description="Start a throwaway PostgreSQL; Ctrl-C removes it.")
    ap.add_argument("--no-tls", action="store_true", help="do not make certificates")
    args = ap.parse_args()
    srv = PgServer(name="pg-manual", tls=not args.no_tls)
    try:
        srv.start()
        srv.sql(f"CREATE ROLE {TLS_ONLY_ROLE} NOLOGIN")
        print(json.dumps({"host": srv.host, "port": srv.port, "username": SUPERUSER,
                          "password": srv.superuser_password, "dir": str(srv.dir),
                          "ca_cert": str(srv.ca_cert) if srv.tls else None}, indent=2),
              flush=True)
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        signal.sigwait(signals)
    finally:
        srv.destroy()


if __name__ == "__main__":
    main()
