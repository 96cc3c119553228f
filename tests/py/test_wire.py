"""Raw HTTP wire behaviour (§1.1, §1.2): framing, error shape, hostile input.

Every request here is correctly SigV4-signed unless stated, so failures are about the body
or headers, not auth.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request

import pytest

from rotary_testlib import (
    CONTENT_TYPE,
    INVALID_NAME,
    NEED_TOKEN,
    NOT_FOUND,
    find_nulls,
    new_token,
    signed_request,
    unique_name,
)


def assert_error(resp, code=None, message=None, status=400):
    status_, headers, body = resp
    assert status_ == status, f"expected {status}, got {resp!r}"
    assert isinstance(body, dict), f"error body is not a JSON object: {resp.body[:300]!r}"
    assert isinstance(body.get("__type"), str) and body["__type"], body
    assert "#" not in body["__type"] and ":" not in body["__type"], body
    if code is not None:
        assert body["__type"] == code, body
    if message is not None:
        assert body.get("Message") == message, body
    if "Message" in body or "message" in body:
        assert "Message" in body, f"error message key must be 'Message': {body}"
    assert headers.get("x-amzn-RequestId"), dict(headers)
    assert (headers.get("Content-Type") or "").startswith(CONTENT_TYPE), dict(headers)
    return body


def assert_ok(resp):
    status, headers, body = resp
    assert status == 200, resp
    assert isinstance(body, dict), resp
    assert headers.get("x-amzn-RequestId"), dict(headers)
    assert (headers.get("Content-Type") or "").startswith(CONTENT_TYPE), dict(headers)
    assert find_nulls(body) == [], f"null members in response: {find_nulls(body)}"
    return body


def create(raw, name=None, value="v", **extra):
    name = name or unique_name("w")
    body = {"Name": name, "ClientRequestToken": new_token(), "SecretString": value, **extra}
    return name, assert_ok(raw("CreateSecret", body))


def not_found(raw, name):
    assert_error(raw("DescribeSecret", {"SecretId": name}), "ResourceNotFoundException",
                 NOT_FOUND)


def still_serves(server, raw):
    assert server.alive()
    with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
        assert r.status == 200
    assert_ok(raw("ListSecrets", {"MaxResults": 1}))


# =============================================================================================
# Framing and response shape
# =============================================================================================
class TestShape:
    def test_success_headers_and_request_id_unique(self, raw):
        r1 = raw("ListSecrets", {"MaxResults": 1})
        r2 = raw("ListSecrets", {"MaxResults": 1})
        assert_ok(r1), assert_ok(r2)
        assert r1.headers["x-amzn-RequestId"] != r2.headers["x-amzn-RequestId"]

    def test_error_body_exact_shape(self, raw):
        name = unique_name("nf")
        r = raw("GetSecretValue", {"SecretId": name})
        body = assert_error(r, "ResourceNotFoundException", NOT_FOUND)
        assert body == {"__type": "ResourceNotFoundException", "Message": NOT_FOUND}

    def test_timestamps_are_numbers_and_no_nulls(self, raw):
        name, c = create(raw, Description="d", Tags=[{"Key": "k", "Value": "v"}])
        assert set(c) == {"ARN", "Name", "VersionId"}
        g = assert_ok(raw("GetSecretValue", {"SecretId": name}))
        d = assert_ok(raw("DescribeSecret", {"SecretId": name}))
        lst = assert_ok(raw("ListSecrets", {"Filters": [{"Key": "name", "Values": [name]}]}))
        v = assert_ok(raw("ListSecretVersionIds", {"SecretId": name}))
        for obj, fields in ((g, ["CreatedDate"]),
                            (d, ["CreatedDate", "LastChangedDate", "LastAccessedDate"]),
                            (lst["SecretList"][0], ["CreatedDate", "LastChangedDate",
                                                    "LastAccessedDate"]),
                            (v["Versions"][0], ["CreatedDate", "LastAccessedDate"])):
            for f in fields:
                assert f in obj, (f, obj)
                assert isinstance(obj[f], (int, float)) and not isinstance(obj[f], bool), (f, obj)
        assert d["LastAccessedDate"] % 86400 == 0
        dl = assert_ok(raw("DeleteSecret", {"SecretId": name, "RecoveryWindowInDays": 7}))
        assert isinstance(dl["DeletionDate"], (int, float))
        d2 = assert_ok(raw("DescribeSecret", {"SecretId": name}))
        assert isinstance(d2["DeletedDate"], (int, float))

    def test_binary_is_base64_on_the_wire(self, raw):
        name = unique_name("wb")
        body = {"Name": name, "ClientRequestToken": new_token(), "SecretBinary": "AAEC/w=="}
        assert_ok(raw("CreateSecret", body))
        g = assert_ok(raw("GetSecretValue", {"SecretId": name}))
        assert g["SecretBinary"] == "AAEC/w=="
        assert "SecretString" not in g
        assert base64.b64decode(g["SecretBinary"]) == b"\x00\x01\x02\xff"

    def test_invalid_base64_binary(self, raw):
        name = unique_name("wb")
        body = {"Name": name, "ClientRequestToken": new_token(), "SecretBinary": "%%%not-b64"}
        assert_error(raw("CreateSecret", body))
        not_found(raw, name)

    def test_tag_untag_return_empty_object(self, raw):
        name, _ = create(raw)
        r = raw("TagResource", {"SecretId": name, "Tags": [{"Key": "a", "Value": "b"}]})
        assert assert_ok(r) == {}
        r = raw("UntagResource", {"SecretId": name, "TagKeys": ["a"]})
        assert assert_ok(r) == {}

    def test_null_members_treated_as_absent(self, raw):
        name = unique_name("null")
        body = {"Name": name, "ClientRequestToken": new_token(), "SecretString": "v",
                "SecretBinary": None, "Description": None, "Tags": None, "KmsKeyId": None,
                "AddReplicaRegions": None, "ForceOverwriteReplicaSecret": None}
        assert_ok(raw("CreateSecret", body))
        d = assert_ok(raw("DescribeSecret", {"SecretId": name}))
        assert "Description" not in d and "Tags" not in d and "KmsKeyId" not in d
        g = assert_ok(raw("GetSecretValue", {"SecretId": name, "VersionId": None,
                                             "VersionStage": None}))
        assert g["SecretString"] == "v"
        assert_ok(raw("ListSecrets", {"Filters": None, "NextToken": None, "MaxResults": None,
                                      "SortOrder": None}))

    def test_unknown_members_ignored(self, raw):
        name, _ = create(raw)
        g = assert_ok(raw("GetSecretValue", {"SecretId": name, "Bogus": 1, "Nested": {"a": []}}))
        assert g["SecretString"] == "v"

    def test_operations_without_params_accept_empty_object(self, raw):
        assert_ok(raw("ListSecrets", b"{}"))
        pw = assert_ok(raw("GetRandomPassword", b"{}"))
        assert len(pw["RandomPassword"]) == 32

    def test_sdk_noise_headers_tolerated(self, raw):
        hdrs = {"User-Agent": "aws-sdk-rust/1.0", "X-Amz-User-Agent": "aws-sdk-rust/1.0",
                "amz-sdk-invocation-id": new_token(), "amz-sdk-request": "attempt=1; max=3",
                "Accept-Encoding": "identity"}
        assert_ok(raw("ListSecrets", {"MaxResults": 1}, headers=hdrs))


# =============================================================================================
# Token requirement for raw callers (§3.1, §4.2)
# =============================================================================================
class TestClientRequestToken:
    def test_create_with_value_without_token(self, raw):
        name = unique_name("notok")
        r = raw("CreateSecret", {"Name": name, "SecretString": "v"})
        assert_error(r, "InvalidRequestException", NEED_TOKEN)
        not_found(raw, name)

    def test_put_without_token(self, raw):
        name, c = create(raw)
        r = raw("PutSecretValue", {"SecretId": name, "SecretString": "v2"})
        assert_error(r, "InvalidRequestException", NEED_TOKEN)
        v = assert_ok(raw("ListSecretVersionIds", {"SecretId": name, "IncludeDeprecated": True}))
        assert [x["VersionId"] for x in v["Versions"]] == [c["VersionId"]]

    def test_update_with_value_without_token(self, raw):
        name, c = create(raw)
        r = raw("UpdateSecret", {"SecretId": name, "SecretString": "v2"})
        assert_error(r, "InvalidRequestException", NEED_TOKEN)
        g = assert_ok(raw("GetSecretValue", {"SecretId": name}))
        assert g["SecretString"] == "v" and g["VersionId"] == c["VersionId"]

    def test_rotate_without_token(self, raw):
        """AWS answers InvalidParameterException here (the writes answer
        InvalidRequestException). See: #13"""
        name, c = create(raw)
        fn = "arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password"
        r = raw("RotateSecret", {"SecretId": name, "RotationLambdaARN": fn})
        assert_error(r, "InvalidParameterException", NEED_TOKEN)
        d = assert_ok(raw("DescribeSecret", {"SecretId": name}))
        assert "RotationEnabled" not in d and "RotationLambdaARN" not in d, d
        assert list(d["VersionIdsToStages"]) == [c["VersionId"]]


# =============================================================================================
# Malformed requests
# =============================================================================================
class TestMalformed:
    def test_missing_target(self, raw):
        assert_error(raw(None, {}), "UnknownOperationException")

    @pytest.mark.parametrize("target", ["secretsmanager.NoSuchOperation", "kms.Encrypt",
                                        "secretsmanager.", "secretsmanager.getSecretValue",
                                        "GetSecretValue", "secretsmanager.RotateSecret.x"])
    def test_unknown_target(self, raw, target):
        hdrs = {"X-Amz-Target": target}
        assert_error(raw(None, {"SecretId": "x"}, headers=hdrs), "UnknownOperationException")

    @pytest.mark.parametrize("body", [b'{"SecretId": ', b"not json", b"{'SecretId': 'x'}",
                                      b'{"SecretId": "x"} trailing', b"\x00\x01\x02"])
    def test_malformed_json(self, raw, body):
        assert_error(raw("DescribeSecret", body), "SerializationException")

    @pytest.mark.parametrize("body", [b"[]", b'"string"', b"42", b"null"])
    def test_non_object_json(self, raw, body):
        assert_error(raw("ListSecrets", body), "SerializationException")

    @pytest.mark.parametrize("op,body", [
        ("DescribeSecret", {"SecretId": 5}),
        ("DescribeSecret", {"SecretId": ["a"]}),
        ("DescribeSecret", {"SecretId": {"a": 1}}),
        ("DescribeSecret", {"SecretId": True}),
        ("ListSecretVersionIds", {"SecretId": "x", "IncludeDeprecated": "yes"}),
        ("ListSecrets", {"MaxResults": "10"}),
        ("ListSecrets", {"Filters": {"Key": "name"}}),
        ("TagResource", {"SecretId": "x", "Tags": [{"Key": 1, "Value": "b"}]}),
        ("DeleteSecret", {"SecretId": "x", "RecoveryWindowInDays": "7"}),
    ])
    def test_wrong_json_types(self, raw, op, body):
        assert_error(raw(op, body), "SerializationException")

    def test_wrong_type_does_not_create(self, raw):
        name = unique_name("wt")
        r = raw("CreateSecret", {"Name": name, "ClientRequestToken": new_token(),
                                 "SecretString": 12345})
        assert_error(r, "SerializationException")
        not_found(raw, name)

    @pytest.mark.parametrize("op,body", [
        ("GetSecretValue", {}),
        ("DescribeSecret", {"VersionId": "x" * 32}),
        ("CreateSecret", {"SecretString": "v", "ClientRequestToken": "t" * 36}),
        ("TagResource", {"SecretId": "x"}),
        ("UntagResource", {"SecretId": "x"}),
        ("UpdateSecretVersionStage", {"SecretId": "x"}),
        ("PutResourcePolicy", {"SecretId": "x"}),
        ("ValidateResourcePolicy", {}),
    ])
    def test_missing_required_member(self, raw, op, body):
        assert_error(raw(op, body), "ValidationException")

    @pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                       "application/xml", ""])
    def test_wrong_content_type(self, raw, ctype):
        name = unique_name("ct")
        body = {"Name": name, "ClientRequestToken": new_token(), "SecretString": "v"}
        r = raw("CreateSecret", body, content_type=ctype)
        status, _, js = r
        assert status == 400, r
        assert isinstance(js, dict) and js.get("__type"), r
        not_found(raw, name)

    def test_oversize_body(self, server, raw):
        name = unique_name("huge")
        body = json.dumps({"Name": name, "ClientRequestToken": new_token(),
                           "SecretString": "A" * (1024 * 1024 + 10)}).encode()
        assert len(body) > 1024 * 1024
        r = raw("CreateSecret", body)
        status, _, js = r
        assert status == 400, r
        assert isinstance(js, dict) and js.get("__type"), r
        not_found(raw, name)
        still_serves(server, raw)

    def test_deeply_nested_json(self, server, raw):
        body = b'{"SecretId": "x", "Junk": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        r = raw("DescribeSecret", body)
        status, _, js = r
        assert status == 400, r
        assert isinstance(js, dict) and js.get("__type"), r
        still_serves(server, raw)

    def test_huge_number(self, raw):
        r = raw("ListSecrets", b'{"MaxResults": 1e400}')
        assert_error(r)
        r = raw("ListSecrets", b'{"MaxResults": 99999999999999999999999999}')
        assert_error(r)


# =============================================================================================
# Hostile names and values
# =============================================================================================
class TestHostile:
    @pytest.mark.parametrize("suffix", ["\x00", "\n", "\r\n", "\t", "\x1b[31m", "\x7f",
                                        "\u00e9", "\u202e", "\U0001f600", " ", "<script>",
                                        "'; DROP TABLE secrets; --", "%2e%2e%2f"])
    def test_control_and_unicode_names_rejected(self, raw, suffix):
        name = unique_name("h") + suffix
        r = raw("CreateSecret", {"Name": name, "ClientRequestToken": new_token(),
                                 "SecretString": "v"})
        assert_error(r, "ValidationException", INVALID_NAME)
        r = raw("DescribeSecret", {"SecretId": name})
        assert_error(r, "ValidationException", INVALID_NAME)

    def test_path_traversal_like_name_is_just_a_name(self, server, raw):
        base = unique_name("trav")
        for name in (f"../{base}", f"../../{base}/../x", f"{base}/./..", f"/{base}//x"):
            _, c = create(raw, name=name, value=f"value-of-{name}")
            assert c["Name"] == name
            g = assert_ok(raw("GetSecretValue", {"SecretId": name}))
            assert g["SecretString"] == f"value-of-{name}"
        # nothing was written next to the data dir
        parent = server.data_dir.parent
        assert not any(base in p.name for p in parent.rglob("*"))

    def test_very_long_name(self, server, raw):
        name = "a" * 10000
        r = raw("CreateSecret", {"Name": name, "ClientRequestToken": new_token(),
                                 "SecretString": "v"})
        assert_error(r, "ValidationException")
        r = raw("DescribeSecret", {"SecretId": name})
        assert_error(r, "ValidationException")
        still_serves(server, raw)

    def test_invalid_utf8_in_json(self, server, raw):
        name = unique_name("u8")
        tok = new_token()
        for body in (
            b'{"Name": "' + name.encode() + b'\xff\xfe", "ClientRequestToken": "' + tok.encode()
            + b'", "SecretString": "v"}',
            b'{"Name": "' + name.encode() + b'", "ClientRequestToken": "' + tok.encode()
            + b'", "SecretString": "bad \xc3\x28 utf8"}',
            b'{"Name": "' + name.encode() + b'", "ClientRequestToken": "' + tok.encode()
            + b'", "SecretString": "lone \\ud800 surrogate"}',
        ):
            r = raw("CreateSecret", body)
            status, _, js = r
            assert status == 400, r
            assert isinstance(js, dict) and js.get("__type"), r
        not_found(raw, name)
        still_serves(server, raw)

    def test_nul_in_value_round_trips(self, raw):
        name, _ = create(raw, value="a\u0000b\u0001c")
        g = assert_ok(raw("GetSecretValue", {"SecretId": name}))
        assert g["SecretString"] == "a\u0000b\u0001c"

    def test_hostile_tag_and_description(self, raw):
        name, _ = create(raw, Description="\u0000\u202e<x>'\"", )
        d = assert_ok(raw("DescribeSecret", {"SecretId": name}))
        assert d["Description"] == "\u0000\u202e<x>'\""

    def test_hostile_filter_values(self, raw):
        for v in ["'", "%", "_", "\\", "*", "\u0000", "a' OR '1'='1"]:
            r = raw("ListSecrets", {"Filters": [{"Key": "name", "Values": [v]}]})
            status, _, js = r
            if status == 200:
                # a literal match can only find names that really start with it
                assert all(e["Name"].startswith(v) for e in js["SecretList"]), (v, js)
            else:
                assert_error(r, "ValidationException")

    def test_like_wildcards_are_literal_in_name_filter(self, raw):
        base = unique_name("lk")
        create(raw, name=f"{base}-abc")
        for pattern in (f"{base[:-1]}_", f"{base[:-2]}%"):
            r = raw("ListSecrets", {"Filters": [{"Key": "name", "Values": [pattern]}]})
            status, _, js = r
            if status == 200:
                assert js["SecretList"] == [], pattern
            else:
                assert_error(r, "ValidationException")


def test_zz_server_still_serves_after_all(server, raw):
    still_serves(server, raw)
    name, _ = create(raw, value="final")
    assert assert_ok(raw("GetSecretValue", {"SecretId": name}))["SecretString"] == "final"


class TestHttpEdges:
    def test_get_on_root_leads_to_the_console(self, server, raw):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/")
        r = conn.getresponse()
        r.read()
        conn.close()
        assert 300 <= r.status < 400, r.status
        assert r.getheader("Location") == "/console", r.getheaders()
        still_serves(server, raw)

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
    def test_other_methods_on_root(self, server, raw, method):
        req = urllib.request.Request(server.url + "/", data=b"{}" if method != "GET" else None,
                                     method=method,
                                     headers={"Content-Type": CONTENT_TYPE,
                                              "X-Amz-Target": "secretsmanager.ListSecrets"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        assert 400 <= status < 500, status
        still_serves(server, raw)

    def test_post_to_other_path(self, server, raw):
        hdrs, body = signed_request(server.url, "ListSecrets", b"{}")
        req = urllib.request.Request(server.url + "/other/path", data=body, headers=hdrs,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        assert 400 <= status < 500, status

    def test_many_sequential_errors_do_not_degrade(self, server, raw):
        for i in range(200):
            r = raw("GetSecretValue", {"SecretId": f"nope-{i}"})
            assert r.status == 400
        still_serves(server, raw)
