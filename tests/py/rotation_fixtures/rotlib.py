"""Helpers for the rotation tests (tests/py/test_rotation*.py).

Rotary's own API (`X-Amz-Target: rotary.<Op>`, same SigV4 as the AWS API), polling with a
bounded wait, and the expected-schedule arithmetic the tests compare the server against.
Nothing here imports server code.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import rotary_testlib as lib

FIXTURES = Path(__file__).resolve().parent
PY_ROTATOR = FIXTURES / "py_rotator.py"
# Functions come only from the server's function directory: Rotary(server) installs these
# fixtures there, and tests name them relative to it.
CLI_ROTATOR = "cli_rotator.sh"
PY_ROTATOR_COMMAND = "py_rotator"
TEMPLATE_DIR = "template"
HANDLERS_DIR = "handlers"
_INSTALLED = ("py_rotator.py", "cli_rotator.sh", "template", "handlers", "mysql_single_user")

GENERIC = f"arn:aws:lambda:{lib.REGION}:{lib.ACCOUNT}:function:rotary-generic-password"
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]

# AWS texts (spec §5.1).
PREVIOUS_NOT_COMPLETE = "A previous rotation isn't complete. That rotation will be reattempted."
NO_FUNCTION = "No Lambda rotation function ARN is associated with this secret."
NOT_INVOKABLE = (
    "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function "
    "policy grants access to the principal secretsmanager.amazonaws.com."
)
BOTH_SCHEDULES = "You cannot specify both rotation frequency and schedule expression together."

FINAL_OUTCOMES = ("Succeeded", "Failed", "Abandoned")


def lambda_arn(name: str) -> str:
    return f"arn:aws:lambda:{lib.REGION}:{lib.ACCOUNT}:function:{name}"


def python_command() -> str:
    """The process-function command running py_rotator.py (through a wrapper installed in
    the function directory, with the interpreter sandboxed functions use)."""
    return PY_ROTATOR_COMMAND


def install_fixtures(server: lib.Server) -> None:
    """Copies the function fixtures into `server`'s function directory (idempotent), as an
    operator installs functions: readable by everyone, writable by root only."""
    fdir = server.function_dir
    fdir.mkdir(exist_ok=True)
    for name in _INSTALLED:
        src, dst = FIXTURES / name, fdir / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    install_script(server, "true", "exit 0")
    install_script(server, PY_ROTATOR_COMMAND,
                   f'exec {lib.FUNCTION_PYTHON} "$(dirname "$0")/py_rotator.py" "$@"')
    for p in [fdir, *fdir.rglob("*")]:
        p.chmod(0o755)


def install_script(server: lib.Server, name: str, body: str) -> str:
    """Installs a /bin/sh script `name` with `body` in the function directory; returns the
    name, which is what a Command gives."""
    path = server.function_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return name


class Rotary:
    """Rotary's own API on one server."""

    def __init__(self, server: lib.Server):
        self.server = server
        install_fixtures(server)

    def script(self, name: str, body: str) -> str:
        """Installs a /bin/sh script in this server's function directory (see
        install_script); returns the Command that runs it."""
        return install_script(self.server, name, body)

    def call(self, op: str, body: dict | None = None) -> lib.RawResponse:
        return lib.raw_call(self.server.url, f"rotary.{op}", json.dumps(body or {}))

    def ok(self, op: str, body: dict | None = None) -> dict:
        r = self.call(op, body)
        assert r.status == 200, f"rotary.{op}({body}) -> {r.status} {r.body[:500]!r}"
        return r.json

    # functions ---------------------------------------------------------------------------
    def create_function(self, name: str, **spec) -> str:
        out = self.ok("CreateFunction", {"Name": name, **spec})
        assert out.get("FunctionArn") in (None, lambda_arn(name)), out
        return lambda_arn(name)

    def delete_function(self, name: str, force: bool = False) -> None:
        """`force`: delete even though secrets name it (refused otherwise, see #10)."""
        self.ok("DeleteFunction", {"Name": name, **({"Force": True} if force else {})})

    # history -----------------------------------------------------------------------------
    def history(self, sid: str, max_results: int = 100) -> list[dict]:
        return self.ok("GetRotationHistory", {"SecretId": sid, "MaxResults": max_results})[
            "Rotations"]

    def wait_history(self, sid: str, pred, timeout: float = 30.0, what: str = "") -> list[dict]:
        """Polls the history until pred(records) is true; returns the records."""
        last = None

        def check():
            nonlocal last
            last = self.history(sid)
            return pred(last)

        wait_for(check, timeout, what or f"history of {sid}", lambda: (
            f"last history: {json.dumps(last, indent=1)[:6000]}\n"
            f"server log tail:\n{self.server.log_tail(40)}"))
        return last

    def wait_outcome(self, sid: str, token: str | None = None, outcomes=FINAL_OUTCOMES,
                     timeout: float = 30.0, **match) -> dict:
        """Waits for the newest record (of `token`, if given) to reach one of `outcomes`;
        extra keyword arguments must match record fields too. Returns that record."""
        found = {}

        def pred(recs):
            for r in recs:
                if token is not None and r.get("Token") != token:
                    continue
                if any(r.get(k) != v for k, v in match.items()):
                    continue
                if r.get("Outcome") in outcomes:
                    found["r"] = r
                    return True
                return False
            return False

        self.wait_history(sid, pred, timeout,
                          f"a rotation record of {sid} (token {token}, {match}) in {outcomes}")
        return found["r"]

    # compliance / schedule / clock -------------------------------------------------------
    def compliance_of(self, name: str) -> list[str] | None:
        """The finding checks of secret `name` in the compliance report (None if compliant)."""
        rep = self.ok("GetComplianceReport")
        for s in rep["Secrets"]:
            if s["Name"] == name:
                return s["Findings"]
        return None

    def advance(self, seconds: float) -> float:
        return as_epoch(self.ok("AdvanceTestClock", {"Seconds": int(seconds)})["Now"])


def wait_for(pred, timeout: float, what: str, detail=lambda: "", interval: float = 0.05):
    """Polls pred() (short interval, bounded total wait); fails with `detail()` on timeout."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def as_epoch(v) -> float:
    """A JSON timestamp (epoch number) or a boto3 datetime, as epoch seconds."""
    if isinstance(v, dt.datetime):
        return v.timestamp()
    return float(v)


def stage_map(sm, sid) -> dict[str, list[str]]:
    return lib.stages(sm, sid)


def pending_free(stages: dict) -> bool:
    return not any("AWSPENDING" in s for s in stages.values())


def current_of(stages: dict) -> str | None:
    for vid, s in stages.items():
        if "AWSCURRENT" in s:
            return vid
    return None


# ------------------------------------------------------------------------------------------
# Expected schedules (spec §5.7), computed independently of the server.
# ------------------------------------------------------------------------------------------
DAY = 86400


def day_start(t: float) -> int:
    return int(t // DAY) * DAY


def days_window(now: float, days: int, last_rotated: float | None = None) -> tuple[int, int]:
    """[start, end) of the whole-UTC-day window N days after the last rotation (or today)."""
    base = day_start(last_rotated if last_rotated is not None else now)
    start = base + days * DAY
    return start, start + DAY


def cron_1_15_16h_2h_window(now: float, after_start: float | None = None) -> tuple[int, int]:
    """The first window of `cron(0 16 1,15 * ? *)` + `Duration 2h` ending after `now` (and,
    with `after_start`, starting after it: that window's rotation already happened)."""
    d = dt.datetime.fromtimestamp(day_start(now), dt.timezone.utc)
    for _ in range(80):
        if d.day in (1, 15):
            start = int(d.timestamp()) + 16 * 3600
            end = start + 2 * 3600
            if end > now and (after_start is None or start > after_start):
                return start, end
        d += dt.timedelta(days=1)
    raise AssertionError("no window found")


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
