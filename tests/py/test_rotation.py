"""Black-box rotation tests (spec §5, DESIGN.md): RotateSecret / CancelRotateSecret, the four-step
driver with process, Python-handler and built-in functions, failures and retries, re-drive,
abandon, crash safety, schedules with a moved clock, compliance report and webhooks.

Most tests share one module server started with fast retries (2 attempts, 1 s base) and
isolate by unique names; tests that move the clock, kill the server or need other settings
start their own. Function code lives in rotation_fixtures/.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import rotary_testlib as lib
from rotary_testlib import expect_error, snapshot, stages, unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

from rotlib import (  # noqa: E402
    BOTH_SCHEDULES,
    CLI_ROTATOR,
    FINAL_OUTCOMES,
    GENERIC,
    HANDLERS_DIR,
    NO_FUNCTION,
    NOT_INVOKABLE,
    PREVIOUS_NOT_COMPLETE,
    STEPS,
    TEMPLATE_DIR,
    Rotary,
    as_epoch,
    cron_1_15_16h_2h_window,
    days_window,
    iso,
    lambda_arn,
    pending_free,
    python_command,
    wait_for,
)

CANARY_VAR = "ROTATION_TEST_CANARY"
MODULE_ENV = {
    "ROTARY_ROTATION_MAX_ATTEMPTS": "2",
    "ROTARY_ROTATION_RETRY_BASE_SECONDS": "1",
    CANARY_VAR: "server-env-must-not-reach-functions",
}


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rsrv(tmp_path_factory):
    srv = lib.Server(tmp_path_factory.mktemp("rotation"), name="rotation", env=MODULE_ENV)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rsm(rsrv):
    return rsrv.client()


@pytest.fixture(scope="module")
def rsm_raw(rsrv):
    return rsrv.client(validate=False)


@pytest.fixture(scope="module")
def rot(rsrv):
    return Rotary(rsrv)


@pytest.fixture(autouse=True)
def _rotation_server_still_alive(request):
    yield
    if "rsrv" in request.fixturenames:
        srv = request.getfixturevalue("rsrv")
        if not srv.alive():
            pytest.fail(f"rotation server died during {request.node.name}; log tail:\n"
                        f"{srv.log_tail()}")


@pytest.fixture
def make_server(tmp_path):
    """Starts private servers with extra ROTARY_* env; stops them at teardown."""
    servers = []

    def _make(**env):
        srv = lib.Server(tmp_path / f"server{len(servers)}", name=f"own{len(servers)}",
                         env={k: str(v) for k, v in env.items()})
        servers.append(srv)
        srv.start()
        return srv

    yield _make
    for s in servers:
        s.stop()


@pytest.fixture
def markers():
    """A directory the sandboxed function may write (see lib.function_writable_dir)."""
    return lib.function_writable_dir()


def fname(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def json_secret(password: str | None = None) -> str:
    return json.dumps({"username": "app", "password": password or f"orig-{uuid.uuid4().hex}"})


def step_names(rec):
    return [s["Step"] for s in rec["Steps"]]


def assert_steps_succeeded(rec, names=STEPS):
    assert step_names(rec) == list(names), rec
    for s in rec["Steps"]:
        assert s["Outcome"] == "Succeeded", s
        assert "Error" not in s, s
        assert s["EndedAt"] >= s["StartedAt"], s


def assert_rotated(sm, sid, old_vid, token):
    """The AWS end state of a successful rotation: {old: [AWSPREVIOUS], new: [AWSCURRENT]}."""
    assert stages(sm, sid) == {old_vid: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    got = sm.get_secret_value(SecretId=sid)
    assert got["VersionId"] == token
    assert sorted(got["VersionStages"]) == ["AWSCURRENT"]
    return got


def read_lines(p: Path) -> list[str]:
    return p.read_text().splitlines() if p.exists() else []


# ------------------------------------------------------------------------------------------
# 1. Process function: POSIX sh + aws CLI
# ------------------------------------------------------------------------------------------
def test_process_function_sh_and_aws_cli_rotates(rsrv, rsm, rot, markers):
    other = unique_name("rot-other")
    rsm.create_secret(Name=other, SecretString="another-secret-value")
    name = unique_name("rot-cli")
    orig = rsm.create_secret(Name=name, SecretString="initial-password-value")["VersionId"]
    fn = fname("cli")
    arn = rot.create_function(fn, Command=CLI_ROTATOR, TimeoutSeconds=60,
                              Env={"MARKER_DIR": str(markers), "OTHER_SECRET": other})

    desc = rot.ok("DescribeFunction", {"Name": fn})
    assert desc["Name"] == fn and desc["FunctionArn"] == arn and desc["BuiltIn"] is False
    assert desc.get("Command") == CLI_ROTATOR, desc
    # Env values may be credentials: only their names are shown.
    assert sorted(desc.get("EnvNames", [])) == ["MARKER_DIR", "OTHER_SECRET"], desc
    assert "Env" not in desc and str(markers) not in json.dumps(desc), desc
    listed = {f["Name"]: f for f in rot.ok("ListFunctions")["Functions"]}
    assert fn in listed and listed["rotary-generic-password"]["BuiltIn"] is True

    t0 = time.time()
    resp = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})
    token = resp["VersionId"]
    assert resp["Name"] == name and resp["ARN"] == rsm.describe_secret(SecretId=name)["ARN"]
    rec = rot.wait_outcome(name, token, timeout=90)
    t1 = time.time()
    assert rec["Outcome"] == "Succeeded", json.dumps(rec, indent=1)
    recs = rot.history(name)
    assert len(recs) == 1, recs
    assert rec["Trigger"] == "api" and rec["Attempt"] == 1, rec
    assert rec["TestOnly"] is False and rec["Late"] is False, rec
    assert "FailedStep" not in rec and "Error" not in rec, rec
    assert t0 - 1 <= rec["StartedAt"] <= rec["EndedAt"] <= t1 + 1, rec
    assert_steps_succeeded(rec)

    created = (markers / "created.txt").read_text()
    assert re.fullmatch(r"[A-Za-z0-9]{24}", created), created
    got = assert_rotated(rsm, name, orig, token)
    assert got["SecretString"] == created
    prev = rsm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == orig and prev["SecretString"] == "initial-password-value"
    assert read_lines(markers / "steps.log") == [f"{s} {token}" for s in STEPS]
    assert (markers / "set.txt").read_text().strip() == token
    assert (markers / "tested.txt").read_text().strip() == token

    # The temporary credentials act only on the secret being rotated.
    other_result = (markers / "other.txt").read_text()
    assert "AccessDeniedException" in other_result, other_result
    assert "READ-SUCCEEDED" not in other_result
    # The function's environment: what Rotary gives, the function's Env, nothing else.
    env_names = set(read_lines(markers / "env-names.txt"))
    for want in ("SECRETS_MANAGER_ENDPOINT", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "MARKER_DIR", "OTHER_SECRET", "PATH"):
        assert want in env_names, (want, sorted(env_names))
    for leak in (CANARY_VAR, "ROTARY_ROOT_ACCESS_KEY_ID", "ROTARY_ROOT_SECRET_ACCESS_KEY",
                 "ROTARY_ROTATION_MAX_ATTEMPTS"):
        assert leak not in env_names, (leak, sorted(env_names))
    # ... and they stop working once the step is over.
    akid, secret, session = read_lines(markers / "creds.txt")[:3]
    assert akid not in (lib.ACCESS_KEY, "") and secret != lib.SECRET_KEY
    stale = boto3.session.Session().client(
        "secretsmanager", endpoint_url=rsrv.url, region_name=lib.REGION,
        aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=session or None,
        config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as ei:
        stale.get_secret_value(SecretId=name)
    assert ei.value.response["Error"]["Code"] in (
        "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"), \
        ei.value.response

    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == arn
    assert d["RotationRules"] == {"AutomaticallyAfterDays": 30}
    last = d["LastRotatedDate"].timestamp()
    assert t0 - 1 <= last <= t1 + 1
    start, end = days_window(last, 30, last_rotated=last)
    assert d["NextRotationDate"].timestamp() == end - 1, (iso(d["NextRotationDate"].timestamp()),
                                                           iso(end - 1))
    assert rot.compliance_of(name) is None


def test_temporary_credentials_are_least_privilege(rsm, rot, markers):
    """A rotation function's credentials can run the rotation of its own secret and nothing
    else: no other secret, no account-wide call, no admin change to its own secret, no call
    to Rotary's own API (registering a function would run code on the server)."""
    other = unique_name("rot-probe-other")
    rsm.create_secret(Name=other, SecretString="probe-other-value")
    other_before = snapshot(rsm, other)
    probe_file = markers / "probe.json"
    arn = rot.create_function(fname("probe"), Command=python_command(), Env={
        "MARKER_DIR": str(markers), "OTHER_SECRET": other, "PROBE_FILE": str(probe_file)})
    name = unique_name("rot-probe")
    orig = rsm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    rec = rot.wait_outcome(name, token, timeout=40)
    result = json.loads(probe_file.read_text())
    allowed = {"GetRandomPassword", "own.DescribeSecret", "own.ListSecretVersionIds"}
    wrong = {k: v for k, v in result.items()
             if (v == "OK") != (k in allowed) or (k not in allowed and v != "AccessDeniedException")}
    assert not wrong, f"unexpected results for the rotation credentials: {wrong}"
    assert rec["Outcome"] == "Succeeded", rec
    assert_rotated(rsm, name, orig, token)
    assert snapshot(rsm, other) == other_before
    d = rsm.describe_secret(SecretId=name)
    assert "Description" not in d and "Tags" not in d and "DeletedDate" not in d, d
    assert "made-by-fn" not in {f["Name"] for f in rot.ok("ListFunctions")["Functions"]}


# ------------------------------------------------------------------------------------------
# 2. AWS's rotation template as a Python handler, unmodified
# ------------------------------------------------------------------------------------------
def test_aws_template_python_handler_rotates_unmodified(rsm, rot):
    name = unique_name("rot-template")
    orig_value = "template-original-value"
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    fn = fname("template")
    arn = rot.create_function(fn, PythonHandler="lambda_function.lambda_handler",
                              CodeDir=TEMPLATE_DIR)
    desc = rot.ok("DescribeFunction", {"Name": arn})
    assert desc["Name"] == fn and desc.get("Handler") == "lambda_function.lambda_handler", desc

    # RotateImmediately=false: the template's testSecret runs on a copy of AWSCURRENT.
    assert "VersionId" not in rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                                                RotateImmediately=False)
    trec = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True, timeout=60)
    assert trec["Outcome"] == "Succeeded", trec
    assert_steps_succeeded(trec, ["testSecret"])
    wait_for(lambda: len(lib.list_all_versions(rsm, name)) == 1, 10, "test version removal")
    assert stages(rsm, name) == {orig: ["AWSCURRENT"]}
    assert rsm.get_secret_value(SecretId=name)["SecretString"] == orig_value

    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                              RotationRules={"ScheduleExpression": "rate(10 days)"})["VersionId"]
    rec = rot.wait_outcome(name, token, timeout=60)
    assert rec["Outcome"] == "Succeeded", rec
    assert_steps_succeeded(rec)
    got = assert_rotated(rsm, name, orig, token)
    new = got["SecretString"]
    assert len(new) == 32 and new != orig_value, new
    assert not set(new) & set("/@\"'\\"), new
    outputs = {s["Step"]: s.get("Output", "") for s in rec["Steps"]}
    assert f"createSecret: Successfully put secret for ARN {rsm.describe_secret(SecretId=name)['ARN']}" \
        in outputs["createSecret"], outputs
    assert f"finishSecret: Successfully set AWSCURRENT stage to version {token}" \
        in outputs["finishSecret"], outputs
    assert new not in json.dumps(rot.history(name)), "a secret value leaked into the history"

    # `aws secretsmanager rotate-secret --secret-id X`: rotate now with the stored settings.
    token2 = rsm.rotate_secret(SecretId=name)["VersionId"]
    assert token2 != token
    rec2 = rot.wait_outcome(name, token2, timeout=60)
    assert rec2["Outcome"] == "Succeeded", rec2
    got2 = assert_rotated(rsm, name, token, token2)
    assert got2["SecretString"] != new
    assert [r["Token"] for r in rot.history(name)] == [token2, token, trec["Token"]]
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationRules"]["ScheduleExpression"] == "rate(10 days)"
    assert d["RotationRules"].get("AutomaticallyAfterDays") == 10, d["RotationRules"]


# ------------------------------------------------------------------------------------------
# 3. A failing step: retries, Failed, AWSCURRENT untouched, then a re-drive with the same token
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_failed_step_retries_fails_then_redrive_completes(step, rsm, rot, markers):
    fn = fname(f"fail-{step}")
    env = {"MARKER_DIR": str(markers), "FAIL_STEP": step}
    arn = rot.create_function(fn, Command=python_command(), Env=env)
    name = unique_name(f"rot-fail-{step}")
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]

    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                              RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    rot.wait_outcome(name, token, outcomes=("Failed",), timeout=40)
    recs = rot.history(name)
    assert [r["Outcome"] for r in recs] == ["Failed", "Retrying"], recs
    assert [r["Attempt"] for r in recs] == [2, 1], recs
    idx = STEPS.index(step)
    for r in recs:
        assert r["Token"] == token and r["Trigger"] == "api", r
        assert r["FailedStep"] == step, r
        assert f"simulated failure in {step}" in r["Error"], r
        assert "status 1" in r["Error"], r
        # Each attempt starts over from createSecret with the same token.
        assert step_names(r) == STEPS[:idx + 1], r
        assert [s["Outcome"] for s in r["Steps"]] == ["Succeeded"] * idx + ["Failed"], r
        assert f"simulated failure in {step}" in r["Steps"][-1]["Error"], r
    failed, retrying = recs
    assert "NextAttemptAt" in retrying and "NextAttemptAt" not in failed, recs
    delay = retrying["NextAttemptAt"] - retrying["EndedAt"]
    assert 0.4 <= delay <= 1.6, f"backoff {delay}s for base 1s ±50%"
    assert failed["StartedAt"] >= retrying["NextAttemptAt"] - 0.05, recs

    # AWSCURRENT untouched and readable; AWSPENDING left on the pending version.
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig and got["SecretString"] == orig_value
    assert stages(rsm, name) == {orig: ["AWSCURRENT"], token: ["AWSPENDING"]}
    if step == "createSecret":
        expect_error(rsm.get_secret_value, "ResourceNotFoundException", SecretId=name,
                     VersionId=token, VersionStage="AWSPENDING")
    else:
        pending = rsm.get_secret_value(SecretId=name, VersionId=token)
        assert pending["SecretString"] == (markers / "created.txt").read_text()
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and "LastRotatedDate" not in d, d

    report = rot.ok("GetComplianceReport")
    assert report["NonCompliant"] == len(report["Secrets"]) <= report["SecretsChecked"], \
        {k: report[k] for k in ("NonCompliant", "SecretsChecked")}
    findings = rot.compliance_of(name)
    assert findings is not None, "a failed rotation must be reported"
    checks = {f["Check"]: f["Detail"] for f in findings}
    assert "LastRotationFailed" in checks and "PendingOnNonCurrentVersion" in checks, findings
    assert f"simulated failure in {step}" in checks["LastRotationFailed"], findings

    # Fix the function (re-register it without the failure), then RotateSecret re-drives.
    rot.delete_function(fn, force=True)  # the secret still names it
    assert rot.call("DescribeFunction", {"Name": fn}).status == 400
    rot.create_function(fn, Command=python_command(), Env={"MARKER_DIR": str(markers)})
    expect_error(rsm.rotate_secret, "InvalidRequestException", PREVIOUS_NOT_COMPLETE,
                 SecretId=name)
    rec = rot.wait_outcome(name, token, timeout=30, Trigger="redrive")
    assert rec["Outcome"] == "Succeeded", rec
    assert rec["Token"] == token and rec["Attempt"] == 1, rec
    assert_steps_succeeded(rec)
    got = assert_rotated(rsm, name, orig, token)
    assert got["SecretString"] == (markers / "created.txt").read_text()
    assert json.loads(got["SecretString"])["password"] != json.loads(orig_value)["password"]
    assert [r["Outcome"] for r in rot.history(name)] == ["Succeeded", "Failed", "Retrying"]
    assert [r["Outcome"] for r in rot.history(name, max_results=1)] == ["Succeeded"]
    assert {line.split()[1] for line in read_lines(markers / "steps.log")} == {token}
    arn_of_secret = rsm.describe_secret(SecretId=name)["ARN"]
    for line in read_lines(markers / "events.log"):
        ev = json.loads(line)
        assert set(ev) == {"Step", "SecretId", "ClientRequestToken", "RotationToken"}, ev
        assert ev["SecretId"] == arn_of_secret and ev["ClientRequestToken"] == token, ev
        assert re.fullmatch(r"[A-Za-z0-9-]{36,256}", ev["RotationToken"]), ev
    assert rot.compliance_of(name) is None
    d = rsm.describe_secret(SecretId=name)
    assert "LastRotatedDate" in d and d["NextRotationDate"] > d["LastRotatedDate"]


@pytest.mark.parametrize("cap", [None, 1], ids=["no-cap", "cap-1s"])
def test_retry_backoff_doubles_per_attempt_up_to_the_cap(cap, make_server, markers):
    env = {"ROTARY_ROTATION_MAX_ATTEMPTS": 3, "ROTARY_ROTATION_RETRY_BASE_SECONDS": 1}
    if cap is not None:
        env["ROTARY_ROTATION_RETRY_CAP_SECONDS"] = cap
    srv = make_server(**env)
    sm, rot = srv.client(), Rotary(srv)
    arn = rot.create_function("fails", Command=rot.script("fails.sh", "echo 'no luck' >&2; exit 1"))
    name = unique_name("rot-backoff")
    sm.create_secret(Name=name, SecretString="backoff-value")
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    rot.wait_outcome(name, token, outcomes=("Failed",), timeout=30)
    recs = rot.history(name)[::-1]
    assert [(r["Attempt"], r["Outcome"]) for r in recs] == [
        (1, "Retrying"), (2, "Retrying"), (3, "Failed")], recs
    delays = [r["NextAttemptAt"] - r["EndedAt"] for r in recs[:2]]
    assert 0.45 <= delays[0] <= 1.55, delays
    if cap is None:
        assert 0.95 <= delays[1] <= 3.05, delays
    else:
        assert 0.45 <= delays[1] <= 1.55, delays
    for prev, nxt in zip(recs, recs[1:]):
        assert nxt["StartedAt"] >= prev["NextAttemptAt"] - 0.05, (prev, nxt)
        assert nxt["Token"] == token


def test_test_only_rotation_tests_a_copy_of_awscurrent(rsm, rot, markers):
    arn = rot.create_function(fname("tester"), Command=python_command(),
                              Env={"MARKER_DIR": str(markers)})
    name = unique_name("rot-testonly")
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    before = rsm.describe_secret(SecretId=name)
    resp = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotateImmediately=False,
                             RotationRules={"AutomaticallyAfterDays": 10})
    assert "VersionId" not in resp, resp
    rec = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True, timeout=30)
    assert rec["Outcome"] == "Succeeded", rec
    assert_steps_succeeded(rec, ["testSecret"])
    tested = json.loads((markers / "tested.txt").read_text())
    assert tested["value"] == orig_value, "testSecret must see a copy of AWSCURRENT"
    assert tested["token"] == rec["Token"] != orig
    assert [line.split()[0] for line in read_lines(markers / "steps.log")] == ["testSecret"]
    wait_for(lambda: len(lib.list_all_versions(rsm, name)) == 1, 10,
             "the test version to be removed")
    assert stages(rsm, name) == {orig: ["AWSCURRENT"]}
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and "LastRotatedDate" not in d, d
    assert d["CreatedDate"] == before["CreatedDate"]
    assert rot.compliance_of(name) is None


def test_test_only_rotation_failure_removes_the_test_version(rsm, rot, markers):
    arn = rot.create_function(fname("fail-test"), Command=python_command(),
                              Env={"MARKER_DIR": str(markers), "FAIL_STEP": "testSecret"})
    name = unique_name("rot-testfail")
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    resp = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotateImmediately=False,
                             RotationRules={"AutomaticallyAfterDays": 10})
    assert "VersionId" not in resp, resp
    rec = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True, timeout=30)
    assert rec["Outcome"] == "Failed" and rec["FailedStep"] == "testSecret", rec
    assert step_names(rec) == ["testSecret"], rec
    assert all(r["TestOnly"] for r in rot.history(name))
    # The function saw the test version, which carried AWSPENDING and a copy of AWSCURRENT.
    (line,) = read_lines(markers / "steps.log")
    test_vid = line.split()[1]
    assert test_vid != orig
    wait_for(lambda: len(lib.list_all_versions(rsm, name)) == 1, 10,
             "the test version to be removed")
    assert stages(rsm, name) == {orig: ["AWSCURRENT"]}
    assert rsm.get_secret_value(SecretId=name)["SecretString"] == orig_value
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == arn, d
    assert "LastRotatedDate" not in d, d
    checks = {f["Check"] for f in rot.compliance_of(name) or []}
    assert "LastRotationFailed" in checks and "PendingOnNonCurrentVersion" not in checks, checks


# ------------------------------------------------------------------------------------------
# 4. Bad functions and bad requests
# ------------------------------------------------------------------------------------------
def _rotate_expect_failure(rsm, rot, arn, name, failed_step, timeout=40):
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                              RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    rot.wait_outcome(name, token, outcomes=("Failed",), timeout=timeout)
    recs = rot.history(name)
    assert [r["Outcome"] for r in recs] == ["Failed", "Retrying"], recs
    for r in recs:
        assert r["FailedStep"] == failed_step and r["Token"] == token, r
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig and got["SecretString"] == orig_value
    assert stages(rsm, name) == {orig: ["AWSCURRENT"], token: ["AWSPENDING"]}
    return recs, token


def _pids_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds `entry` (`NAME=value`): how a test finds a
    sandboxed function's processes, whose own pids are those of its PID namespace."""
    found = []
    want = entry.encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env and not _gone_or_zombie(int(d.name)):
            found.append(int(d.name))
    return found


def _gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_hanging_function_times_out(rsm, rot):
    hang_id = uuid.uuid4().hex
    cmd = rot.script("hang.sh", "echo waiting forever; exec sleep 60")
    arn = rot.create_function(fname("hang"), TimeoutSeconds=2, Command=cmd,
                              Env={"HANG_ID": hang_id})
    recs, _ = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-hang"), "createSecret")
    for r in recs:
        assert re.search(r"timed? ?out", r["Error"], re.I), r
        s = r["Steps"][-1]
        assert s["Outcome"] == "Failed" and re.search(r"timed? ?out", s["Error"], re.I), s
        assert 1.5 <= s["EndedAt"] - s["StartedAt"] <= 10, s
        assert "waiting forever" in s.get("Output", ""), s
    wait_for(lambda: not _pids_with_env(f"HANG_ID={hang_id}"), 10,
             "timed-out function processes to be killed")


def test_function_printing_garbage_but_storing_nothing_fails_at_create(rsm, rot):
    cmd = ("head -c 4096 /dev/urandom; printf '\\000\\377{not json\\033[31m\\n'; "
           "head -c 2048 /dev/urandom >&2; exit 0")
    arn = rot.create_function(fname("garbage"), Command=rot.script("garbage.sh", cmd))
    recs, token = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-garbage"),
                                         "createSecret")
    for r in recs:
        # The step "succeeded" but left the pending version empty: the attempt fails.
        assert "did not store a value for the pending version" in r["Error"], r
        assert isinstance(r["Steps"][-1].get("Output", ""), str)
    expect_error(rsm.get_secret_value, "ResourceNotFoundException",
                 SecretId=recs[0]["ARN"], VersionId=token, VersionStage="AWSPENDING")


def test_function_that_never_moves_awscurrent_fails_completion_check(rsm, rot, markers):
    arn = rot.create_function(fname("nofinish"), Command=python_command(),
                              Env={"MARKER_DIR": str(markers), "SKIP_FINISH": "1"})
    recs, token = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-nofinish"),
                                         "finishSecret")
    for r in recs:
        # Every step "succeeded", but AWSCURRENT never moved: the rotation did not happen.
        assert_steps_succeeded(r)
        assert "AWSCURRENT" in r["Error"], r
    pending = rsm.get_secret_value(SecretId=recs[0]["ARN"], VersionId=token)
    assert pending["SecretString"] == (markers / "created.txt").read_text()


def test_garbage_output_with_a_correct_rotation_succeeds_and_values_are_redacted(rsm, rot,
                                                                                  markers):
    arn = rot.create_function(fname("noisy"), Command=python_command(), Env={
        "MARKER_DIR": str(markers), "GARBAGE": "1", "PRINT_VALUES": "1"})
    name = unique_name("rot-noisy")
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    rec = rot.wait_outcome(name, token, timeout=40)
    assert rec["Outcome"] == "Succeeded", rec
    assert_steps_succeeded(rec)
    got = assert_rotated(rsm, name, orig, token)
    new_value = got["SecretString"]
    history_text = json.dumps(rot.history(name))
    for v in (orig_value, new_value, json.loads(orig_value)["password"],
              json.loads(new_value)["password"]):
        assert v not in history_text, f"secret value {v[:12]}… leaked into rotation history"
    test_out = next(s for s in rec["Steps"] if s["Step"] == "testSecret")["Output"]
    assert "pending value: [REDACTED]" in test_out, test_out[-500:]
    assert "pending again: [REDACTED]" in test_out, test_out[-500:]
    for s in rec["Steps"]:
        assert len(s.get("Output", "")) <= 64 * 1024, (s["Step"], len(s["Output"]))


def test_function_exiting_nonzero_fails_with_status_and_stderr(rsm, rot):
    arn = rot.create_function(fname("exit3"), Command=rot.script("exit3.sh", (
        "echo 'working on it'; echo 'first problem' >&2; echo 'db refused login' >&2; exit 3")))
    recs, _ = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-exit"), "createSecret")
    for r in recs:
        assert r["Error"] == "createSecret failed: exited with status 3: db refused login", r
        s = r["Steps"][-1]
        assert s["Error"] == "exited with status 3: db refused login", s
        assert "working on it" in s["Output"] and "first problem" in s["Output"], s


def test_python_handler_exception_fails_with_its_type_and_message(rsm, rot):
    arn = rot.create_function(fname("raises"), PythonHandler="bad_handlers.raises",
                              CodeDir=HANDLERS_DIR)
    recs, _ = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-raises"), "createSecret")
    for r in recs:
        assert "ValueError: Unable to log into database with pending secret of secret ARN " \
            in r["Error"], r
        out = r["Steps"][-1].get("Output", "")
        assert "Traceback" in out, out
        assert "ROTARY-LAMBDA-ERROR" not in out, out


def test_python_handler_printing_garbage_and_a_forged_marker_succeeds(rsm, rot, markers):
    arn = rot.create_function(fname("forged"), PythonHandler="bad_handlers.noisy_rotation",
                              CodeDir=HANDLERS_DIR, Env={"MARKER_DIR": str(markers)})
    name = unique_name("rot-forged")
    orig = rsm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    rec = rot.wait_outcome(name, token, timeout=40)
    assert rec["Outcome"] == "Succeeded", rec
    assert_steps_succeeded(rec)
    got = assert_rotated(rsm, name, orig, token)
    assert got["SecretString"] == (markers / "created.txt").read_text()


@pytest.mark.parametrize("shape,error", [
    ("binary", "the pending value is binary but AWSCURRENT is a string"),
    ("drop-member", "the pending value lacks members of AWSCURRENT: username"),
    ("plain", "AWSCURRENT is a JSON object but the pending value is not"),
])
def test_function_storing_a_value_of_the_wrong_shape_fails(shape, error, rsm, rot, markers):
    """A pending value whose shape differs from AWSCURRENT's (binary for a string, a JSON
    object missing members, a bare string for a JSON object) must never become current."""
    arn = rot.create_function(fname(f"shape-{shape}"), Command=python_command(),
                              Env={"MARKER_DIR": str(markers), "WRITE_SHAPE": shape})
    recs, token = _rotate_expect_failure(rsm, rot, arn, unique_name(f"rot-shape-{shape}"),
                                         "createSecret")
    for r in recs:
        assert error in r["Error"], r
        assert r["Steps"][-1]["Outcome"] == "Failed", r
        created = (markers / "created.txt").read_text()
        assert created not in json.dumps(r), "the error must not include the value"


def test_generic_password_builtin_on_a_binary_secret_fails_cleanly(rsm, rot):
    name = unique_name("rot-bin-generic")
    orig = rsm.create_secret(Name=name, SecretBinary=b"\x00\xffbinary")["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC)["VersionId"]
    rot.wait_outcome(name, token, outcomes=("Failed",), timeout=30)
    recs = rot.history(name)
    assert [r["Outcome"] for r in recs] == ["Failed", "Retrying"], recs
    assert all(r["FailedStep"] == "createSecret" and "string" in r["Error"] for r in recs), recs
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig and got["SecretBinary"] == b"\x00\xffbinary"


@pytest.mark.parametrize("handler,error", [
    ("no_such_module.lambda_handler", "Runtime.ImportModuleError: Unable to import module 'no_such_module'"),
    ("bad_handlers.no_such_function", "Runtime.HandlerNotFound"),
])
def test_python_handler_that_cannot_load_fails_clearly(handler, error, rsm, rot):
    arn = rot.create_function(fname("noload"), PythonHandler=handler, CodeDir=HANDLERS_DIR)
    recs, _ = _rotate_expect_failure(rsm, rot, arn, unique_name("rot-noload"), "createSecret")
    for r in recs:
        assert error in r["Error"], r


def test_create_function_validation(rot, tmp_path):
    name = fname("valid")
    rot.create_function(name, Command="true")
    bad = [
        ({"Name": name, "Command": "true"}, "ResourceExistsException"),
        ({"Name": "rotary-mine", "Command": "true"}, "InvalidParameterException"),
        ({"Name": "has space", "Command": "true"}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": ""}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "true", "Url": "http://127.0.0.1:1/"},
         "InvalidParameterException"),
        ({"Name": fname("x")}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "true", "TimeoutSeconds": 0}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "true", "TimeoutSeconds": 901},
         "InvalidParameterException"),
        ({"Name": fname("x"), "PythonHandler": "m.f", "CodeDir": "relative/dir"},
         "InvalidParameterException"),
        ({"Name": fname("x"), "PythonHandler": "m.f", "CodeDir": str(tmp_path / "missing")},
         "InvalidParameterException"),
        ({"Name": fname("x"), "PythonHandler": "not a handler", "CodeDir": str(tmp_path)},
         "InvalidParameterException"),
        ({"Name": fname("x"), "Url": "ftp://127.0.0.1/"}, "InvalidParameterException"),
        # Only programs the operator installed in the function directory, never a shell.
        ({"Name": fname("x"), "Command": "sh -c 'id'"}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "/bin/true"}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "../../../bin/true"}, "InvalidParameterException"),
        ({"Name": fname("x"), "Command": "true 'unterminated"}, "InvalidParameterException"),
        ({"Name": fname("x"), "PythonHandler": "m.f", "CodeDir": "/usr/lib/python3"},
         "InvalidParameterException"),
    ]
    names_before = {f["Name"] for f in rot.ok("ListFunctions")["Functions"]}
    for body, code in bad:
        r = rot.call("CreateFunction", body)
        assert r.status == 400 and r.json["__type"].endswith(code), (body, r)
        assert r.json.get("message") or r.json.get("Message"), r
    assert {f["Name"] for f in rot.ok("ListFunctions")["Functions"]} == names_before
    r = rot.call("DeleteFunction", {"Name": "rotary-generic-password"})
    assert r.status == 400, r
    r = rot.call("DeleteFunction", {"Name": fname("never")})
    assert r.status == 400 and r.json["__type"].endswith("ResourceNotFoundException"), r


def test_rotate_secret_with_a_token_of_an_existing_version_is_refused(rsm, rot):
    name = unique_name("rot-token-used")
    orig = rsm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False)
    rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
    before = snapshot(rsm, name)
    expect_error(rsm.rotate_secret, "ResourceExistsException", SecretId=name,
                 ClientRequestToken=orig)
    assert snapshot(rsm, name) == before


def _no_rotation_fields(d):
    return not ({"RotationEnabled", "RotationLambdaARN", "RotationRules", "NextRotationDate",
                 "LastRotatedDate"} & set(d))


def test_unknown_or_missing_function_is_rejected_and_changes_nothing(rsm, rot):
    name = unique_name("rot-unknown")
    rsm.create_secret(Name=name, SecretString="value-unknown-fn")
    before = snapshot(rsm, name)
    for bad in (lambda_arn(fname("never-registered")),
                f"arn:aws:lambda:eu-west-1:{lib.ACCOUNT}:function:rotary-generic-password",
                f"arn:aws:lambda:{lib.REGION}:123456789012:function:rotary-generic-password"):
        expect_error(rsm.rotate_secret, "AccessDeniedException", NOT_INVOKABLE,
                     SecretId=name, RotationLambdaARN=bad,
                     RotationRules={"AutomaticallyAfterDays": 7})
    expect_error(rsm.rotate_secret, "InvalidRequestException", NO_FUNCTION, SecretId=name)
    assert snapshot(rsm, name) == before
    assert _no_rotation_fields(rsm.describe_secret(SecretId=name))
    assert rot.history(name) == []

    # A configured secret keeps its configuration when a bad ARN is given.
    name2 = unique_name("rot-unknown2")
    rsm.create_secret(Name=name2, SecretString="value-unknown-fn-2")
    rsm.rotate_secret(SecretId=name2, RotationLambdaARN=GENERIC, RotateImmediately=False,
                      RotationRules={"AutomaticallyAfterDays": 5})
    rot.wait_outcome(name2, outcomes=("Succeeded",), TestOnly=True)
    before = snapshot(rsm, name2)
    expect_error(rsm.rotate_secret, "AccessDeniedException", NOT_INVOKABLE, SecretId=name2,
                 RotationLambdaARN=lambda_arn(fname("nope")),
                 RotationRules={"AutomaticallyAfterDays": 9})
    assert snapshot(rsm, name2) == before
    assert len(rot.history(name2)) == 1

    # The stored function was deleted since: RotateSecret with the stored settings refuses.
    name3 = unique_name("rot-deleted-fn")
    fn = fname("short-lived")
    arn = rot.create_function(fn, Command="true")
    rsm.create_secret(Name=name3, SecretString="value-deleted-fn")
    rsm.rotate_secret(SecretId=name3, RotationLambdaARN=arn, RotateImmediately=False)
    rot.wait_outcome(name3, outcomes=FINAL_OUTCOMES, TestOnly=True)
    rot.delete_function(fn, force=True)  # name3 still names it
    before = snapshot(rsm, name3)
    expect_error(rsm.rotate_secret, "AccessDeniedException", NOT_INVOKABLE, SecretId=name3)
    assert snapshot(rsm, name3) == before


def test_rotate_and_cancel_on_missing_or_deleted_secrets(rsm, rot):
    missing = unique_name("rot-missing")
    expect_error(rsm.rotate_secret, "ResourceNotFoundException", lib.NOT_FOUND,
                 SecretId=missing, RotationLambdaARN=GENERIC)
    expect_error(rsm.cancel_rotate_secret, "ResourceNotFoundException", lib.NOT_FOUND,
                 SecretId=missing)
    r = rot.call("GetRotationHistory", {"SecretId": missing})
    assert r.status == 400 and r.json["__type"].endswith("ResourceNotFoundException"), r
    name = unique_name("rot-deleted")
    rsm.create_secret(Name=name, SecretString="deleted-value")
    rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False)
    rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
    rsm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    before = snapshot(rsm, name)
    expect_error(rsm.rotate_secret, "InvalidRequestException", lib.MARKED_FOR_DELETION,
                 SecretId=name, RotationLambdaARN=GENERIC)
    expect_error(rsm.rotate_secret, "InvalidRequestException", lib.MARKED_FOR_DELETION,
                 SecretId=name)
    expect_error(rsm.cancel_rotate_secret, "InvalidRequestException", lib.MARKED_FOR_DELETION,
                 SecretId=name)
    assert snapshot(rsm, name) == before
    # Rules are checked before the function: bad rules + unknown function = rules error.
    other = unique_name("rot-order")
    rsm.create_secret(Name=other, SecretString="order-value")
    expect_error(rsm.rotate_secret, "InvalidParameterException", BOTH_SCHEDULES, SecretId=other,
                 RotationLambdaARN=lambda_arn(fname("nope")),
                 RotationRules={"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(7 days)"})


def test_rotation_rules_are_replaced_wholesale(rsm, rot):
    name = unique_name("rot-rules")
    rsm.create_secret(Name=name, SecretString=json_secret())
    rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False,
                      RotationRules={"ScheduleExpression": "cron(0 16 1,15 * ? *)",
                                     "Duration": "2h"})
    rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
    t0 = time.time()
    rsm.rotate_secret(SecretId=name, RotateImmediately=False,
                      RotationRules={"AutomaticallyAfterDays": 3})
    t1 = time.time()
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationRules"] == {"AutomaticallyAfterDays": 3}, d["RotationRules"]
    assert d["RotationLambdaARN"] == GENERIC
    assert d["NextRotationDate"].timestamp() in {days_window(t, 3)[1] - 1 for t in (t0, t1)}


BAD_RULES = [
    pytest.param({"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(10 days)"},
                 BOTH_SCHEDULES, id="days+expression"),
    pytest.param({"AutomaticallyAfterDays": 7, "ScheduleExpression": "cron(0 16 1,15 * ? *)",
                  "Duration": "2h"}, BOTH_SCHEDULES, id="days+cron+duration"),
    pytest.param({"ScheduleExpression": "cron(15 16 1,15 * ? *)"}, None, id="cron-minute-15"),
    pytest.param({"ScheduleExpression": "cron(0 16 * * * *)"}, None, id="cron-no-?"),
    pytest.param({"ScheduleExpression": "cron(0 16 ? * ? *)"}, None, id="cron-two-?"),
    pytest.param({"ScheduleExpression": "cron(0 16 1,15 * ? 2027)"}, None, id="cron-year"),
    pytest.param({"ScheduleExpression": "cron(0 25 * * ? *)"}, None, id="cron-hour-25"),
    pytest.param({"ScheduleExpression": "cron(0 16 32 * ? *)"}, None, id="cron-day-32"),
    pytest.param({"ScheduleExpression": "cron(0 16 1,15 * ?)"}, None, id="cron-5-fields"),
    pytest.param({"ScheduleExpression": "cron(0 0/2 * * ? *)"}, None, id="cron-2h-apart"),
    pytest.param({"ScheduleExpression": "cron(0 16 31 2 ? *)"}, None, id="cron-feb-31"),
    pytest.param({"ScheduleExpression": "cron(0 8 ? * FUNDAY *)"}, None, id="cron-bad-dow"),
    pytest.param({"ScheduleExpression": "cron()"}, None, id="cron-empty"),
    pytest.param({"ScheduleExpression": "rate(2 hours)"}, None, id="rate-2-hours"),
    pytest.param({"ScheduleExpression": "rate(0 days)"}, None, id="rate-0-days"),
    pytest.param({"ScheduleExpression": "rate(10 weeks)"}, None, id="rate-weeks"),
    pytest.param({"ScheduleExpression": "every day"}, None, id="not-an-expression"),
    pytest.param({"ScheduleExpression": "cron(0 16 1,15 * ? *)", "Duration": "25h"}, None,
                 id="duration-25h"),
    pytest.param({"ScheduleExpression": "cron(0 23 * * ? *)", "Duration": "2h"}, None,
                 id="duration-past-midnight"),
    pytest.param({"ScheduleExpression": "rate(4 hours)", "Duration": "5h"}, None,
                 id="duration-into-next-window"),
    pytest.param({"AutomaticallyAfterDays": 7, "Duration": "2d"}, None, id="duration-2d"),
    pytest.param({"AutomaticallyAfterDays": 7, "Duration": "0h"}, None, id="duration-0h"),
    pytest.param({"AutomaticallyAfterDays": 0}, None, id="days-0"),
    pytest.param({"AutomaticallyAfterDays": 1001}, None, id="days-1001"),
]


@pytest.fixture(scope="module")
def configured_secret(rsm, rot):
    name = unique_name("rot-validation")
    rsm.create_secret(Name=name, SecretString=json_secret())
    rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False,
                      RotationRules={"ScheduleExpression": "cron(0 8 ? * MON-FRI *)",
                                     "Duration": "2h"})
    rot.wait_outcome(name, outcomes=("Succeeded",), TestOnly=True)
    return name


@pytest.mark.parametrize("rules,message", BAD_RULES)
def test_rotate_secret_bad_rules_error_and_change_nothing(rules, message, rsm_raw, rot,
                                                          configured_secret):
    fresh = unique_name("rot-val-fresh")
    rsm_raw.create_secret(Name=fresh, SecretString="fresh-value")
    for sid in (configured_secret, fresh):
        before = snapshot(rsm_raw, sid)
        n_hist = len(rot.history(sid))
        with pytest.raises(ClientError) as ei:
            rsm_raw.rotate_secret(SecretId=sid, RotationLambdaARN=GENERIC, RotationRules=rules)
        err = ei.value.response["Error"]
        if message is not None:
            assert err["Code"] == "InvalidParameterException", err
            assert err["Message"] == message, err
        else:
            assert err["Code"] in ("InvalidParameterException", "ValidationException"), err
            assert err.get("Message"), err
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert snapshot(rsm_raw, sid) == before, f"{rules} changed {sid}"
        assert len(rot.history(sid)) == n_hist
    assert _no_rotation_fields(rsm_raw.describe_secret(SecretId=fresh))


# ------------------------------------------------------------------------------------------
# 5. Schedules with the test clock
# ------------------------------------------------------------------------------------------
def test_schedules_next_rotation_dates_and_a_scheduled_rotation(make_server):
    srv = make_server(ROTARY_TEST_CLOCK="true")
    sm, rot = srv.client(), Rotary(srv)
    cases = {
        "days7": {"AutomaticallyAfterDays": 7},
        "rate10": {"ScheduleExpression": "rate(10 days)"},
        "cron": {"ScheduleExpression": "cron(0 16 1,15 * ? *)", "Duration": "2h"},
    }
    names, origs = {}, {}
    t0 = time.time()
    for key, rules in cases.items():
        names[key] = unique_name(f"sched-{key}")
        origs[key] = sm.create_secret(Name=names[key], SecretString=json_secret())["VersionId"]
        resp = sm.rotate_secret(SecretId=names[key], RotationLambdaARN=GENERIC,
                                RotationRules=rules, RotateImmediately=False)
        assert "VersionId" not in resp, resp
    t1 = time.time()

    expected_next = {
        "days7": {days_window(t, 7)[1] - 1 for t in (t0, t1)},
        "rate10": {days_window(t, 10)[1] - 1 for t in (t0, t1)},
        # The first window starting after the configuration: one that is open when the
        # schedule is set (16:00-18:00 UTC on the 1st and 15th) counts as already begun, and
        # the schedule starts with the next (the schedule's anchor is the configuration time).
        "cron": {cron_1_15_16h_2h_window(t, after_start=t)[1] - 1 for t in (t0, t1)},
    }
    planned_end = {}
    for key, name in names.items():
        # RotateImmediately=false: only testSecret ran, on a copy that was removed again.
        rec = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
        assert rec["Outcome"] == "Succeeded", rec
        assert step_names(rec) == ["testSecret"], rec
        assert len(rot.history(name)) == 1
        wait_for(lambda: len(lib.list_all_versions(sm, name)) == 1, 10,
                 "the test version to be removed")
        assert stages(sm, name) == {origs[key]: ["AWSCURRENT"]}
        d = sm.describe_secret(SecretId=name)
        assert d["RotationEnabled"] is True and "LastRotatedDate" not in d, d
        for k, v in cases[key].items():
            assert d["RotationRules"][k] == v, d["RotationRules"]
        nxt = d["NextRotationDate"].timestamp()
        assert nxt in expected_next[key], (key, iso(nxt), [iso(x) for x in expected_next[key]])
        planned_end[key] = nxt + 1

    # Move past the cron window: the scheduler rotates it (late).
    c_end = planned_end["cron"]
    jump = c_end - time.time() + 120
    now = rot.advance(jump)
    assert abs(now - (time.time() + jump)) < 30, (iso(now), jump)
    rec = rot.wait_outcome(names["cron"], outcomes=FINAL_OUTCOMES, TestOnly=False, timeout=30)
    assert rec["Outcome"] == "Succeeded" and rec["Trigger"] == "schedule", rec
    assert rec["Late"] is True and rec["Attempt"] == 1, rec
    assert_steps_succeeded(rec)
    assert_rotated(sm, names["cron"], origs["cron"], rec["Token"])
    d = sm.describe_secret(SecretId=names["cron"])
    last = d["LastRotatedDate"].timestamp()
    assert now - 1 <= last <= now + 60, (iso(last), iso(now))
    assert d["RotationRules"] == {"ScheduleExpression": "cron(0 16 1,15 * ? *)",
                                  "Duration": "2h", "AutomaticallyAfterDays": 14}
    nxt = d["NextRotationDate"].timestamp()
    want = cron_1_15_16h_2h_window(last, after_start=last)[1] - 1
    assert nxt == want, (iso(nxt), iso(want))

    # The day-based secrets rotate iff their window is over by the new clock.
    for key, days in (("days7", 7), ("rate10", 10)):
        start, end = days_window(t0, days)
        name = names[key]
        if end <= now:
            r = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=False, timeout=30)
            assert r["Outcome"] == "Succeeded" and r["Trigger"] == "schedule", r
            assert r["Late"] is True, r
        elif start > now:
            assert [r for r in rot.history(name) if not r["TestOnly"]] == [], key
            d = sm.describe_secret(SecretId=name)
            assert d["NextRotationDate"].timestamp() == end - 1

    # No further rotation of the cron secret happens until its next window.
    assert len([r for r in rot.history(names["cron"]) if not r["TestOnly"]]) == 1


@pytest.mark.parametrize("writer", ["put_secret_value", "update_secret"])
def test_manual_value_change_resets_the_days_schedule(writer, make_server):
    """Spec §5.7: with AutomaticallyAfterDays, "a manual value change (PutSecretValue /
    UpdateSecret) counts as a rotation and resets the clock"."""
    srv = make_server(ROTARY_TEST_CLOCK="true")
    sm, rot = srv.client(), Rotary(srv)
    name = unique_name("sched-manual")
    sm.create_secret(Name=name, SecretString=json_secret())
    t0 = time.time()
    sm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False,
                     RotationRules={"AutomaticallyAfterDays": 7})
    rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
    first = sm.describe_secret(SecretId=name)["NextRotationDate"].timestamp()
    assert first in {days_window(t, 7)[1] - 1 for t in (t0, time.time())}
    now = rot.advance(3 * 86400)
    manual = json_secret("manual-" + uuid.uuid4().hex)
    if writer == "put_secret_value":
        sm.put_secret_value(SecretId=name, SecretString=manual)
    else:
        sm.update_secret(SecretId=name, SecretString=manual)
    nxt = sm.describe_secret(SecretId=name)["NextRotationDate"].timestamp()
    want = days_window(now, 7, last_rotated=now)[1] - 1
    assert nxt == want, f"NextRotationDate {iso(nxt)} after a manual change at {iso(now)}; " \
        f"expected {iso(want)} (was {iso(first)})"


def test_scheduler_skips_cancelled_and_deleted_secrets(make_server):
    srv = make_server(ROTARY_TEST_CLOCK="true")
    sm, rot = srv.client(), Rotary(srv)
    names = {k: unique_name(f"sched-{k}") for k in ("canary", "cancelled", "deleted")}
    origs = {}
    for k, name in names.items():
        origs[k] = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
        sm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False,
                         RotationRules={"AutomaticallyAfterDays": 1})
        rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True)
    sm.cancel_rotate_secret(SecretId=names["cancelled"])
    sm.delete_secret(SecretId=names["deleted"], RecoveryWindowInDays=30)
    rot.advance(3 * 86400)
    # All three were due in the same window, so the scheduler's first pass after the jump
    # takes all of them at once: once the canary has rotated, the others would have too.
    rec = rot.wait_outcome(names["canary"], outcomes=FINAL_OUTCOMES, TestOnly=False)
    assert rec["Outcome"] == "Succeeded" and rec["Trigger"] == "schedule", rec
    for k in ("cancelled", "deleted"):
        assert [r for r in rot.history(names[k]) if not r["TestOnly"]] == [], k
        assert stages(sm, names[k]) == {origs[k]: ["AWSCURRENT"]}, k


def test_preview_schedule_weekday_windows(rot):
    monday = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    out = rot.ok("PreviewSchedule", {"ScheduleExpression": "cron(0 8 ? * MON-FRI *)",
                                     "Duration": "2h", "Count": 10, "StartTime": monday})
    assert out["AutomaticallyAfterDays"] == 1, out
    wins = out["Windows"]
    assert len(wins) == 10, out
    days = []
    for w in wins:
        start, end, nxt = (as_epoch(w[k]) for k in ("Start", "End", "NextRotationDate"))
        s = dt.datetime.fromtimestamp(start, dt.timezone.utc)
        assert s.weekday() < 5 and (s.hour, s.minute, s.second) == (8, 0, 0), w
        assert end - start == 2 * 3600 and nxt == end - 1, w
        days.append(s.day)
    assert days == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12], days

    # From Friday 09:00 the open Friday window comes first, then Monday; from Friday 10:00
    # the next is Monday.
    fri9 = dt.datetime(2024, 1, 5, 9, tzinfo=dt.timezone.utc).timestamp()
    out = rot.ok("PreviewSchedule", {"ScheduleExpression": "cron(0 8 ? * MON-FRI *)",
                                     "Duration": "2h", "Count": 2, "StartTime": fri9})
    assert [iso(as_epoch(w["Start"])) for w in out["Windows"]] == [
        "2024-01-05T08:00:00Z", "2024-01-08T08:00:00Z"], out
    fri10 = fri9 + 3600
    out = rot.ok("PreviewSchedule", {"ScheduleExpression": "cron(0 8 ? * MON-FRI *)",
                                     "Duration": "2h", "Count": 1, "StartTime": fri10})
    assert [iso(as_epoch(w["Start"])) for w in out["Windows"]] == ["2024-01-08T08:00:00Z"], out

    out = rot.ok("PreviewSchedule", {"AutomaticallyAfterDays": 3, "Count": 2,
                                     "StartTime": monday + 5 * 3600})
    assert [(iso(as_epoch(w["Start"])), iso(as_epoch(w["NextRotationDate"])))
            for w in out["Windows"]] == [("2024-01-04T00:00:00Z", "2024-01-04T23:59:59Z"),
                                         ("2024-01-07T00:00:00Z", "2024-01-07T23:59:59Z")], out
    bad = rot.call("PreviewSchedule", {"ScheduleExpression": "cron(0 0/2 * * ? *)"})
    assert bad.status == 400 and bad.json["__type"].endswith("InvalidParameterException"), bad


def test_advance_test_clock_needs_the_flag(rot):
    r = rot.call("AdvanceTestClock", {"Seconds": 3600})
    assert r.status == 400 and "InvalidRequestException" in r.json["__type"], r


# ------------------------------------------------------------------------------------------
# 6. Crash safety: the server is SIGKILLed during each step
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_rotation_survives_server_kill_during_each_step(step, make_server, markers):
    srv = make_server()
    sm, rot = srv.client(), Rotary(srv)
    once = markers / "killed-once"
    arn = rot.create_function("crasher", Command=python_command(), TimeoutSeconds=30, Env={
        "MARKER_DIR": str(markers), "KILL_STEP": step, "KILL_ONCE_FILE": str(once)})
    name = unique_name(f"rot-crash-{step}")
    orig = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    wait_for(lambda: (markers / "killed.txt").exists(), 30,
             f"the function to finish {step}'s work", lambda: srv.log_tail(30))
    srv.kill()
    assert once.exists() and read_lines(markers / "killed.txt")[0].split()[0] == step
    srv.restart()
    sm, rot = srv.client(), Rotary(srv)

    rec = rot.wait_outcome(name, token, timeout=30)
    assert rec["Outcome"] == "Succeeded", rec
    recs = rot.history(name)
    assert [r for r in recs if r["Outcome"] == "Succeeded"] == [rec], recs
    assert all(r["Token"] == token for r in recs), recs
    assert not [r for r in recs if r["Outcome"] in ("Failed", "Abandoned", "Retrying")], recs
    got = assert_rotated(sm, name, orig, token)
    assert got["SecretString"] == (markers / "created.txt").read_text()
    # Resumed from the interrupted step (steps are idempotent), not from scratch.
    idx = STEPS.index(step)
    ran = [line.split()[0] for line in read_lines(markers / "steps.log")]
    assert ran == STEPS[:idx + 1] + STEPS[idx:], ran
    assert {line.split()[1] for line in read_lines(markers / "steps.log")} == {token}
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and "LastRotatedDate" in d
    assert rot.compliance_of(name) is None


def test_test_only_rotation_survives_server_kill(make_server, markers):
    """A crash during a RotateImmediately=false test must not leave the test version (with
    AWSPENDING) behind: that would block every later rotation."""
    srv = make_server()
    sm, rot = srv.client(), Rotary(srv)
    once = markers / "killed-once"
    arn = rot.create_function("crasher", Command=python_command(), Env={
        "MARKER_DIR": str(markers), "KILL_STEP": "testSecret", "KILL_ONCE_FILE": str(once)})
    name = unique_name("rot-crash-testonly")
    orig_value = json_secret()
    orig = sm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    sm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotateImmediately=False)
    wait_for(lambda: (markers / "killed.txt").exists(), 30, "the function to finish testSecret")
    srv.kill()
    srv.restart()
    sm, rot = srv.client(), Rotary(srv)
    rec = rot.wait_outcome(name, outcomes=FINAL_OUTCOMES, TestOnly=True, timeout=30)
    assert rec["Outcome"] == "Succeeded", rec
    wait_for(lambda: len(lib.list_all_versions(sm, name)) == 1, 10,
             "the test version to be removed")
    assert stages(sm, name) == {orig: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == orig_value
    # Not stuck: a real rotation runs.
    token = sm.rotate_secret(SecretId=name)["VersionId"]
    assert rot.wait_outcome(name, token, timeout=30)["Outcome"] == "Succeeded"
    assert_rotated(sm, name, orig, token)


def test_graceful_shutdown_mid_step_stops_the_function_and_resumes(make_server, markers):
    srv = make_server()
    sm, rot = srv.client(), Rotary(srv)
    blocked, release = markers / "blocked", markers / "release"
    arn = rot.create_function("slow", Command=python_command(), TimeoutSeconds=60, Env={
        "MARKER_DIR": str(markers), "BLOCK_STEP": "setSecret", "BLOCKED_FILE": str(blocked),
        "RELEASE_FILE": str(release)})
    name = unique_name("rot-sigterm")
    orig = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    wait_for(lambda: blocked.exists() and blocked.read_text(), 30, "the function to block")
    fn_pids = _pids_with_env(f"BLOCKED_FILE={blocked}")
    assert fn_pids, "the blocked function's processes are not visible"
    t = time.monotonic()
    srv.proc.terminate()
    try:
        srv.proc.wait(timeout=15)
    except Exception:
        srv.kill()
        pytest.fail("rotary did not exit within 15 s of SIGTERM while a function was running")
    took = time.monotonic() - t
    rc = srv.proc.returncode
    srv.kill()  # closes the log
    wait_for(lambda: all(_gone_or_zombie(p) for p in fn_pids), 10,
             f"the running function {fn_pids} to be stopped")
    assert rc == 0, f"exit status {rc} after SIGTERM ({took:.1f}s)"
    release.touch()
    srv.start()
    sm, rot = srv.client(), Rotary(srv)
    rec = rot.wait_outcome(name, token, timeout=30)
    assert rec["Outcome"] == "Succeeded", rec
    assert_rotated(sm, name, orig, token)
    ran = [line.split()[0] for line in read_lines(markers / "steps.log")]
    assert ran == ["createSecret", "setSecret", "setSecret", "testSecret", "finishSecret"], ran


def test_pending_retry_survives_a_restart(make_server, markers):
    srv = make_server(ROTARY_ROTATION_MAX_ATTEMPTS=2, ROTARY_ROTATION_RETRY_BASE_SECONDS=3)
    sm, rot = srv.client(), Rotary(srv)
    fixed = markers / "fixed"
    arn = rot.create_function("flaky", Command=python_command(), Env={
        "MARKER_DIR": str(markers), "FAIL_STEP": "setSecret", "FAIL_UNLESS": str(fixed)})
    name = unique_name("rot-retry-restart")
    orig = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    first = rot.wait_outcome(name, token, outcomes=("Retrying",), timeout=30)
    srv.kill()
    fixed.touch()
    # Stay down until the retry is overdue: start-up must catch up at once.
    wait_for(lambda: time.time() > first["NextAttemptAt"] + 0.5, 10, "the retry to be overdue")
    t_start = time.time()
    srv.start()
    sm, rot = srv.client(), Rotary(srv)
    rec = rot.wait_outcome(name, token, outcomes=FINAL_OUTCOMES, timeout=30, Attempt=2)
    assert rec["Outcome"] == "Succeeded", rec
    assert rec["StartedAt"] >= first["NextAttemptAt"] - 0.05, (first, rec)
    assert rec["StartedAt"] - t_start < 2.0, "an overdue retry waits after start-up"
    assert [r["Outcome"] for r in rot.history(name)] == ["Succeeded", "Retrying"]
    got = assert_rotated(sm, name, orig, token)
    assert got["SecretString"] == (markers / "created.txt").read_text()


def test_next_window_redrives_a_failed_rotation(make_server, markers):
    srv = make_server(ROTARY_TEST_CLOCK="true", ROTARY_ROTATION_MAX_ATTEMPTS=1)
    sm, rot = srv.client(), Rotary(srv)
    fixed = markers / "fixed"
    arn = rot.create_function("flaky", Command=python_command(), Env={
        "MARKER_DIR": str(markers), "FAIL_STEP": "finishSecret", "FAIL_UNLESS": str(fixed)})
    name = unique_name("rot-window-redrive")
    orig = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    t0 = time.time()
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 2})["VersionId"]
    failed = rot.wait_outcome(name, token, timeout=30)
    assert failed["Outcome"] == "Failed" and failed["FailedStep"] == "finishSecret", failed
    d = sm.describe_secret(SecretId=name)
    assert d["NextRotationDate"].timestamp() in {days_window(t, 2)[1] - 1 for t in (t0, time.time())}
    fixed.touch()
    now = rot.advance(3 * 86400 + 60)
    rec = rot.wait_outcome(name, token, timeout=30, Trigger="redrive")
    assert rec["Outcome"] == "Succeeded" and rec["Late"] is True, rec
    assert_rotated(sm, name, orig, token)
    d = sm.describe_secret(SecretId=name)
    assert d["LastRotatedDate"].timestamp() >= now - 1
    assert d["NextRotationDate"].timestamp() == days_window(now, 2, last_rotated=now)[1] - 1
    assert rot.compliance_of(name) is None


def test_overdue_rotation_is_reported_until_it_succeeds(make_server, markers):
    srv = make_server(ROTARY_TEST_CLOCK="true")
    sm, rot = srv.client(), Rotary(srv)
    blocked, release = markers / "blocked", markers / "release"
    arn = rot.create_function("slow", Command=python_command(), TimeoutSeconds=60, Env={
        "MARKER_DIR": str(markers), "BLOCK_STEP": "setSecret", "BLOCKED_FILE": str(blocked),
        "RELEASE_FILE": str(release)})
    name = unique_name("rot-overdue")
    orig = sm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 1})["VersionId"]
    try:
        wait_for(blocked.exists, 30, "the function to block")
        assert rot.compliance_of(name) is None
        rot.advance(3 * 86400)
        checks = {f["Check"] for f in rot.compliance_of(name) or []}
        assert "RotationOverdue" in checks, checks
        assert "PendingOnNonCurrentVersion" not in checks, "a running rotation is not stuck"
    finally:
        release.touch()
    assert rot.wait_outcome(name, token, timeout=30)["Outcome"] == "Succeeded"
    assert_rotated(sm, name, orig, token)
    assert rot.compliance_of(name) is None


# ------------------------------------------------------------------------------------------
# 7. A new value written during a rotation abandons it
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", ["put_secret_value", "update_secret"])
def test_value_written_during_rotation_abandons_it(writer, rsm, rot, markers):
    blocked, release = markers / "blocked", markers / "release"
    arn = rot.create_function(fname("blocker"), Command=python_command(), TimeoutSeconds=60, Env={
        "MARKER_DIR": str(markers), "BLOCK_STEP": "setSecret", "BLOCKED_FILE": str(blocked),
        "RELEASE_FILE": str(release)})
    name = unique_name("rot-abandon")
    orig = rsm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    try:
        wait_for(blocked.exists, 30, "the function to block in setSecret")
        # A retried RotateSecret with the same token is idempotent; another one is refused.
        again = rsm.rotate_secret(SecretId=name, ClientRequestToken=token)
        assert again["VersionId"] == token
        expect_error(rsm.rotate_secret, "InvalidRequestException", PREVIOUS_NOT_COMPLETE,
                     SecretId=name)
        manual = json_secret("manual-" + uuid.uuid4().hex)
        if writer == "put_secret_value":
            manual_vid = rsm.put_secret_value(SecretId=name, SecretString=manual)["VersionId"]
        else:
            manual_vid = rsm.update_secret(SecretId=name, SecretString=manual)["VersionId"]
    finally:
        release.touch()
    rec = rot.wait_outcome(name, token, timeout=30)
    assert rec["Outcome"] == "Abandoned", rec
    st = stages(rsm, name)
    assert pending_free(st), st
    assert st == {orig: ["AWSPREVIOUS"], manual_vid: ["AWSCURRENT"]}, st
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == manual_vid and got["SecretString"] == manual
    ran = [line.split()[0] for line in read_lines(markers / "steps.log")]
    assert "finishSecret" not in ran, ran
    findings = rot.compliance_of(name) or []
    assert "PendingOnNonCurrentVersion" not in {f["Check"] for f in findings}, findings

    # Nothing is stuck: the next rotation runs normally.
    token2 = rsm.rotate_secret(SecretId=name)["VersionId"]
    rec2 = rot.wait_outcome(name, token2, timeout=30)
    assert rec2["Outcome"] == "Succeeded", rec2
    assert_rotated(rsm, name, manual_vid, token2)


# ------------------------------------------------------------------------------------------
# 8. CancelRotateSecret
# ------------------------------------------------------------------------------------------
def test_cancel_rotate_secret(rsm, rot):
    never = unique_name("rot-cancel-never")
    rsm.create_secret(Name=never, SecretString="never-rotated")
    before = snapshot(rsm, never)
    expect_error(rsm.cancel_rotate_secret, "InvalidRequestException", SecretId=never)
    assert snapshot(rsm, never) == before

    name = unique_name("rot-cancel")
    orig = rsm.create_secret(Name=name, SecretString=json_secret())["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC,
                              RotationRules={"AutomaticallyAfterDays": 3})["VersionId"]
    assert rot.wait_outcome(name, token)["Outcome"] == "Succeeded"
    assert_rotated(rsm, name, orig, token)
    resp = rsm.cancel_rotate_secret(SecretId=name)
    assert resp["Name"] == name and "VersionId" not in resp, resp
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False, d
    assert d["RotationLambdaARN"] == GENERIC
    assert d["RotationRules"] == {"AutomaticallyAfterDays": 3}
    assert "NextRotationDate" not in d, d
    assert_rotated(rsm, name, orig, token)
    checks = {f["Check"] for f in rot.compliance_of(name) or []}
    assert "RotationDisabled" in checks, checks

    # Re-enabling with the stored function and rules (no immediate rotation).
    rsm.rotate_secret(SecretId=name, RotateImmediately=False)
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationRules"] == {"AutomaticallyAfterDays": 3}
    assert "NextRotationDate" in d
    rot.wait_outcome(name, outcomes=("Succeeded",), TestOnly=True)
    assert_rotated(rsm, name, orig, token)


def test_cancel_during_a_rotation_stops_it_before_finish(rsm, rot, markers):
    blocked, release = markers / "blocked", markers / "release"
    arn = rot.create_function(fname("cancel-blocker"), Command=python_command(), Env={
        "MARKER_DIR": str(markers), "BLOCK_STEP": "setSecret", "BLOCKED_FILE": str(blocked),
        "RELEASE_FILE": str(release)})
    name = unique_name("rot-cancel-busy")
    orig_value = json_secret()
    orig = rsm.create_secret(Name=name, SecretString=orig_value)["VersionId"]
    token = rsm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
    try:
        wait_for(blocked.exists, 30, "the function to block in setSecret")
        resp = rsm.cancel_rotate_secret(SecretId=name)
        assert resp.get("VersionId") == token, resp
    finally:
        release.touch()
    rec = rot.wait_outcome(name, token, timeout=30)
    assert rec["Outcome"] != "Succeeded", rec
    got = rsm.get_secret_value(SecretId=name)
    assert got["VersionId"] == orig and got["SecretString"] == orig_value
    d = rsm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False and "NextRotationDate" not in d, d
    ran = [line.split()[0] for line in read_lines(markers / "steps.log")]
    assert "finishSecret" not in ran, ran


# ------------------------------------------------------------------------------------------
# 9. Webhook
# ------------------------------------------------------------------------------------------
class _Hook:
    """A local HTTP receiver; refuses the first delivery with a 500 to exercise retries."""

    def __init__(self):
        self.events: list[dict] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    first = not hook.events
                    hook.events.append({"headers": dict(self.headers.items()), "body": body,
                                        "status": 500 if first else 204, "at": time.time()})
                self.send_response(500 if first else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/rotary-hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook():
    h = _Hook()
    yield h
    h.close()


def test_webhook_signed_events(make_server, hook):
    srv = make_server(ROTARY_ROTATION_WEBHOOK_URL=hook.url, ROTARY_ROTATION_WEBHOOK_ON_SUCCESS="true",
                      ROTARY_ROTATION_MAX_ATTEMPTS="1")
    sm, rot = srv.client(), Rotary(srv)
    key = bytes.fromhex((srv.data_dir / "signing.key").read_text().strip())
    failing = rot.create_function("always-fails",
                                  Command=rot.script("no-db.sh", "echo 'cannot reach database' >&2; exit 1"))

    def deliveries(event, token=None):
        out = []
        for e in hook.snapshot():
            doc = json.loads(e["body"])
            if doc["Event"] == event and (token is None or doc["Rotation"]["Token"] == token):
                out.append((e, doc))
        return out

    def verify(e):
        h = {k.lower(): v for k, v in e["headers"].items()}
        ts = h["x-rotary-timestamp"]
        assert abs(int(ts) - e["at"]) < 300, ts
        want = "v1=" + hmac.new(key, ts.encode() + b"." + e["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(h["x-rotary-signature"], want), (h, want)
        assert h.get("content-type", "").startswith("application/json"), h
        wrong = "v1=" + hmac.new(b"not-the-key", ts.encode() + b"." + e["body"],
                                 hashlib.sha256).hexdigest()
        assert h["x-rotary-signature"] != wrong

    # A failed rotation.
    n1 = unique_name("hook-fail")
    sm.create_secret(Name=n1, SecretString="hook-value-1")
    t1 = sm.rotate_secret(SecretId=n1, RotationLambdaARN=failing)["VersionId"]
    rec = rot.wait_outcome(n1, t1, outcomes=("Failed",), timeout=30)
    wait_for(lambda: any(e["status"] < 300 for e, _ in deliveries("RotationFailed", t1)), 30,
             "a RotationFailed webhook", lambda: hook.snapshot())
    got = deliveries("RotationFailed", t1)
    assert got[0][0]["status"] == 500 and len(got) >= 2, "the refused delivery is retried"
    for e, doc in got:
        verify(e)
        assert doc["Rotation"] == rec, (doc["Rotation"], rec)
        assert doc["Rotation"]["Outcome"] == "Failed"
        assert "cannot reach database" in doc["Rotation"]["Error"]

    # A successful rotation (webhook-on-success).
    n2 = unique_name("hook-ok")
    sm.create_secret(Name=n2, SecretString="hook-value-2")
    t2 = sm.rotate_secret(SecretId=n2, RotationLambdaARN=GENERIC)["VersionId"]
    assert rot.wait_outcome(n2, t2)["Outcome"] == "Succeeded"
    wait_for(lambda: deliveries("RotationSucceeded", t2), 30, "a RotationSucceeded webhook",
             lambda: hook.snapshot())
    for e, doc in deliveries("RotationSucceeded", t2):
        verify(e)
        assert doc["Rotation"]["Outcome"] == "Succeeded" and doc["Rotation"]["Token"] == t2

    # A failed test rotation (RotateImmediately=false).
    n3 = unique_name("hook-test")
    sm.create_secret(Name=n3, SecretString="hook-value-3")
    sm.rotate_secret(SecretId=n3, RotationLambdaARN=failing, RotateImmediately=False)
    rec3 = rot.wait_outcome(n3, outcomes=FINAL_OUTCOMES, TestOnly=True, timeout=30)
    assert rec3["Outcome"] == "Failed", rec3
    wait_for(lambda: deliveries("TestRotationFailed"), 30, "a TestRotationFailed webhook",
             lambda: hook.snapshot())
    for e, doc in deliveries("TestRotationFailed"):
        verify(e)
        assert doc["Rotation"]["TestOnly"] is True and doc["Rotation"]["ARN"] == rec3["ARN"]
    assert len(deliveries("RotationFailed", t1)) == 2, "delivered once after the refusal"
    for secret in (n1, n3):
        checks = {f["Check"] for f in rot.compliance_of(secret) or []}
        assert "LastRotationFailed" in checks, (secret, checks)
