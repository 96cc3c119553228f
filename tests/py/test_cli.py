"""The real `aws` CLI (v1) against Rotary (§1.4: --endpoint-url)."""

from __future__ import annotations

import base64
import json
import os

from rotary_testlib import arn_regex, unique_name


def ok(res):
    rc, out = res
    assert rc == 0, f"aws cli failed rc={rc}: {out}"
    return out


def test_create_get_put_update_describe(aws_cli, sm):
    name = unique_name("cli")
    c = ok(aws_cli("create-secret", "--name", name, "--secret-string", '{"user":"u","pw":"p"}',
                   "--description", "from cli"))
    assert c["Name"] == name
    assert arn_regex(name).match(c["ARN"])
    v1 = c["VersionId"]
    g = ok(aws_cli("get-secret-value", "--secret-id", name))
    assert g["SecretString"] == '{"user":"u","pw":"p"}'
    assert g["VersionStages"] == ["AWSCURRENT"]
    p = ok(aws_cli("put-secret-value", "--secret-id", c["ARN"], "--secret-string", "second"))
    assert p["VersionStages"] == ["AWSCURRENT"]
    u = ok(aws_cli("update-secret", "--secret-id", name, "--description", "changed"))
    assert u["Name"] == name and "VersionId" not in u
    d = ok(aws_cli("describe-secret", "--secret-id", name))
    assert d["Description"] == "changed"
    assert d["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], p["VersionId"]: ["AWSCURRENT"]}
    prev = ok(aws_cli("get-secret-value", "--secret-id", name, "--version-stage", "AWSPREVIOUS"))
    assert prev["SecretString"] == '{"user":"u","pw":"p"}'
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"


def test_list_secrets_auto_pagination(aws_cli, sm):
    prefix = unique_name("clipg")
    names = [f"{prefix}/{i}" for i in range(5)]
    for n in names:
        sm.create_secret(Name=n, SecretString="x")
    filters = json.dumps([{"Key": "name", "Values": [prefix]}])
    out = ok(aws_cli("list-secrets", "--filters", filters, "--page-size", "2"))
    got = [e["Name"] for e in out["SecretList"]]
    assert sorted(got) == sorted(names)
    assert len(got) == len(set(got))
    out = ok(aws_cli("list-secrets", "--filters", filters, "--max-items", "3"))
    assert len(out["SecretList"]) == 3
    assert out.get("NextToken")


def test_tag_untag(aws_cli, sm):
    name = unique_name("clitag")
    ok(aws_cli("create-secret", "--name", name, "--secret-string", "x"))
    ok(aws_cli("tag-resource", "--secret-id", name, "--tags", "Key=env,Value=prod",
               "Key=team,Value=core"))
    d = ok(aws_cli("describe-secret", "--secret-id", name))
    assert d["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "core"}]
    ok(aws_cli("untag-resource", "--secret-id", name, "--tag-keys", "env"))
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "team", "Value": "core"}]


def test_delete_and_restore(aws_cli, sm):
    name = unique_name("clidel")
    ok(aws_cli("create-secret", "--name", name, "--secret-string", "x"))
    d = ok(aws_cli("delete-secret", "--secret-id", name, "--recovery-window-in-days", "7"))
    assert d["Name"] == name and d["DeletionDate"]
    assert "DeletedDate" in sm.describe_secret(SecretId=name)
    rc, err = aws_cli("get-secret-value", "--secret-id", name)
    assert rc != 0 and "InvalidRequestException" in err
    r = ok(aws_cli("restore-secret", "--secret-id", name))
    assert r["Name"] == name
    assert ok(aws_cli("get-secret-value", "--secret-id", name))["SecretString"] == "x"
    ok(aws_cli("delete-secret", "--secret-id", name, "--force-delete-without-recovery"))
    rc, err = aws_cli("describe-secret", "--secret-id", name)
    assert rc != 0 and "ResourceNotFoundException" in err


def test_get_random_password(aws_cli):
    out = ok(aws_cli("get-random-password", "--password-length", "20", "--exclude-punctuation"))
    pw = out["RandomPassword"]
    assert len(pw) == 20 and pw.isalnum()


def test_secret_binary_fileb(aws_cli, sm, tmp_path):
    name = unique_name("clibin")
    data = b"\x00\x01\x02\xff" + os.urandom(64) + b"\n\r\x00"
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    ok(aws_cli("create-secret", "--name", name, "--secret-binary", f"fileb://{f}"))
    g = ok(aws_cli("get-secret-value", "--secret-id", name))
    assert "SecretString" not in g
    assert base64.b64decode(g["SecretBinary"]) == data
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == data
    data2 = os.urandom(300)
    f.write_bytes(data2)
    ok(aws_cli("put-secret-value", "--secret-id", name, "--secret-binary", f"fileb://{f}"))
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == data2


def test_list_versions_and_stage(aws_cli, sm):
    name = unique_name("cliver")
    v1 = ok(aws_cli("create-secret", "--name", name, "--secret-string", "a"))["VersionId"]
    v2 = ok(aws_cli("put-secret-value", "--secret-id", name, "--secret-string", "b"))["VersionId"]
    out = ok(aws_cli("list-secret-version-ids", "--secret-id", name))
    assert [v["VersionId"] for v in out["Versions"]] == [v1, v2]
    ok(aws_cli("update-secret-version-stage", "--secret-id", name, "--version-stage",
               "AWSCURRENT", "--move-to-version-id", v1, "--remove-from-version-id", v2))
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "a"


def test_error_not_found(aws_cli):
    rc, err = aws_cli("get-secret-value", "--secret-id", unique_name("nope"))
    assert rc != 0
    assert "ResourceNotFoundException" in err
    assert "Secrets Manager can't find the specified secret." in err


def test_error_exists(aws_cli, sm):
    name = unique_name("cliexists")
    sm.create_secret(Name=name, SecretString="x")
    rc, err = aws_cli("create-secret", "--name", name, "--secret-string", "y")
    assert rc != 0 and "ResourceExistsException" in err
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"
