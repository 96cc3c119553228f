"""Access control over the real binary (issue #8): resource policies enforced, the root key as
break-glass administrator, and (with users) identity policies on every operation.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import rotary_testlib as lib
from rotary_testlib import unique_name

ACCOUNT_ROOT = f"arn:aws:iam::{lib.ACCOUNT}:root"


def _deny_all_policy(arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "NoOne", "Effect": "Deny", "Principal": "*",
            "Action": "secretsmanager:*", "Resource": "*",
        }],
    })


def test_resource_policy_deny_binds_root_except_policy_repair(sm):
    name = unique_name("acc-deny-root")
    arn = sm.create_secret(Name=name, SecretString="deny-root-value")["ARN"]
    sm.put_resource_policy(SecretId=name, ResourcePolicy=_deny_all_policy(arn),
                           BlockPublicPolicy=False)
    for call in (lambda: sm.get_secret_value(SecretId=name),
                 lambda: sm.describe_secret(SecretId=name),
                 lambda: sm.put_secret_value(SecretId=name, SecretString="x-new-value"),
                 lambda: sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)):
        with pytest.raises(ClientError) as e:
            call()
        err = e.value.response["Error"]
        assert err["Code"] == "AccessDeniedException", err
        assert err["Message"].startswith(f"User: {ACCOUNT_ROOT} is not authorized to perform: "
                                         "secretsmanager:"), err
        assert err["Message"].endswith(
            f"on resource: {arn} with an explicit deny in a resource-based policy"), err
        assert "deny-root-value" not in err["Message"]
    # Break-glass: root can read and remove the policy that locks everyone out.
    assert sm.get_resource_policy(SecretId=name)["ResourcePolicy"]
    sm.delete_resource_policy(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "deny-root-value"


def test_batch_get_reports_denied_secrets_in_errors(sm):
    open_name = unique_name("acc-batch-open")
    closed_name = unique_name("acc-batch-closed")
    sm.create_secret(Name=open_name, SecretString="batch-open-value")
    closed_arn = sm.create_secret(Name=closed_name, SecretString="batch-closed-value")["ARN"]
    sm.put_resource_policy(SecretId=closed_name, ResourcePolicy=_deny_all_policy(closed_arn),
                           BlockPublicPolicy=False)
    try:
        out = sm.batch_get_secret_value(SecretIdList=[open_name, closed_name])
        assert [v["Name"] for v in out["SecretValues"]] == [open_name], out
        errors = out["Errors"]
        assert len(errors) == 1 and errors[0]["ErrorCode"] == "AccessDeniedException", errors
        assert errors[0]["SecretId"] == closed_arn
        assert "batch-closed-value" not in json.dumps(out, default=str)
    finally:
        sm.delete_resource_policy(SecretId=closed_name)


def test_unenforceable_resource_policy_is_refused_and_changes_nothing(sm):
    name = unique_name("acc-bad-policy")
    sm.create_secret(Name=name, SecretString="bad-policy-value")
    bad = json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT},
                       "Action": "secretsmanager:GetSecretValue", "Resource": "*",
                       "Condition": {"NoSuchOperator": {"aws:SourceIp": "10.0.0.0/8"}}}],
    })
    with pytest.raises(ClientError) as e:
        sm.put_resource_policy(SecretId=name, ResourcePolicy=bad, BlockPublicPolicy=False)
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocumentException"
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


# ------------------------------------------------------------------------------------------
# Users and identity policies
# ------------------------------------------------------------------------------------------
def _ok(server, op, body=None, **sign_kw):
    r = lib.raw_call(server.url, f"rotary.{op}", json.dumps(body or {}), **sign_kw)
    assert r.status == 200, f"rotary.{op}: {r.status} {r.body[:400]!r}"
    return r.json


def _policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(server, name, policy=None, tags=None):
    """Creates a user with one access key (and an inline policy); returns a boto3 client
    for it and its key pair."""
    body = {"UserName": name}
    if tags:
        body["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    _ok(server, "CreateUser", body)
    key = _ok(server, "CreateAccessKey", {"UserName": name})["AccessKey"]
    if policy:
        _ok(server, "PutUserPolicy", {"UserName": name, "PolicyName": "inline",
                                      "PolicyDocument": policy})
    akid, secret = key["AccessKeyId"], key["SecretAccessKey"]
    return server.client(access_key=akid, secret_key=secret), akid, secret


def _denied(call, message_part=None):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDeniedException", err
    if message_part:
        assert message_part in err["Message"], err
    return err["Message"]


def _user_arn(name):
    return f"arn:aws:iam::{lib.ACCOUNT}:user/{name}"


def test_every_operation_denied_without_a_grant_and_allowed_with_one(server, sm):
    name = unique_name("acc-ops")
    arn = sm.create_secret(Name=name, SecretString="ops-value")["ARN"]
    sm.tag_resource(SecretId=name, Tags=[{"Key": "k0", "Value": "v0"}])
    current = sm.describe_secret(SecretId=name)["VersionIdsToStages"].popitem()[0]
    rp = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    user = unique_name("nobody").replace("/", "-")
    nobody, _, _ = _user(server, user)
    msg = _denied(lambda: nobody.get_secret_value(SecretId=name))
    assert msg == (f"User: {_user_arn(user)} is not authorized to perform: "
                   f"secretsmanager:GetSecretValue on resource: {arn} because no "
                   "identity-based policy allows the secretsmanager:GetSecretValue action")
    calls = {
        "DescribeSecret": lambda c: c.describe_secret(SecretId=name),
        "GetSecretValue": lambda c: c.get_secret_value(SecretId=name),
        "ListSecretVersionIds": lambda c: c.list_secret_version_ids(SecretId=name),
        "PutSecretValue": lambda c: c.put_secret_value(SecretId=name, SecretString="ops-2"),
        "UpdateSecret": lambda c: c.update_secret(SecretId=name, Description="d"),
        "TagResource": lambda c: c.tag_resource(SecretId=name,
                                                Tags=[{"Key": "k", "Value": "v"}]),
        "UntagResource": lambda c: c.untag_resource(SecretId=name, TagKeys=["k"]),
        "GetResourcePolicy": lambda c: c.get_resource_policy(SecretId=name),
        "ListSecrets": lambda c: c.list_secrets(MaxResults=1),
        "GetRandomPassword": lambda c: c.get_random_password(PasswordLength=12),
        "CreateSecret": lambda c: c.create_secret(Name=unique_name("acc-new"),
                                                  SecretString="new-value"),
        "CancelRotateSecret": lambda c: c.cancel_rotate_secret(SecretId=name),
        "UpdateSecretVersionStage": lambda c: c.update_secret_version_stage(
            SecretId=name, VersionStage="CUSTOM", MoveToVersionId=current),
        "PutResourcePolicy": lambda c: c.put_resource_policy(SecretId=name, ResourcePolicy=rp),
        "DeleteResourcePolicy": lambda c: c.delete_resource_policy(SecretId=name),
        "ValidateResourcePolicy": lambda c: c.validate_resource_policy(ResourcePolicy=rp),
        "BatchGetSecretValue": lambda c: c.batch_get_secret_value(SecretIdList=[name]),
        "RotateSecret": lambda c: c.rotate_secret(
            SecretId=name, RotateImmediately=False,
            RotationLambdaARN=f"arn:aws:lambda:{lib.REGION}:{lib.ACCOUNT}:function:"
                              "rotary-generic-password"),
        "DeleteSecret": lambda c: c.delete_secret(SecretId=name, RecoveryWindowInDays=7),
        "RestoreSecret": lambda c: c.restore_secret(SecretId=name),
    }
    for op, call in calls.items():
        if op == "BatchGetSecretValue":
            # Allowed to call it at all needs its own permission; then each secret is checked.
            _denied(lambda: call(nobody), "secretsmanager:BatchGetSecretValue")
            continue
        _denied(lambda: call(nobody), f"secretsmanager:{op}")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "ops-value"
    for op, call in calls.items():
        grantee, _, _ = _user(server, unique_name(f"g-{op}").replace("/", "-"), _policy(
            {"Effect": "Allow", "Action": f"secretsmanager:{op}", "Resource": "*"}))
        try:
            out = call(grantee)
            if op == "BatchGetSecretValue":
                # The batch permission alone does not read the secret: it is in Errors.
                assert out["SecretValues"] == [], out
                assert out["Errors"][0]["ErrorCode"] == "AccessDeniedException", out
        except ClientError as e:
            code = e.response["Error"]["Code"]
            # Allowed through authorization; the operation itself may refuse.
            assert code != "AccessDeniedException", (op, e.response["Error"])
        # ... and only that action.
        other = "DeleteSecret" if op != "DeleteSecret" else "GetSecretValue"
        _denied(lambda: grantee.delete_secret(SecretId=name, RecoveryWindowInDays=7)
                if other == "DeleteSecret" else grantee.get_secret_value(SecretId=name))


def test_explicit_deny_beats_allow_and_deny_message(server, sm):
    name = unique_name("acc-deny")
    arn = sm.create_secret(Name=name, SecretString="deny-value")["ARN"]
    user = unique_name("denied").replace("/", "-")
    c, _, _ = _user(server, user, _policy(
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Sid": "NoDelete", "Effect": "Deny", "Action": "secretsmanager:DeleteSecret",
         "Resource": "*"}))
    assert c.get_secret_value(SecretId=name)["SecretString"] == "deny-value"
    msg = _denied(lambda: c.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True))
    assert msg == (f"User: {_user_arn(user)} is not authorized to perform: "
                   f"secretsmanager:DeleteSecret on resource: {arn} with an explicit deny "
                   "in an identity-based policy")
    assert sm.describe_secret(SecretId=name)["Name"] == name


def test_tag_conditions_and_request_tags(server, sm):
    team = unique_name("team-a")
    mine = unique_name("acc-tag-mine")
    theirs = unique_name("acc-tag-theirs")
    sm.create_secret(Name=mine, SecretString="mine-value", Tags=[{"Key": "team", "Value": "a"}])
    sm.create_secret(Name=theirs, SecretString="theirs-value",
                     Tags=[{"Key": "team", "Value": "b"}])
    c, _, _ = _user(server, team.replace("/", "-"), _policy(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
         "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "a"}}},
        {"Effect": "Allow", "Action": "secretsmanager:CreateSecret", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/team": "a"},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}}))
    assert c.get_secret_value(SecretId=mine)["SecretString"] == "mine-value"
    _denied(lambda: c.get_secret_value(SecretId=theirs))
    c.create_secret(Name=unique_name("acc-tag-new"), SecretString="v1",
                    Tags=[{"Key": "team", "Value": "a"}])
    _denied(lambda: c.create_secret(Name=unique_name("acc-tag-new"), SecretString="v2"))
    _denied(lambda: c.create_secret(Name=unique_name("acc-tag-new"), SecretString="v3",
                                    Tags=[{"Key": "team", "Value": "b"}]))
    _denied(lambda: c.create_secret(Name=unique_name("acc-tag-new"), SecretString="v4",
                                    Tags=[{"Key": "team", "Value": "a"},
                                          {"Key": "extra", "Value": "x"}]))


def test_username_variable_in_resource(server, sm):
    user = unique_name("varuser").replace("/", "-")
    own = f"home/{user}/db"
    other = unique_name("home/someone-else/db")
    sm.create_secret(Name=own, SecretString="own-value")
    sm.create_secret(Name=other, SecretString="other-value")
    c, _, _ = _user(server, user, _policy({
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
        "Resource": f"arn:aws:secretsmanager:*:{lib.ACCOUNT}:secret:home/${{aws:username}}/*"}))
    assert c.get_secret_value(SecretId=own)["SecretString"] == "own-value"
    _denied(lambda: c.get_secret_value(SecretId=other))


def test_resource_policy_grants_a_second_user_and_its_deny_beats_identity_allow(server, sm):
    name = unique_name("acc-rp")
    arn = sm.create_secret(Name=name, SecretString="rp-value")["ARN"]
    reader_name = unique_name("rp-reader").replace("/", "-")
    admin_name = unique_name("rp-admin").replace("/", "-")
    reader, _, _ = _user(server, reader_name)
    admin, _, _ = _user(server, admin_name, _policy(
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}))
    _denied(lambda: reader.get_secret_value(SecretId=name))
    sm.put_resource_policy(SecretId=name, ResourcePolicy=_policy(
        {"Effect": "Allow", "Principal": {"AWS": _user_arn(reader_name)},
         "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": _user_arn(admin_name)},
         "Action": "secretsmanager:GetSecretValue", "Resource": "*"}))
    assert reader.get_secret_value(SecretId=name)["SecretString"] == "rp-value"
    _denied(lambda: reader.describe_secret(SecretId=name))
    msg = _denied(lambda: admin.get_secret_value(SecretId=name))
    assert msg.endswith(f"on resource: {arn} with an explicit deny in a resource-based policy")
    assert admin.describe_secret(SecretId=name)["Name"] == name


def test_deactivated_and_deleted_keys_are_refused(server, sm):
    name = unique_name("acc-key")
    sm.create_secret(Name=name, SecretString="key-value")
    user = unique_name("keyuser").replace("/", "-")
    c, akid, _ = _user(server, user, _policy(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}))
    assert c.get_secret_value(SecretId=name)["SecretString"] == "key-value"
    _ok(server, "UpdateAccessKey", {"UserName": user, "AccessKeyId": akid, "Status": "Inactive"})
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId=name)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    _ok(server, "UpdateAccessKey", {"UserName": user, "AccessKeyId": akid, "Status": "Active"})
    assert c.get_secret_value(SecretId=name)["SecretString"] == "key-value"
    keys = _ok(server, "ListAccessKeys", {"UserName": user})["AccessKeyMetadata"]
    assert any(k["AccessKeyId"] == akid for k in keys), keys
    _ok(server, "DeleteAccessKey", {"UserName": user, "AccessKeyId": akid})
    with pytest.raises(ClientError) as e:
        c.get_secret_value(SecretId=name)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_non_administrator_cannot_register_functions_or_manage_users(server):
    user = unique_name("plain").replace("/", "-")
    _, akid, secret = _user(server, user, _policy(
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}))
    for op, body in (("CreateFunction", {"Name": "evil", "Command": "true"}),
                     ("CreateUser", {"UserName": unique_name("x").replace("/", "-")}),
                     ("PutUserPolicy", {"UserName": user, "PolicyName": "escalate",
                                        "PolicyDocument": _policy(
                                            {"Effect": "Allow", "Action": "*",
                                             "Resource": "*"})})):
        r = lib.raw_call(server.url, f"rotary.{op}", json.dumps(body), access_key=akid,
                         secret_key=secret)
        assert r.status == 400 and r.json["__type"] == "AccessDeniedException", (op, r.json)
        assert f"rotary:{op}" in r.json["Message"], r.json
    functions = _ok(server, "ListFunctions")["Functions"]
    assert "evil" not in {f["Name"] for f in functions}


def test_group_policy_applies_to_members(server, sm):
    name = unique_name("acc-group")
    sm.create_secret(Name=name, SecretString="group-value")
    user = unique_name("member").replace("/", "-")
    group = unique_name("readers").replace("/", "-")
    c, _, _ = _user(server, user)
    _denied(lambda: c.get_secret_value(SecretId=name))
    _ok(server, "CreateGroup", {"GroupName": group})
    _ok(server, "PutGroupPolicy", {"GroupName": group, "PolicyName": "read",
                                   "PolicyDocument": _policy(
                                       {"Effect": "Allow",
                                        "Action": "secretsmanager:GetSecretValue",
                                        "Resource": "*"})})
    _ok(server, "AddUserToGroup", {"GroupName": group, "UserName": user})
    assert c.get_secret_value(SecretId=name)["SecretString"] == "group-value"
    _ok(server, "RemoveUserFromGroup", {"GroupName": group, "UserName": user})
    _denied(lambda: c.get_secret_value(SecretId=name))


def test_simulate_names_the_deciding_statement(server, sm):
    name = unique_name("acc-sim")
    arn = sm.create_secret(Name=name, SecretString="sim-value")["ARN"]
    user = unique_name("sim").replace("/", "-")
    _user(server, user, _policy(
        {"Sid": "Read", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "*"},
        {"Sid": "OfficeOnly", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}))
    out = _ok(server, "SimulatePolicy", {"PrincipalName": user,
                                         "Action": "secretsmanager:GetSecretValue",
                                         "Resource": arn,
                                         "Context": {"aws:SourceIp": ["10.1.2.3"]}})
    assert out["Decision"] == "allowed" and "Read" in out["MatchedStatement"], out
    out = _ok(server, "SimulatePolicy", {"PrincipalName": user,
                                         "Action": "secretsmanager:GetSecretValue",
                                         "Resource": arn,
                                         "Context": {"aws:SourceIp": ["192.0.2.1"]}})
    assert out["Decision"] == "explicitDeny" and "OfficeOnly" in out["MatchedStatement"], out
    # A real request from 127.0.0.1 is outside 10.0.0.0/8: denied by the same statement.


def test_denied_and_unauthenticated_calls_are_audited(server, sm):
    name = unique_name("acc-audit")
    sm.create_secret(Name=name, SecretString="audit-secret-canary")
    user = unique_name("audited").replace("/", "-")
    c, akid, _ = _user(server, user)
    _denied(lambda: c.get_secret_value(SecretId=name))
    bad = lib.raw_call(server.url, "GetSecretValue", json.dumps({"SecretId": name}),
                       sign=False)
    assert bad.status == 400
    import time
    time.sleep(0.3)  # the writer batches; records are on disk within its sync interval
    lines = [json.loads(line) for line in
             (server.data_dir / "audit.log").read_text().splitlines()]
    denied = [r for r in lines if r.get("AccessKeyId") == akid and r["Outcome"] == "Denied"]
    assert denied and denied[-1]["Operation"] == "secretsmanager:GetSecretValue", lines[-5:]
    assert denied[-1]["PrincipalArn"] == _user_arn(user)
    assert denied[-1]["Reason"]["Kind"] == "ImplicitDeny", denied[-1]
    assert any(r["Outcome"] == "AuthenticationFailed" for r in lines[-10:]), lines[-10:]
    assert "audit-secret-canary" not in (server.data_dir / "audit.log").read_text()


def test_rotation_session_reads_its_secret_and_master_secret_only(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))
    from rotlib import Rotary  # noqa: E402

    srv = lib.Server(tmp_path / "sess", name="sess", env={"ROTARY_ROTATION_MAX_ATTEMPTS": "1"})
    srv.start()
    try:
        sm, rot = srv.client(), Rotary(srv)
        master_arn = sm.create_secret(Name="sess/master", SecretString="master-value")["ARN"]
        other_arn = sm.create_secret(Name="sess/other", SecretString="other-value")["ARN"]
        out_dir = lib.function_writable_dir("session")
        script = f'''import json, os, sys, boto3
event = json.load(sys.stdin)
sm = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])
def try_(f):
    try:
        f()
        return "OK"
    except Exception as e:
        return getattr(e, "response", {{}}).get("Error", {{}}).get("Code", type(e).__name__)
res = {{
    "own": try_(lambda: sm.get_secret_value(SecretId=event["SecretId"])),
    "master": try_(lambda: sm.get_secret_value(SecretId="{master_arn}")),
    "master_write": try_(lambda: sm.put_secret_value(SecretId="{master_arn}",
                                                     SecretString="x")),
    "other": try_(lambda: sm.get_secret_value(SecretId="{other_arn}")),
    "list": try_(lambda: sm.list_secrets()),
}}
open("{out_dir}/result.json", "w").write(json.dumps(res))
sys.exit(1)
'''
        (srv.function_dir / "probe_session.py").write_text(script)
        cmd = rot.script("probe-session.sh",
                         f'exec {lib.FUNCTION_PYTHON} "$(dirname "$0")/probe_session.py"')
        arn = rot.create_function("probe-session", Command=cmd, TimeoutSeconds=60)
        name = "sess/app"
        sm.create_secret(Name=name, SecretString=json.dumps(
            {"username": "u", "password": "p-123456", "masterarn": master_arn}))
        token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn)["VersionId"]
        rot.wait_outcome(name, token, outcomes=("Failed",), timeout=60)
        res = json.loads((out_dir / "result.json").read_text())
        assert res == {"own": "OK", "master": "OK", "master_write": "AccessDeniedException",
                       "other": "AccessDeniedException", "list": "AccessDeniedException"}, res
    finally:
        srv.stop()


def test_validate_resource_policy_reports_engine_findings(sm):
    good = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    out = sm.validate_resource_policy(ResourcePolicy=good)
    assert out["PolicyValidationPassed"] is True and out["ValidationErrors"] == [], out
    typo = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT},
        "Action": "secretsmanager:GetSecretValu", "Resource": "*"}]})
    out = sm.validate_resource_policy(ResourcePolicy=typo)
    assert out["PolicyValidationPassed"] is False, out
    assert [e["CheckName"] for e in out["ValidationErrors"]] == ["INVALID_ACTION"], out
