"""Strict SigV4 (issue #9): the body must be signed, and the headers that say what a request
does must be signed whenever they are sent.

Before, a body signed as `UNSIGNED-PAYLOAD` was accepted and `X-Amz-Target` need not be
signed, so a captured DescribeSecret replayed with the target GetSecretValue returned the
value. Every refusal here must change nothing and never echo a secret value. The last tests
check that real clients (boto3, the aws CLI, the AWS SDK for JavaScript v3) still work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from rotary_testlib import (
    ACCESS_KEY,
    REGION,
    REPO,
    SECRET_KEY,
    SIG_MISMATCH,
    free_port,
    new_token,
    not_signed_msg,
    send,
    signed_request,
    snapshot,
    unique_name,
)

VALUE = "strict-sigv4-canary-value-6f1c"
JS_DIR = REPO / "tests" / "js"


def assert_refused(resp, code, message):
    status, headers, body = resp
    assert status == 400, resp
    assert isinstance(body, dict), resp
    assert body.get("__type") == code, body
    assert body.get("Message") == message, body
    assert headers.get("x-amzn-RequestId"), dict(headers)
    assert VALUE.encode() not in resp.body, resp
    return body


def assert_ok(resp):
    assert resp.status == 200, resp
    return resp.json


@pytest.fixture
def secret(sm):
    """An existing secret holding VALUE; asserts at teardown that nothing changed."""
    name = unique_name("strict")
    sm.create_secret(Name=name, SecretString=VALUE)
    before = snapshot(sm, name)
    yield name
    assert snapshot(sm, name) == before


@pytest.fixture
def absent(sm):
    """A fresh name; asserts at teardown that nothing was created under it."""
    name = unique_name("strictabs")
    yield name
    with pytest.raises(ClientError) as ei:
        sm.describe_secret(SecretId=name)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"


def sid(name):
    return json.dumps({"SecretId": name}).encode()


def put_body(name):
    return json.dumps({"SecretId": name, "ClientRequestToken": new_token(),
                       "SecretString": "tampered"}).encode()


def create_body(name):
    return json.dumps({"Name": name, "ClientRequestToken": new_token(),
                       "SecretString": "should-not-exist"}).encode()


# ---------------------------------------------------------------------------------------------
# (1), (2): the body is always hashed by the server
# ---------------------------------------------------------------------------------------------
class TestPayloadHash:
    def test_unsigned_payload_get_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    unsigned_payload=True)
        assert hdrs["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
        assert "x-amz-content-sha256" in hdrs["Authorization"]
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_unsigned_payload_write_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "PutSecretValue", put_body(secret),
                                    unsigned_payload=True)
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_unsigned_payload_create_refused(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    unsigned_payload=True)
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_unsigned_payload_replayed_with_another_body_refused(self, server, secret, sm):
        # The attack UNSIGNED-PAYLOAD allowed: the signature covers no body, so a captured
        # request carries any body. Capture a harmless read, send a write with its headers.
        hdrs, _ = signed_request(server.url, "DescribeSecret", sid(secret),
                                 unsigned_payload=True)
        hdrs["X-Amz-Target"] = "secretsmanager.DescribeSecret"
        other = unique_name("strictother")
        sm.create_secret(Name=other, SecretString="other-value")
        assert_refused(send(server.url, hdrs, sid(other)), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_content_sha256_of_another_body_refused(self, server, secret):
        # Signed over the hash of a body other than the one sent.
        body = put_body(secret)
        hdrs, _ = signed_request(server.url, "PutSecretValue", body,
                                 content_sha256=put_body(secret))
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_content_sha256_rewritten_after_signing_refused(self, server, secret):
        # A request signed with its own body's hash, replayed with another body and that
        # body's hash in the header: the signature covered the old hash.
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    content_sha256=sid(secret))
        assert_ok(send(server.url, hdrs, body))
        other = sid(secret + "x")
        hdrs["X-Amz-Content-SHA256"] = hashlib.sha256(other).hexdigest()
        assert_refused(send(server.url, hdrs, other), "InvalidSignatureException",
                       SIG_MISMATCH)

    @pytest.mark.parametrize("claimed", ["", "0" * 64, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                         "unsigned-payload"])
    def test_any_other_claimed_hash_refused(self, server, secret, claimed):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    content_sha256=claimed)
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_content_sha256_unsigned_refused(self, server, secret):
        # Even the right hash must be signed when sent.
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    content_sha256=sid(secret),
                                    unsigned_headers=["X-Amz-Content-SHA256"])
        assert "x-amz-content-sha256" not in hdrs["Authorization"]
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Content-SHA256"))

    def test_signed_content_sha256_of_the_body_accepted(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    content_sha256=sid(secret))
        assert assert_ok(send(server.url, hdrs, body))["SecretString"] == VALUE

    def test_tampered_body_without_hash_header_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "PutSecretValue", put_body(secret))
        tampered = body.replace(b'"tampered"', b'"tamperex"')
        assert_refused(send(server.url, hdrs, tampered), "InvalidSignatureException",
                       SIG_MISMATCH)


# ---------------------------------------------------------------------------------------------
# (3), (4): the headers that select the operation must be signed
# ---------------------------------------------------------------------------------------------
class TestSignedHeaders:
    def test_describe_replayed_as_get_secret_value_refused(self, server, secret):
        """The attack from issue #9, with X-Amz-Target signed: a signature mismatch."""
        hdrs, body = signed_request(server.url, "DescribeSecret", sid(secret))
        assert "x-amz-target" in hdrs["Authorization"]
        described = assert_ok(send(server.url, hdrs, body))
        assert described["Name"] == secret and VALUE not in json.dumps(described)
        hdrs["X-Amz-Target"] = "secretsmanager.GetSecretValue"
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       SIG_MISMATCH)

    def test_describe_with_unsigned_target_replayed_as_get_secret_value_refused(
            self, server, secret):
        """The attack from issue #9, with X-Amz-Target left out of SignedHeaders: the
        signature itself is valid for the rest, but an unsigned target is refused."""
        hdrs, body = signed_request(server.url, "DescribeSecret", sid(secret),
                                    unsigned_headers=["X-Amz-Target"])
        assert "x-amz-target" not in hdrs["Authorization"]
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Target"))
        hdrs["X-Amz-Target"] = "secretsmanager.GetSecretValue"
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Target"))

    def test_target_dropped_from_signed_headers_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret))
        hdrs["Authorization"] = hdrs["Authorization"].replace(";x-amz-target", "")
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Target"))

    def test_unsigned_target_write_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "PutSecretValue", put_body(secret),
                                    unsigned_headers=["X-Amz-Target"])
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Target"))

    def test_unsigned_content_type_refused(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    unsigned_headers=["Content-Type"])
        assert "content-type" not in hdrs["Authorization"]
        assert hdrs["Content-Type"]
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("Content-Type"))

    def test_unsigned_content_type_write_refused(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    unsigned_headers=["Content-Type"])
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("Content-Type"))

    def test_unsigned_security_token_refused(self, server, secret):
        # Checked before the token itself: an unsigned token is refused whatever it is.
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    {"X-Amz-Security-Token": "some-token"},
                                    unsigned_headers=["X-Amz-Security-Token"])
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Security-Token"))

    def test_host_and_date_still_required(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret))
        auth = hdrs["Authorization"]
        hdrs["Authorization"] = auth.replace(";host;", ";")
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("Host"))
        hdrs["Authorization"] = auth.replace(";x-amz-date", "")
        assert_refused(send(server.url, hdrs, body), "InvalidSignatureException",
                       not_signed_msg("X-Amz-Date"))

    def test_other_headers_may_stay_unsigned(self, server, secret):
        # Only the listed headers must be signed; proxies and HTTP stacks add others.
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret),
                                    {"X-Custom-Noise": "1"},
                                    unsigned_headers=["X-Custom-Noise"])
        assert "x-custom-noise" not in hdrs["Authorization"]
        assert assert_ok(send(server.url, hdrs, body))["SecretString"] == VALUE

    def test_fully_signed_control_is_accepted(self, server, secret):
        hdrs, body = signed_request(server.url, "GetSecretValue", sid(secret))
        signed = hdrs["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        assert {"content-type", "host", "x-amz-date", "x-amz-target"} <= set(signed)
        assert assert_ok(send(server.url, hdrs, body))["SecretString"] == VALUE


# ---------------------------------------------------------------------------------------------
# (5): refusals change nothing and echo nothing, whatever the operation
# ---------------------------------------------------------------------------------------------
DEFECTS = {
    "unsigned-payload": dict(unsigned_payload=True),
    "other-body-hash": dict(content_sha256=b"{}"),
    "unsigned-target": dict(unsigned_headers=["X-Amz-Target"]),
    "unsigned-content-type": dict(unsigned_headers=["Content-Type"]),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
@pytest.mark.parametrize("op", ["GetSecretValue", "PutSecretValue", "DeleteSecret",
                                "UpdateSecret", "TagResource"])
def test_refusal_changes_nothing_and_echoes_nothing(server, secret, op, defect):
    body = {
        "GetSecretValue": {"SecretId": secret},
        "PutSecretValue": {"SecretId": secret, "SecretString": "tampered",
                           "ClientRequestToken": new_token()},
        "DeleteSecret": {"SecretId": secret, "ForceDeleteWithoutRecovery": True},
        "UpdateSecret": {"SecretId": secret, "Description": "tampered",
                         "SecretString": "tampered", "ClientRequestToken": new_token()},
        "TagResource": {"SecretId": secret, "Tags": [{"Key": "k", "Value": "tampered"}]},
    }[op]
    hdrs, raw = signed_request(server.url, op, json.dumps(body).encode(), **DEFECTS[defect])
    r = send(server.url, hdrs, raw)
    assert r.status == 400, r
    assert r.json["__type"] == "InvalidSignatureException", r
    assert VALUE.encode() not in r.body and b"tampered" not in r.body, r
    # (`secret` checks at teardown that the secret, its versions and tags are unchanged.)


# ---------------------------------------------------------------------------------------------
# Real clients still work against the strict verifier
# ---------------------------------------------------------------------------------------------
def test_boto3_round_trip(sm):
    name = unique_name("strictboto")
    sm.create_secret(Name=name, SecretString="b1")
    sm.put_secret_value(SecretId=name, SecretBinary=b"\x00\xff")
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00\xff"
    sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "b"}])
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "a", "Value": "b"}]
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def test_aws_cli_round_trip(aws_cli):
    name = unique_name("strictcli")
    rc, out = aws_cli("create-secret", "--name", name, "--secret-string", "c1")
    assert rc == 0, out
    rc, out = aws_cli("get-secret-value", "--secret-id", name)
    assert rc == 0, out
    assert out["SecretString"] == "c1"
    rc, out = aws_cli("delete-secret", "--secret-id", name, "--force-delete-without-recovery")
    assert rc == 0, out


def test_aws_sdk_for_javascript_v3(server):
    """tests/js/smoke.mjs with @aws-sdk/client-secrets-manager (installed by
    `npm ci --prefix tests/js`, as .ci/run does)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 18+ is needed for tests/js)")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-secrets-manager").is_dir():
        pytest.fail("tests/js has no node_modules: run `npm ci --prefix tests/js` first")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        ROTARY_ENDPOINT=server.url,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        SMOKE_PREFIX=unique_name("js"),
    )
    p = subprocess.run([node, str(JS_DIR / "smoke.mjs")], env=env, capture_output=True,
                       text=True, timeout=120, cwd=JS_DIR)
    assert p.returncode == 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["ok"] is True, seen


def _agent_bin():
    kept = "/opt/rotary-test-agent/bin/aws_secretsmanager_agent"  # where .ci/run installs it
    return (os.environ.get("ROTARY_AGENT_BIN") or shutil.which("aws_secretsmanager_agent")
            or (kept if os.path.exists(kept) else None))


@pytest.mark.skipif(_agent_bin() is None,
                    reason="AWS's Secrets Manager Agent is not installed (`cargo install "
                           "aws_secretsmanager_agent --locked`, or set ROTARY_AGENT_BIN)")
def test_aws_secrets_manager_agent(server, sm, tmp_path):
    """AWS's Secrets Manager Agent (crates.io `aws_secretsmanager_agent`, on the AWS SDK for
    Rust) fetches through Rotary: `AWS_ENDPOINT_URL_SECRETS_MANAGER` points it here."""
    name = unique_name("strictagent")
    sm.create_secret(Name=name, SecretString="agent-value")
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'http_port = "{port}"\nlog_to_file = false\nlog_level = "debug"\n'
        f'validate_credentials = false\nregion = "{REGION}"\nttl_seconds = "0"\n'
    )
    token = "ssrf-" + new_token()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_SECRETS_MANAGER=server.url,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_TOKEN=token,
        HOME=str(tmp_path),
    )
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen([_agent_bin(), "--config", str(config)], env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def get(path):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"X-Aws-Parameters-Secrets-Token": token})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get("/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "agent.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        status, body = get(f"/secretsmanager/get?secretId={name}")
        assert status == 200, (body, (tmp_path / "agent.log").read_text(errors="replace"))
        got = json.loads(body)
        assert got["SecretString"] == "agent-value" and got["Name"] == name, got
        status, body = get(f"/v1/{name}")
        assert status == 200 and json.loads(body)["SecretString"] == "agent-value", body
        status, body = get(f"/secretsmanager/get?secretId={name}-absent")
        assert status == 400 and b"ResourceNotFoundException" in body, body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
