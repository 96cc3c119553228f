"""SigV4 authentication failures (§1.3). Each rejected request must change nothing."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from botocore.exceptions import ClientError

from rotary_testlib import (
    CONTENT_TYPE,
    MISSING_AUTH,
    NOT_FOUND,
    SECRET_KEY,
    SIG_MISMATCH,
    UNKNOWN_KEY,
    WRONG_SERVICE,
    make_client,
    new_token,
    not_signed_msg,
    send,
    signed_request,
    snapshot,
    unique_name,
    utcnow,
)

AMZ = "%Y%m%dT%H%M%SZ"


def create_body(name):
    return json.dumps({"Name": name, "ClientRequestToken": new_token(),
                       "SecretString": "should-not-exist"}).encode()


def assert_auth_error(resp, code, message=None):
    status, headers, body = resp
    assert status == 400, resp
    assert isinstance(body, dict), resp
    assert body.get("__type") == code, body
    if message is not None:
        assert body.get("Message") == message, body
    assert headers.get("x-amzn-RequestId"), dict(headers)
    return body


@pytest.fixture
def absent(sm):
    """A fresh name; asserts at teardown that nothing was created under it."""
    name = unique_name("auth")
    yield name
    with pytest.raises(ClientError) as ei:
        sm.describe_secret(SecretId=name)
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert ei.value.response["Error"]["Message"] == NOT_FOUND


@pytest.fixture
def existing(sm):
    """An existing secret; asserts at teardown that its state is unchanged."""
    name = unique_name("authx")
    sm.create_secret(Name=name, SecretString="original")
    before = snapshot(sm, name)
    yield name
    assert snapshot(sm, name) == before


def put_body(name):
    return json.dumps({"SecretId": name, "ClientRequestToken": new_token(),
                       "SecretString": "tampered"}).encode()


class TestRejected:
    def test_unsigned(self, server, absent):
        hdrs = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": "secretsmanager.CreateSecret"}
        r = send(server.url, hdrs, create_body(absent))
        assert_auth_error(r, "MissingAuthenticationTokenException", MISSING_AUTH)

    def test_unsigned_read(self, server, existing):
        hdrs = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": "secretsmanager.GetSecretValue"}
        r = send(server.url, hdrs, json.dumps({"SecretId": existing}).encode())
        body = assert_auth_error(r, "MissingAuthenticationTokenException", MISSING_AUTH)
        assert "original" not in json.dumps(body)

    def test_unknown_access_key(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    access_key="AKIANOSUCHKEY0000000")
        assert_auth_error(send(server.url, hdrs, body), "UnrecognizedClientException",
                          UNKNOWN_KEY)

    def test_wrong_secret_key(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    secret_key=SECRET_KEY[:-1] + "X")
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException",
                          SIG_MISMATCH)

    def test_wrong_secret_key_boto3(self, server, absent):
        bad = make_client(server.url, secret_key="wrong-secret")
        with pytest.raises(ClientError) as ei:
            bad.create_secret(Name=absent, SecretString="x")
        assert ei.value.response["Error"]["Code"] == "InvalidSignatureException"
        assert ei.value.response["Error"]["Message"] == SIG_MISMATCH
        bad2 = make_client(server.url, access_key="AKIANOSUCHKEY0000001")
        with pytest.raises(ClientError) as ei:
            bad2.list_secrets()
        assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"

    def test_tampered_body(self, server, existing):
        hdrs, body = signed_request(server.url, "PutSecretValue", put_body(existing))
        tampered = body.replace(b'"tampered"', b'"tamperex"')
        assert tampered != body
        assert_auth_error(send(server.url, hdrs, tampered), "InvalidSignatureException",
                          SIG_MISMATCH)

    def test_tampered_target_header(self, server, existing):
        body2 = json.dumps({"SecretId": existing, "ForceDeleteWithoutRecovery": True}).encode()
        hdrs2, _ = signed_request(server.url, "ListSecrets", body2)
        hdrs2["X-Amz-Target"] = "secretsmanager.DeleteSecret"
        assert_auth_error(send(server.url, hdrs2, body2), "InvalidSignatureException",
                          SIG_MISMATCH)

    def test_wrong_host_header(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        hdrs["Host"] = "evil.example.com:443"
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException",
                          SIG_MISMATCH)

    def test_wrong_service_in_scope(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    service="kms")
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException",
                          WRONG_SERVICE)

    def test_missing_signature_part(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        hdrs["Authorization"] = re.sub(r",\s*Signature=[0-9a-f]+", "", hdrs["Authorization"])
        b = assert_auth_error(send(server.url, hdrs, body), "IncompleteSignatureException")
        assert "Authorization header requires 'Signature' parameter." in b.get("Message", ""), b

    @pytest.mark.parametrize("auth", ["Bearer abc", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ",
                                      "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, "
                                      "Signature=00", "AWS AKIA:abc"])
    def test_garbage_authorization(self, server, absent, auth):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        hdrs["Authorization"] = auth
        r = send(server.url, hdrs, body)
        status, _, js = r
        assert status == 400, r
        assert js.get("__type") in ("IncompleteSignatureException", "InvalidSignatureException",
                                    "MissingAuthenticationTokenException",
                                    "UnrecognizedClientException"), r

    def test_missing_date(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        del hdrs["X-Amz-Date"]
        r = send(server.url, hdrs, body)
        status, _, js = r
        assert status == 400, r
        assert js.get("__type") in ("IncompleteSignatureException",
                                    "InvalidSignatureException"), r

    def test_scope_date_mismatch(self, server, absent):
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        today = hdrs["X-Amz-Date"][:8]
        other = (dt.datetime.strptime(today, "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")
        hdrs["Authorization"] = hdrs["Authorization"].replace(f"/{today}/", f"/{other}/")
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException")

    def test_signed_header_list_missing_signed_header(self, server, absent):
        # X-Amz-Target is sent but not listed as signed: it must be signed whenever it is
        # sent (issue #9; more in test_sigv4_strict.py), which is checked before the signature.
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent))
        hdrs["Authorization"] = hdrs["Authorization"].replace(";x-amz-target", "")
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException",
                          not_signed_msg("X-Amz-Target"))

    def test_unsigned_payload_header(self, server, absent):
        # UNSIGNED-PAYLOAD is refused: the body must be signed (issue #9; more in
        # test_sigv4_strict.py). Was accepted before.
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException",
                          SIG_MISMATCH)


class TestClockSkew:
    EXPIRED = re.compile(r"^Signature expired: (\d{8}T\d{6}Z) is now earlier than "
                         r"(\d{8}T\d{6}Z) \((\d{8}T\d{6}Z) - 5 min\.\)$")
    FUTURE = re.compile(r"^Signature not yet current: (\d{8}T\d{6}Z) is still later than "
                        r"(\d{8}T\d{6}Z) \((\d{8}T\d{6}Z) \+ 5 min\.\)$")

    def test_six_minutes_old(self, server, absent):
        when = utcnow() - dt.timedelta(minutes=6)
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent), when=when)
        b = assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException")
        m = self.EXPIRED.match(b.get("Message", ""))
        assert m, b
        req, edge, now = (dt.datetime.strptime(g, AMZ) for g in m.groups())
        assert m.group(1) == when.strftime(AMZ)
        assert now - edge == dt.timedelta(minutes=5)
        assert abs((now - utcnow()).total_seconds()) < 30
        assert req < edge

    def test_six_minutes_ahead(self, server, absent):
        when = utcnow() + dt.timedelta(minutes=6)
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent), when=when)
        b = assert_auth_error(send(server.url, hdrs, body), "InvalidSignatureException")
        m = self.FUTURE.match(b.get("Message", ""))
        assert m, b
        req, edge, now = (dt.datetime.strptime(g, AMZ) for g in m.groups())
        assert m.group(1) == when.strftime(AMZ)
        assert edge - now == dt.timedelta(minutes=5)
        assert abs((now - utcnow()).total_seconds()) < 30
        assert req > edge

    @pytest.mark.parametrize("minutes", [-4, 4])
    def test_within_skew_accepted(self, server, sm, minutes):
        name = unique_name("skewok")
        when = utcnow() + dt.timedelta(minutes=minutes)
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(name), when=when)
        r = send(server.url, hdrs, body)
        assert r.status == 200, r
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "should-not-exist"


class TestAccepted:
    def test_unsigned_extra_header_is_ignored(self, server, sm):
        name = unique_name("extra")
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(name))
        hdrs["X-Unsigned-Noise"] = "whatever"
        hdrs["User-Agent"] = "something/else"
        assert send(server.url, hdrs, body).status == 200
        sm.describe_secret(SecretId=name)

    def test_extra_signed_headers(self, server, sm):
        name = unique_name("sdkhdr")
        extra = {"amz-sdk-invocation-id": new_token(), "amz-sdk-request": "attempt=1; max=3",
                 "X-Amz-User-Agent": "aws-sdk-rust/1.3.0   os/linux"}
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(name), extra)
        assert "amz-sdk-request" in hdrs["Authorization"]
        r = send(server.url, hdrs, body)
        assert r.status == 200, r

    def test_signed_content_sha256_of_the_body(self, server, sm):
        # X-Amz-Content-SHA256 is optional for Secrets Manager; when sent (and signed) with
        # the body's real hash, the request is accepted.
        name = unique_name("sha")
        body = create_body(name)
        hdrs, body = signed_request(server.url, "CreateSecret", body, content_sha256=body)
        assert "x-amz-content-sha256" in hdrs["Authorization"]
        r = send(server.url, hdrs, body)
        assert r.status == 200, r
        sm.describe_secret(SecretId=name)

    def test_other_region_is_a_separate_namespace_or_rejected(self, server, sm, absent):
        """Spec §1.3: a self-hosted server 'should accept any region and use it as a
        namespace'. Either way, a eu-west-1 request must never touch us-east-1 state."""
        hdrs, body = signed_request(server.url, "CreateSecret", create_body(absent),
                                    region="eu-west-1")
        r = send(server.url, hdrs, body)
        if r.status == 200:
            assert r.json["ARN"].startswith("arn:aws:secretsmanager:eu-west-1:"), r
            eu = make_client(server.url, region="eu-west-1")
            assert eu.get_secret_value(SecretId=absent)["SecretString"] == "should-not-exist"
            eu.delete_secret(SecretId=absent, ForceDeleteWithoutRecovery=True)
        else:
            assert r.status == 400 and r.json, r
            assert r.headers.get("x-amzn-RequestId")
            assert r.json.get("__type") in ("InvalidSignatureException",
                                        "UnrecognizedClientException",
                                        "IncompleteSignatureException"), r
