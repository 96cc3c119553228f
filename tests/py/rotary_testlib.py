"""Shared helpers for the Rotary black-box test suite.

Everything here talks to a running `rotary serve` process over HTTP only; nothing imports
server code. conftest.py wires these helpers into pytest fixtures; test modules may import
constants and helper functions from here directly (`from rotary_testlib import ...`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
ROTARY_BIN = os.environ.get("ROTARY_BIN", str(REPO / "target" / "debug" / "rotary"))

ACCESS_KEY = "AKIAROTARYTEST000001"
SECRET_KEY = "rotary-test-secret-key-0000000000000000"
REGION = "us-east-1"
ACCOUNT = "000000000000"
CONTENT_TYPE = "application/x-amz-json-1.1"

# ---------------------------------------------------------------------------------------------
# Message texts from the spec ([A]/[M] facts, plus the [E] texts the server contract fixes).
# ---------------------------------------------------------------------------------------------
NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
SCHEDULED_CREATE = (
    "You can't create this secret because a secret with this name is already scheduled for deletion."
)
INVALID_NAME = (
    "Invalid name. Must be a valid name containing alphanumeric characters, "
    "or any of the following: -/_+=.@!"
)
BOTH_VALUES = (
    "You can't specify both a binary secret value and a string secret value in the same secret."
)
NEED_VALUE = "You must provide either SecretString or SecretBinary."
NEED_TOKEN = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
STAGE_MISMATCH = "You provided a VersionStage that is not associated to the provided VersionId."
BAD_NEXT_TOKEN = "The NextToken value is invalid."
WINDOW_RANGE = "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
WINDOW_AND_FORCE = (
    "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
)
SIG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."


def not_signed_msg(header: str) -> str:
    """AWS's text for a header that must be signed ('Host' -> its own wording, see spec §1.3);
    Rotary uses the same sentence for X-Amz-Target, Content-Type, X-Amz-Security-Token and
    X-Amz-Content-SHA256 (issue #9)."""
    if header == "Host":
        return "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    return f"'{header}' must be a 'SignedHeader' in the AWS Authorization."


MISSING_AUTH = "Missing Authentication Token"
WRONG_SERVICE = "Credential should be scoped to correct service: 'secretsmanager'. "


def exists_msg(name: str) -> str:
    return f"The operation failed because the secret {name} already exists."


def token_in_use_msg(token: str, arn: str) -> str:
    return (
        f"You can't use ClientRequestToken {token} because that value is already in use "
        f"for a version of secret {arn}."
    )


def stage_not_found_msg(stage: str) -> str:
    return f"Secrets Manager can't find the specified secret value for staging label: {stage}"


def vid_not_found_msg(vid: str) -> str:
    return f"Secrets Manager can't find the specified secret value for VersionId: {vid}"


def remove_from_empty_msg(label: str, vid: str) -> str:
    return (
        f"The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently "
        f"attached to version {vid}, so you must explicitly reference that version in "
        f"RemoveFromVersionId."
    )


def validation_msg(value, path: str, constraint: str) -> str:
    return (
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
        f"constraint: {constraint}"
    )


def arn_regex(name: str, region: str = REGION, account: str = ACCOUNT) -> re.Pattern:
    return re.compile(
        rf"^arn:aws:secretsmanager:{re.escape(region)}:{account}:secret:"
        + re.escape(name)
        + r"-[A-Za-z0-9]{6}$"
    )


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
def unique_name(prefix: str = "t") -> str:
    """A fresh, valid secret name. Tests share one server and isolate by name."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def new_token() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------------------------
# The interpreter sandboxed Python functions and the test fixtures' wrappers run with.
FUNCTION_VENV = Path(os.environ.get("ROTARY_TEST_FUNCTION_VENV", "/opt/rotary-test-python"))
FUNCTION_PYTHON = str(FUNCTION_VENV / "bin" / "python3")
_FUNCTION_WRITABLE: Path | None = None


def function_writable_root() -> Path:
    """A directory (mode 0777) that every test server lets its sandboxed functions write,
    with --function-writable-dir; tests put per-test marker directories in it."""
    global _FUNCTION_WRITABLE
    if _FUNCTION_WRITABLE is None:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="rotary-fn-writable-"))
        d.chmod(0o777)
        _FUNCTION_WRITABLE = d
    return _FUNCTION_WRITABLE


def function_writable_dir(prefix: str = "markers") -> Path:
    """A fresh directory sandboxed functions can write (and the test can read)."""
    d = function_writable_root() / f"{prefix}-{uuid.uuid4().hex[:12]}"
    d.mkdir()
    d.chmod(0o777)
    return d


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PG = None


def _postgres_store_url() -> str:
    """A fresh database on the suite's throwaway PostgreSQL (started on first use, stopped
    at exit): how ROTARY_TEST_STORE=postgres runs a suite against the PostgreSQL store."""
    global _PG
    import atexit

    from pg_server import PgServer

    if _PG is None:
        _PG = PgServer(name="store").start()

        def _stop():
            _PG.stop()
            _PG.destroy()

        atexit.register(_stop)
    db = f"rotary_{uuid.uuid4().hex[:12]}"
    _PG.sql(f'CREATE DATABASE "{db}"')
    return f"postgres://postgres:{_PG.superuser_password}@127.0.0.1:{_PG.port}/{db}"


class Server:
    """One `rotary serve` process on a data dir. Logs (stderr+stdout) go to log_path.

    With ROTARY_TEST_STORE=postgres in the environment, every server without its own
    `--store` gets a fresh database on a throwaway PostgreSQL instead of its SQLite file
    (scripts/test runs the core and rotation suites that way too)."""

    def __init__(
        self,
        base_dir: Path,
        name: str = "server",
        env: dict | None = None,
        args: list[str] | None = None,
        ca_bundle: str | None = None,
        region: str = REGION,
    ):
        """`args`: extra `rotary serve` flags. `ca_bundle`: the server serves TLS (pass
        --tls-cert/--tls-key in `args`) with a certificate signed by this CA file.
        `region`: the server's `--region`."""
        self.base_dir = Path(base_dir)
        self.extra_env = dict(env or {})
        self.extra_args = list(args or [])
        self.ca_bundle = ca_bundle
        self.region = region
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.environ.get("ROTARY_TEST_STORE") == "postgres" and "--store" not in self.extra_args:
            self.extra_args += ["--store", _postgres_store_url()]
        self.log_path = self.base_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._log_fh = None

    @property
    def function_dir(self) -> Path:
        """The server's function directory (the default, DATA_DIR/functions)."""
        return self.data_dir / "functions"

    @property
    def url(self) -> str:
        scheme = "https" if self.ca_bundle else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "Server":
        if not os.path.exists(ROTARY_BIN):
            pytest.fail(f"rotary binary not found at {ROTARY_BIN} (set ROTARY_BIN)")
        self.port = free_port()
        env = dict(os.environ)
        env["ROTARY_ROOT_ACCESS_KEY_ID"] = ACCESS_KEY
        env["ROTARY_ROOT_SECRET_ACCESS_KEY"] = SECRET_KEY
        # Sandboxed rotation functions run as an unprivileged user that cannot reach a Python
        # installed under root's home: they use the venv scripts/test makes from the system
        # interpreter, and write what tests read in a directory shared for the session.
        env.setdefault("ROTARY_PYTHON", FUNCTION_PYTHON)
        # Functions inherit the server's PATH: the venv's aws CLI comes first.
        env["PATH"] = f"{FUNCTION_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.setdefault("ROTARY_FUNCTION_WRITABLE_DIRS", str(function_writable_root()))
        env.update(self.extra_env)
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(f"\n===== start port={self.port} at {time.time():.3f} =====\n".encode())
        self._log_fh.flush()
        self.proc = subprocess.Popen(
            [
                ROTARY_BIN, "serve",
                "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}",
                "--region", self.region,
                "--account-id", ACCOUNT,
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=self._log_fh,
            env=env,
        )
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"rotary exited with rc={rc} during startup; log tail:\n{self.log_tail()}"
                )
            try:
                ctx = None
                if self.ca_bundle:
                    import ssl

                    ctx = ssl.create_default_context(cafile=self.ca_bundle)
                with urllib.request.urlopen(self.url + "/health", timeout=2, context=ctx) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError) as e:  # not up yet
                last_err = e
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"rotary not healthy after {timeout}s ({last_err}); log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, simulates a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._close_log()

    def restart(self) -> "Server":
        self.kill()
        return self.start()

    def _close_log(self):
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def log_tail(self, n: int = 60) -> str:
        try:
            if self._log_fh is not None:
                self._log_fh.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "<no log>"

    def client(self, validate: bool = True, access_key: str = ACCESS_KEY,
               secret_key: str = SECRET_KEY, region: str = REGION):
        return make_client(self.url, validate=validate, access_key=access_key,
                           secret_key=secret_key, region=region)


def make_client(url: str, validate: bool = True, access_key: str = ACCESS_KEY,
                secret_key: str = SECRET_KEY, region: str = REGION, pool: int = 10,
                read_timeout: int = 30):
    """`pool`: connections kept for concurrent calls (tests calling from many threads)."""
    return boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            retries={"max_attempts": 1},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=read_timeout,
            max_pool_connections=pool,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Raw HTTP
# ---------------------------------------------------------------------------------------------
class _SigV4At(SigV4Auth):
    """SigV4Auth with an optional fixed signing time (for clock-skew tests)."""

    def __init__(self, credentials, service_name, region_name, when=None):
        super().__init__(credentials, service_name, region_name)
        self._when = when

    def add_auth(self, request):
        if self._when is None:
            return super().add_auth(request)
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


class RawResponse:
    """Unpacks as (status, headers, json); also has .body (bytes)."""

    def __init__(self, status, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __iter__(self):
        return iter((self.status, self.headers, self.json))

    def __repr__(self):
        return f"RawResponse({self.status}, {self.body[:300]!r})"


def signed_request(url, target, body, headers=None, *, access_key=ACCESS_KEY,
                   secret_key=SECRET_KEY, region=REGION, service="secretsmanager",
                   when=None, content_type=CONTENT_TYPE, unsigned_payload=False,
                   content_sha256=None, unsigned_headers=()):
    """Returns (headers dict, body bytes) of a request signed like botocore signs it.

    Options for negative tests (all off by default):
      unsigned_payload  send and sign `X-Amz-Content-SHA256: UNSIGNED-PAYLOAD` (botocore then
                        signs that string instead of the body's hash, as S3 clients may)
      content_sha256    send and sign `X-Amz-Content-SHA256` with this value (bytes are hashed)
      unsigned_headers  names of headers to send but leave out of SignedHeaders: they are
                        added after signing, so the signature is valid for the rest
    """
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    hdrs = {}
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if target is not None:
        hdrs["X-Amz-Target"] = target if "." in target else f"secretsmanager.{target}"
    hdrs.update(headers or {})
    if unsigned_payload:
        hdrs["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    if content_sha256 is not None:
        if isinstance(content_sha256, bytes):
            content_sha256 = hashlib.sha256(content_sha256).hexdigest()
        hdrs["X-Amz-Content-SHA256"] = content_sha256
    later = {}
    for name in unsigned_headers:
        for key in [k for k in hdrs if k.lower() == name.lower()]:
            later[key] = hdrs.pop(key)
    req = AWSRequest(method="POST", url=url + "/", data=body, headers=hdrs)
    _SigV4At(Credentials(access_key, secret_key), service, region, when).add_auth(req)
    out = dict(req.headers.items())
    out.update(later)
    return out, body


def send(url, headers, body, timeout=30) -> RawResponse:
    req = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return RawResponse(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return RawResponse(e.code, e.headers, e.read())


def raw_call(url, target, body=b"{}", headers=None, sign=True, **sign_kw) -> RawResponse:
    if sign:
        hdrs, body = signed_request(url, target, body, headers, **sign_kw)
    else:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {"Content-Type": sign_kw.get("content_type", CONTENT_TYPE)}
        if target is not None:
            hdrs["X-Amz-Target"] = target if "." in target else f"secretsmanager.{target}"
        hdrs.update(headers or {})
    return send(url, hdrs, body)


# ---------------------------------------------------------------------------------------------
# boto3 helpers
# ---------------------------------------------------------------------------------------------
def expect_error(call, code, message=None, **kwargs):
    """Call `call(**kwargs)`, assert a 400 ClientError with this code (and exact message)."""
    with pytest.raises(ClientError) as ei:
        call(**kwargs)
    resp = ei.value.response
    err = resp.get("Error", {})
    assert err.get("Code") == code, f"expected {code}, got {err!r}"
    if isinstance(message, re.Pattern):
        assert message.search(err.get("Message", "")), f"message {err.get('Message')!r}"
    elif message is not None:
        assert err.get("Message") == message, (
            f"message mismatch:\n  expected {message!r}\n  got      {err.get('Message')!r}"
        )
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert status == 400, f"expected HTTP 400 for {code}, got {status}"
    return resp


def strip_meta(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "ResponseMetadata"}


def _strip_access(obj):
    if isinstance(obj, dict):
        return {k: _strip_access(v) for k, v in obj.items() if k != "LastAccessedDate"}
    if isinstance(obj, list):
        return [_strip_access(v) for v in obj]
    return obj


def list_all_versions(sm, sid, include_deprecated=True):
    out, token = [], None
    for _ in range(100):
        kw = {"SecretId": sid, "IncludeDeprecated": include_deprecated}
        if token:
            kw["NextToken"] = token
        r = sm.list_secret_version_ids(**kw)
        out.extend(r.get("Versions", []))
        token = r.get("NextToken")
        if not token:
            return out
    raise AssertionError("ListSecretVersionIds pagination did not terminate")


def snapshot(sm, sid):
    """Observable state of one secret (for 'an error changed nothing' assertions).

    LastAccessedDate is excluded (reads made by the snapshot itself may set it).
    """
    try:
        d = sm.describe_secret(SecretId=sid)
    except ClientError as e:
        return {"error": e.response["Error"]["Code"]}
    state = {"describe": _strip_access(strip_meta(d))}
    if "DeletedDate" not in d:
        versions = list_all_versions(sm, sid)
        state["versions"] = _strip_access(versions)
        values = {}
        for v in versions:
            try:
                g = sm.get_secret_value(SecretId=sid, VersionId=v["VersionId"])
                values[v["VersionId"]] = g.get("SecretString", g.get("SecretBinary"))
            except ClientError as e:
                values[v["VersionId"]] = ("error", e.response["Error"]["Code"])
        state["values"] = values
    try:
        p = sm.get_resource_policy(SecretId=sid)
        state["policy"] = p.get("ResourcePolicy")
    except ClientError as e:
        state["policy"] = ("error", e.response["Error"]["Code"])
    return state


def stages(sm, sid):
    """VersionIdsToStages of a secret with each label list sorted."""
    d = sm.describe_secret(SecretId=sid)
    return {k: sorted(v) for k, v in d.get("VersionIdsToStages", {}).items()}


def midnight_utc_candidates(t0: float, t1: float):
    """Midnight-UTC epoch values for the day(s) spanning [t0, t1]."""
    return {int(t0 // 86400) * 86400, int(t1 // 86400) * 86400}


def find_nulls(obj, path="$"):
    """Paths of JSON nulls inside obj."""
    found = []
    if obj is None:
        found.append(path)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found.extend(find_nulls(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found.extend(find_nulls(v, f"{path}[{i}]"))
    return found


def utcnow():
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
