"""A throwaway Redis server for the rotator tests.

`RedisServer(base_dir).start()` runs `redis-server` on a free loopback port with no
persistence of data (`--save '' --appendonly no`) and an ACL file in the temp dir whose
`default` user is password-protected (an admin for the tests). `stop()` ends it and keeps the
ACL file, so `start()` brings the same users back on the same port (users added at run time
survive only once `ACL SAVE` wrote them). `cleanup()` stops it and removes the directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from db_server import DbServer, free_port

ADMIN_PASSWORD = "admin-Pw-for-tests-1"
# redis-py retries a refused AUTH (an AuthenticationError is a ConnectionError) with backoff
# by default; the tests want the server's answer at once.
NO_RETRY = Retry(NoBackoff(), 0)


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer(DbServer):
    label = "redis-server"
    not_ready_errors = (redis.exceptions.ConnectionError,)

    def __init__(self, base_dir: Path):
        super().__init__()
        self.base = Path(base_dir)
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "redis.log"
        self.aclfile = self.base / "users.acl"
        self.aclfile.write_text(f"user default on >{ADMIN_PASSWORD} ~* &* +@all\n")
        self.port = free_port()
        self.version = ""

    def start(self, timeout: float = 20.0) -> "RedisServer":
        return super().start(timeout)

    def _launch(self) -> None:
        self._popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(self.base),
                     "--aclfile", str(self.aclfile), "--protected-mode", "no",
                     "--maxclients", "1000"])

    def _probe(self) -> None:
        self.version = self.admin().info("server")["redis_version"]

    # -- clients ---------------------------------------------------------------------------
    def client(self, username: str, password: str, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, username=username,
                           password=password, socket_timeout=timeout,
                           socket_connect_timeout=timeout, retry=NO_RETRY)

    def admin(self) -> redis.Redis:
        return self.client("default", ADMIN_PASSWORD)

    def can_auth(self, username: str, password: str) -> bool:
        """A NEW connection AUTHs as username/password and answers PING."""
        c = self.client(username, password)
        try:
            return c.ping() is True
        except redis.exceptions.AuthenticationError:
            return False
        finally:
            c.close()

    def add_user(self, username: str, password: str, *rules: str, save: bool = True) -> None:
        """ACL SETUSER username on >password <rules...> (default: full access), then
        ACL SAVE so it survives a restart."""
        rules = rules or ("~*", "&*", "+@all")
        a = self.admin()
        try:
            a.execute_command("ACL", "SETUSER", username, "reset", "on", f">{password}",
                              *rules)
            if save:
                a.execute_command("ACL", "SAVE")
        finally:
            a.close()
