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
