"""Principals (issue 8): users, access keys, groups and inline policies through Rotary's API
(`X-Amz-Target: rotary.<Op>`) and the `rotary` CLI, called as root.

CRUD behaviour only; policy enforcement is tested elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess

import rotary_testlib as lib

READ_ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                   "Resource": "*"}],
})


def api(server, op, body=None, **sign_kw):
    r = lib.raw_call(server.url, f"rotary.{op}", body or {}, **sign_kw)
    return r.status, r.json


def ok(server, op, body=None):
    status, out = api(server, op, body)
    assert status == 200, f"{op}: {status} {out}"
    return out


def err(server, op, body, code):
    status, out = api(server, op, body)
    assert status == 400, f"{op}: {status} {out}"
    assert out["__type"] == code, out
    return out["Message"]


def rotary_cli(server, *args, stdin=None):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=lib.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=lib.SECRET_KEY,
               AWS_REGION=lib.REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER=server.url,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([lib.ROTARY_BIN, *args], env=env, capture_output=True, text=True,
                          timeout=60, input=stdin)


def user_name(unique_name, prefix="u"):
    return unique_name(prefix)[:64]


def test_user_crud(server, unique_name):
    name = user_name(unique_name)
    out = ok(server, "CreateUser", {"UserName": name, "Path": "/team/",
                                    "Tags": [{"Key": "team", "Value": "a"}]})
    u = out["User"]
    assert u["UserName"] == name
    assert u["Arn"] == f"arn:aws:iam::{lib.ACCOUNT}:user/team/{name}"
    assert u["UserId"].startswith("AIDA") and len(u["UserId"]) == 21
    assert isinstance(u["CreateDate"], (int, float))
    assert u["Tags"] == [{"Key": "team", "Value": "a"}]

    err(server, "CreateUser", {"UserName": name.upper()}, "ResourceExistsException")
    err(server, "CreateUser", {"UserName": "bad name"}, "InvalidParameterException")
    assert ok(server, "GetUser", {"UserName": name})["User"]["Arn"] == u["Arn"]
    listed = ok(server, "ListUsers", {"PathPrefix": "/team/"})["Users"]
    assert name in [x["UserName"] for x in listed]

    ok(server, "TagUser", {"UserName": name, "Tags": [{"Key": "env", "Value": "prod"}]})
    ok(server, "UntagUser", {"UserName": name, "TagKeys": ["team"]})
    assert ok(server, "ListUserTags", {"UserName": name})["Tags"] == [
        {"Key": "env", "Value": "prod"}]

    ok(server, "DeleteUser", {"UserName": name})
    err(server, "GetUser", {"UserName": name}, "ResourceNotFoundException")


def test_access_keys(server, unique_name):
    name = user_name(unique_name, "k")
    ok(server, "CreateUser", {"UserName": name})
    k1 = ok(server, "CreateAccessKey", {"UserName": name})["AccessKey"]
    assert k1["AccessKeyId"].startswith("AKIA") and len(k1["AccessKeyId"]) == 20
    assert len(k1["SecretAccessKey"]) == 40
    assert k1["Status"] == "Active"
    ok(server, "CreateAccessKey", {"UserName": name})
    err(server, "CreateAccessKey", {"UserName": name}, "LimitExceededException")

    listed = ok(server, "ListAccessKeys", {"UserName": name})
    assert len(listed["AccessKeyMetadata"]) == 2
    assert k1["SecretAccessKey"] not in json.dumps(listed)

    # The new key authenticates (whatever its policies then decide).
    status, out = api(server, "GetUser", {"UserName": name}, access_key=k1["AccessKeyId"],
                      secret_key=k1["SecretAccessKey"])
    assert out is None or out.get("__type") != "UnrecognizedClientException", out

    ok(server, "UpdateAccessKey", {"AccessKeyId": k1["AccessKeyId"], "Status": "Inactive"})
    status, out = api(server, "GetUser", {"UserName": name}, access_key=k1["AccessKeyId"],
                      secret_key=k1["SecretAccessKey"])
    assert status == 400 and out["__type"] == "UnrecognizedClientException", out
    meta = {k["AccessKeyId"]: k for k in
            ok(server, "ListAccessKeys", {"UserName": name})["AccessKeyMetadata"]}
    assert meta[k1["AccessKeyId"]]["Status"] == "Inactive"

    msg = err(server, "DeleteUser", {"UserName": name}, "InvalidRequestException")
    assert "access keys" in msg
    for akid in meta:
        ok(server, "DeleteAccessKey", {"AccessKeyId": akid})
    err(server, "DeleteAccessKey", {"AccessKeyId": k1["AccessKeyId"]},
        "ResourceNotFoundException")
    ok(server, "DeleteUser", {"UserName": name})


def test_groups_and_policies(server, unique_name):
    user = user_name(unique_name, "gu")
    group = unique_name("g")
    ok(server, "CreateUser", {"UserName": user})
    g = ok(server, "CreateGroup", {"GroupName": group})["Group"]
    assert g["Arn"] == f"arn:aws:iam::{lib.ACCOUNT}:group/{group}"
    ok(server, "AddUserToGroup", {"GroupName": group, "UserName": user})
    got = ok(server, "GetGroup", {"GroupName": group})
    assert [u["UserName"] for u in got["Users"]] == [user]
    assert [x["GroupName"] for x in ok(server, "ListGroupsForUser",
                                       {"UserName": user})["Groups"]] == [group]

    ok(server, "PutUserPolicy", {"UserName": user, "PolicyName": "read",
                                 "PolicyDocument": READ_ALL})
    ok(server, "PutGroupPolicy", {"GroupName": group, "PolicyName": "read",
                                  "PolicyDocument": READ_ALL})
    assert ok(server, "GetUserPolicy", {"UserName": user, "PolicyName": "read"})[
        "PolicyDocument"] == READ_ALL
    assert ok(server, "ListGroupPolicies", {"GroupName": group})["PolicyNames"] == ["read"]
    msg = err(server, "PutUserPolicy", {"UserName": user, "PolicyName": "bad",
                                        "PolicyDocument": '{"Statement": []}'},
              "MalformedPolicyDocumentException")
    assert msg
    assert ok(server, "ListUserPolicies", {"UserName": user})["PolicyNames"] == ["read"]

    err(server, "DeleteGroup", {"GroupName": group}, "InvalidRequestException")
    ok(server, "RemoveUserFromGroup", {"GroupName": group, "UserName": user})
    ok(server, "DeleteGroupPolicy", {"GroupName": group, "PolicyName": "read"})
    ok(server, "DeleteGroup", {"GroupName": group})
    ok(server, "DeleteUserPolicy", {"UserName": user, "PolicyName": "read"})
    ok(server, "DeleteUser", {"UserName": user})


def test_cli_users_keys_groups(server, unique_name, tmp_path):
    user = user_name(unique_name, "cli")
    group = unique_name("clig")

    r = rotary_cli(server, "user", "create", user, "--tag", "team=a", "--output", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["User"]["UserName"] == user
    r = rotary_cli(server, "user", "list")
    assert r.returncode == 0 and user in r.stdout, r.stderr

    r = rotary_cli(server, "key", "create", user, "--output", "json")
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)
    assert list(key)[:2] == ["AccessKeyId", "SecretAccessKey"]
    r = rotary_cli(server, "key", "create", user)
    assert r.returncode == 0, r.stderr
    assert "AccessKeyId:" in r.stdout and "SecretAccessKey:" in r.stdout
    r = rotary_cli(server, "key", "create", user)
    assert r.returncode == 1 and "LimitExceededException" in r.stderr, r.stderr

    r = rotary_cli(server, "key", "list", user)
    assert r.returncode == 0 and key["AccessKeyId"] in r.stdout
    assert key["SecretAccessKey"] not in r.stdout
    for action in ("deactivate", "activate", "delete"):
        r = rotary_cli(server, "key", action, key["AccessKeyId"])
        assert r.returncode == 0, (action, r.stderr)

    doc = tmp_path / "policy.json"
    doc.write_text(READ_ALL)
    r = rotary_cli(server, "user", "put-policy", user, "read", "--document", str(doc))
    assert r.returncode == 0, r.stderr
    r = rotary_cli(server, "user", "put-policy", user, "read2", "--document", "-",
                   stdin=READ_ALL)
    assert r.returncode == 0, r.stderr
    r = rotary_cli(server, "user", "list-policies", user)
    assert r.stdout.split() == ["read", "read2"]
    r = rotary_cli(server, "user", "get-policy", user, "read")
    assert json.loads(r.stdout) == json.loads(READ_ALL)
    r = rotary_cli(server, "user", "put-policy", user, "bad", "--document", "-",
                   stdin="{not json")
    assert r.returncode == 1 and "MalformedPolicyDocumentException" in r.stderr, r.stderr

    for args in (("group", "create", group), ("group", "add-user", group, user),
                 ("group", "put-policy", group, "read", "--document", str(doc))):
        r = rotary_cli(server, *args)
        assert r.returncode == 0, (args, r.stderr)
    r = rotary_cli(server, "group", "list-policies", group)
    assert r.stdout.split() == ["read"]
    r = rotary_cli(server, "user", "delete", user)
    assert r.returncode == 1 and "InvalidRequestException" in r.stderr, r.stderr

    for args in (("group", "delete-policy", group, "read"),
                 ("group", "remove-user", group, user), ("group", "delete", group),
                 ("user", "delete-policy", user, "read"),
                 ("user", "delete-policy", user, "read2"),
                 ("user", "untag", user, "team")):
        r = rotary_cli(server, *args)
        assert r.returncode == 0, (args, r.stderr)
    # The second key is still there.
    keys = json.loads(rotary_cli(server, "key", "list", user, "--output", "json").stdout)
    for k in keys["AccessKeyMetadata"]:
        assert rotary_cli(server, "key", "delete", k["AccessKeyId"]).returncode == 0
    r = rotary_cli(server, "user", "delete", user)
    assert r.returncode == 0, r.stderr
    r = rotary_cli(server, "user", "get", user)
    assert r.returncode == 1 and "ResourceNotFoundException" in r.stderr


def test_secret_never_in_logs(server, unique_name):
    name = user_name(unique_name, "leak")
    ok(server, "CreateUser", {"UserName": name})
    secret = ok(server, "CreateAccessKey", {"UserName": name})["AccessKey"]["SecretAccessKey"]
    assert secret not in server.log_tail(100000)
