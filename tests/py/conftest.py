"""pytest fixtures for the Rotary black-box suite.

The binary is NOT built here: it must already exist at $ROTARY_BIN
(default <repo>/target/debug/rotary).

Fixtures
  server        session-scoped Server shared by most tests (tests isolate by name prefix)
  own_server    function-scoped Server on its own data dir (for kill/restart tests)
  sm / sm_raw   boto3 clients for `server` (sm_raw: parameter_validation=False)
  raw           raw(target, body, headers=None, sign=True, **sign_kw) -> (status, headers, json)
  aws_cli       aws_cli(*args) -> (rc, parsed-json | stderr)
  unique_name   unique_name(prefix) -> fresh valid secret name
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rotary_testlib as lib  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = lib.Server(tmp_path_factory.mktemp("rotary-session"), name="session")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own_server(tmp_path, request):
    """A private server. Parametrize indirectly with a dict to pass extra env, e.g.
    @pytest.mark.parametrize("own_server", [{"ROTARY_LOG": "trace"}], indirect=True)."""
    env = getattr(request, "param", None)
    srv = lib.Server(tmp_path / "own", name="own", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _server_still_alive(request):
    """Fail loudly if a test left the shared server dead (crash = server bug)."""
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if not srv.alive():
            pytest.fail(
                f"shared rotary server died during {request.node.name} "
                f"(rc={srv.proc.returncode}); log tail:\n{srv.log_tail()}"
            )


@pytest.fixture(scope="session")
def sm(server):
    return server.client(validate=True)


@pytest.fixture(scope="session")
def sm_raw(server):
    return server.client(validate=False)


@pytest.fixture(scope="session")
def raw(server):
    def _raw(target, body=b"{}", headers=None, sign=True, **sign_kw):
        return lib.raw_call(server.url, target, body, headers=headers, sign=sign, **sign_kw)

    return _raw


@pytest.fixture(scope="session")
def unique_name():
    return lib.unique_name


@pytest.fixture(scope="session")
def aws_cli(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("awscli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=lib.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=lib.SECRET_KEY,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_MAX_ATTEMPTS="1",
        AWS_RETRY_MODE="standard",
        AWS_PAGER="",
        HOME=str(home),
    )

    def _cli(*args, timeout=60):
        cmd = ["aws", "secretsmanager", *map(str, args),
               "--endpoint-url", server.url, "--region", lib.REGION, "--output", "json"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            return p.returncode, p.stderr
        out = p.stdout.strip()
        return 0, (json.loads(out) if out else {})

    return _cli
