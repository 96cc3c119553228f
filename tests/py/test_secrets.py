"""Secrets Manager operations through boto3: happy paths and every spec'd error case.

Spec references (§) are to /work/shared/aws-sm-spec.md. Error cases assert code, exact
message where the spec gives one, HTTP 400, and that the secret's state did not change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import string
import time

import pytest
from botocore.exceptions import ClientError

from rotary_testlib import (
    ACCOUNT,
    BAD_NEXT_TOKEN,
    BOTH_VALUES,
    INVALID_NAME,
    MARKED_FOR_DELETION,
    NEED_VALUE,
    NOT_FOUND,
    REGION,
    SCHEDULED_CREATE,
    STAGE_MISMATCH,
    WINDOW_AND_FORCE,
    WINDOW_RANGE,
    arn_regex,
    exists_msg,
    expect_error,
    list_all_versions,
    midnight_utc_candidates,
    new_token,
    remove_from_empty_msg,
    snapshot,
    stage_not_found_msg,
    stages,
    strip_meta,
    token_in_use_msg,
    unique_name,
    validation_msg,
    vid_not_found_msg,
)


def ts(value) -> float:
    """boto3 timestamps are datetimes; return epoch seconds."""
    assert isinstance(value, dt.datetime), value
    return value.timestamp()


@pytest.fixture
def mk(sm):
    """mk(value="v", **extra) -> dict(name, arn, vid) of a fresh secret."""

    def _mk(value="initial-value", prefix="s", **extra):
        name = unique_name(prefix)
        kw = {"Name": name, **extra}
        if isinstance(value, bytes):
            kw["SecretBinary"] = value
        elif value is not None:
            kw["SecretString"] = value
        r = sm.create_secret(**kw)
        return {"name": name, "arn": r["ARN"], "vid": r.get("VersionId"), "resp": r}

    return _mk


@pytest.fixture
def deleted(sm, mk):
    """A secret with two versions, scheduled for deletion (default window)."""
    s = mk("v1")
    v2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
    sm.tag_resource(SecretId=s["name"], Tags=[{"Key": "k", "Value": "v"}])
    sm.delete_secret(SecretId=s["name"])
    s["v2"] = v2
    return s


# =============================================================================================
# CreateSecret (§3.1)
# =============================================================================================
class TestCreateSecret:
    def test_create_with_string_returns_arn_name_version(self, sm):
        name = unique_name("c")
        tok = new_token()
        r = sm.create_secret(Name=name, SecretString="hello", ClientRequestToken=tok)
        body = strip_meta(r)
        assert set(body) == {"ARN", "Name", "VersionId"}
        assert r["Name"] == name
        assert r["VersionId"] == tok
        assert arn_regex(name).match(r["ARN"]), r["ARN"]
        g = sm.get_secret_value(SecretId=name)
        assert g["SecretString"] == "hello"
        assert "SecretBinary" not in g
        assert g["VersionId"] == tok
        assert g["VersionStages"] == ["AWSCURRENT"]
        assert stages(sm, name) == {tok: ["AWSCURRENT"]}

    def test_arn_suffixes_are_random_per_secret(self, sm):
        suffixes = set()
        for _ in range(5):
            name = unique_name("sfx")
            arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
            assert arn_regex(name).match(arn)
            suffixes.add(arn[-6:])
        assert len(suffixes) == 5

    def test_create_without_value_has_no_versions(self, sm):
        name = unique_name("empty")
        r = sm.create_secret(Name=name, ClientRequestToken=new_token())
        assert set(strip_meta(r)) == {"ARN", "Name"}
        d = sm.describe_secret(SecretId=name)
        assert "VersionIdsToStages" not in d
        expect_error(sm.get_secret_value, "ResourceNotFoundException",
                     stage_not_found_msg("AWSCURRENT"), SecretId=name)
        assert list_all_versions(sm, name) == []

    def test_value_added_later_to_empty_secret_becomes_current(self, sm):
        name = unique_name("empty")
        sm.create_secret(Name=name)
        v = sm.put_secret_value(SecretId=name, SecretString="first")
        assert v["VersionStages"] == ["AWSCURRENT"]
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "first"
        name2 = unique_name("empty")
        sm.create_secret(Name=name2)
        u = sm.update_secret(SecretId=name2, SecretString="via-update")
        assert "VersionId" in u
        assert stages(sm, name2) == {u["VersionId"]: ["AWSCURRENT"]}

    def test_create_with_description_and_tags(self, sm):
        name = unique_name("c")
        tags = [{"Key": "b-key", "Value": "1"}, {"Key": "a-key", "Value": ""}]
        sm.create_secret(Name=name, SecretString="x", Description="my desc", Tags=tags)
        d = sm.describe_secret(SecretId=name)
        assert d["Description"] == "my desc"
        assert d["Tags"] == tags  # insertion order, empty value kept

    def test_name_with_all_allowed_characters(self, sm):
        name = "Valid/_+=.@-Name-" + unique_name("x")
        r = sm.create_secret(Name=name, SecretString="ok")
        assert r["Name"] == name
        assert arn_regex(name).match(r["ARN"])
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "ok"

    def test_name_ending_like_arn_suffix_is_accepted(self, sm):
        name = unique_name("amb") + "-a1b2c3"
        sm.create_secret(Name=name, SecretString="ok")
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "ok"
        assert sm.describe_secret(SecretId=name)["Name"] == name

    def test_name_512_ok_513_rejected(self, sm_raw):
        base = unique_name("long")
        name512 = base + "a" * (512 - len(base))
        assert len(name512) == 512
        r = sm_raw.create_secret(Name=name512, SecretString="x")
        assert r["Name"] == name512
        name513 = base + "b" * (513 - len(base))
        resp = expect_error(sm_raw.create_secret, "ValidationException",
                            Name=name513, SecretString="x")
        assert "Member must have length less than or equal to 512" in resp["Error"]["Message"]
        expect_error(sm_raw.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name513)

    @pytest.mark.parametrize("bad", ["has space", "star*", "ques?tion", "brack]et",
                                     "back\\slash", "semi;colon", "quote'", "hash#", "pct%",
                                     "comma,", "colon:x"])
    def test_invalid_name_characters(self, sm_raw, bad):
        name = unique_name("bad") + bad
        expect_error(sm_raw.create_secret, "ValidationException", INVALID_NAME,
                     Name=name, SecretString="x", ClientRequestToken=new_token())
        # nothing was created (the lookup by that name is itself a name-syntax error)
        assert sm_raw.list_secrets(
            Filters=[{"Key": "name", "Values": [name.split(" ")[0][:20]]}]
        )["SecretList"] == []

    def test_name_taken_resource_exists(self, sm, sm_raw, mk):
        s = mk("orig", Description="d")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.create_secret, "ResourceExistsException", exists_msg(s["name"]),
                     Name=s["name"], SecretString="other")
        # no value either
        expect_error(sm_raw.create_secret, "ResourceExistsException", exists_msg(s["name"]),
                     Name=s["name"])
        assert snapshot(sm, s["name"]) == before

    def test_idempotent_replay_same_token_same_value(self, sm):
        name = unique_name("idem")
        tok = new_token()
        r1 = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
        before = snapshot(sm, name)
        r2 = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
        assert (r2["ARN"], r2["Name"], r2["VersionId"]) == (r1["ARN"], name, tok)
        assert snapshot(sm, name) == before
        assert len(list_all_versions(sm, name)) == 1

    def test_idempotent_replay_binary(self, sm):
        name = unique_name("idemb")
        tok = new_token()
        r1 = sm.create_secret(Name=name, SecretBinary=b"\x00\xff", ClientRequestToken=tok)
        r2 = sm.create_secret(Name=name, SecretBinary=b"\x00\xff", ClientRequestToken=tok)
        assert r2["VersionId"] == r1["VersionId"] == tok
        assert len(list_all_versions(sm, name)) == 1

    def test_same_token_different_value(self, sm, sm_raw):
        name = unique_name("idem")
        tok = new_token()
        r1 = sm.create_secret(Name=name, SecretString="one", ClientRequestToken=tok)
        before = snapshot(sm, name)
        expect_error(sm_raw.create_secret, "ResourceExistsException",
                     token_in_use_msg(tok, r1["ARN"]),
                     Name=name, SecretString="two", ClientRequestToken=tok)
        # same bytes but other type is a different value too
        expect_error(sm_raw.create_secret, "ResourceExistsException",
                     token_in_use_msg(tok, r1["ARN"]),
                     Name=name, SecretBinary=b"one", ClientRequestToken=tok)
        assert snapshot(sm, name) == before

    def test_same_token_in_two_secrets_is_independent(self, sm):
        tok = new_token()
        a, b = unique_name("tokA"), unique_name("tokB")
        assert sm.create_secret(Name=a, SecretString="a", ClientRequestToken=tok)["VersionId"] == tok
        assert sm.create_secret(Name=b, SecretString="b", ClientRequestToken=tok)["VersionId"] == tok
        assert sm.get_secret_value(SecretId=a)["SecretString"] == "a"
        assert sm.get_secret_value(SecretId=b)["SecretString"] == "b"

    def test_both_string_and_binary(self, sm_raw):
        name = unique_name("both")
        expect_error(sm_raw.create_secret, "InvalidParameterException", BOTH_VALUES,
                     Name=name, SecretString="s", SecretBinary=b"b")
        expect_error(sm_raw.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name)

    def test_empty_string_value_rejected(self, sm_raw):
        name = unique_name("emptyval")
        expect_error(sm_raw.create_secret, "ValidationException", Name=name, SecretString="")
        expect_error(sm_raw.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name)

    def test_client_request_token_too_short(self, sm_raw):
        name = unique_name("shorttok")
        with pytest.raises(ClientError) as ei:
            sm_raw.create_secret(Name=name, SecretString="x", ClientRequestToken="a" * 31)
        assert ei.value.response["Error"]["Code"] in ("ValidationException",
                                                      "InvalidParameterException")
        expect_error(sm_raw.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name)

    def test_reserved_aws_tag_prefix_rejected(self, sm_raw):  # [E]
        name = unique_name("awstag")
        expect_error(sm_raw.create_secret, "InvalidParameterException", Name=name,
                     SecretString="x", Tags=[{"Key": "aws:foo", "Value": "1"}])
        expect_error(sm_raw.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name)

    def test_recreate_after_force_delete_gets_new_arn(self, sm):
        name = unique_name("recreate")
        arn1 = sm.create_secret(Name=name, SecretString="one")["ARN"]
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
        arn2 = sm.create_secret(Name=name, SecretString="two")["ARN"]
        assert arn_regex(name).match(arn2)
        assert arn1 != arn2
        assert sm.get_secret_value(SecretId=arn2)["SecretString"] == "two"
        expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND, SecretId=arn1)
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=arn1)


# =============================================================================================
# Values: string/binary round trips and size limits (§4.5)
# =============================================================================================
class TestValues:
    def test_binary_round_trip(self, sm):
        name = unique_name("bin")
        data = b"\x00\x01\x02\xff"
        sm.create_secret(Name=name, SecretBinary=data)
        g = sm.get_secret_value(SecretId=name)
        assert g["SecretBinary"] == data
        assert "SecretString" not in g
        p = sm.put_secret_value(SecretId=name, SecretBinary=bytes(range(256)))
        g2 = sm.get_secret_value(SecretId=name)
        assert g2["SecretBinary"] == bytes(range(256))
        assert g2["VersionId"] == p["VersionId"]
        g1 = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
        assert g1["SecretBinary"] == data

    def test_type_switch_string_to_binary(self, sm):
        name = unique_name("sw")
        sm.create_secret(Name=name, SecretString="text")
        sm.put_secret_value(SecretId=name, SecretBinary=b"bytes")
        g = sm.get_secret_value(SecretId=name)
        assert g["SecretBinary"] == b"bytes" and "SecretString" not in g
        p = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
        assert p["SecretString"] == "text" and "SecretBinary" not in p

    def test_unicode_and_json_byte_exact(self, sm):
        name = unique_name("uni")
        value = '{"z": 1, "a": "h\u00e9llo \u2713 \U0001d11e",  "m":[1,2 ,3]}\n\t'
        sm.create_secret(Name=name, SecretString=value)
        assert sm.get_secret_value(SecretId=name)["SecretString"] == value

    def test_string_size_limit(self, sm, sm_raw):
        name = unique_name("big")
        ok = "x" * 65536
        sm.create_secret(Name=name, SecretString=ok)
        assert sm.get_secret_value(SecretId=name)["SecretString"] == ok
        before = snapshot(sm, name)
        expect_error(sm_raw.put_secret_value, "ValidationException",
                     SecretId=name, SecretString="y" * 65537)
        expect_error(sm_raw.update_secret, "ValidationException",
                     SecretId=name, SecretString="y" * 65537)
        assert snapshot(sm, name) == before
        name2 = unique_name("big")
        expect_error(sm_raw.create_secret, "ValidationException",
                     Name=name2, SecretString="y" * 65537)
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name2)

    def test_binary_size_limit(self, sm, sm_raw):
        name = unique_name("bigb")
        ok = os.urandom(65536)
        sm.create_secret(Name=name, SecretBinary=ok)
        assert sm.get_secret_value(SecretId=name)["SecretBinary"] == ok
        before = snapshot(sm, name)
        expect_error(sm_raw.put_secret_value, "ValidationException",
                     SecretId=name, SecretBinary=b"\x01" * 65537)
        assert snapshot(sm, name) == before
        name2 = unique_name("bigb")
        expect_error(sm_raw.create_secret, "ValidationException",
                     Name=name2, SecretBinary=b"\x01" * 65537)
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name2)


# =============================================================================================
# Secret identifiers (§2.2)
# =============================================================================================
class TestLookup:
    def test_lookup_by_name_full_arn_partial_arn(self, sm, mk):
        s = mk("lookup-value")
        arn = s["arn"]
        partial = arn[:-7]
        assert partial.endswith(":secret:" + s["name"])
        for sid in (s["name"], arn, partial):
            g = sm.get_secret_value(SecretId=sid)
            assert g["SecretString"] == "lookup-value", sid
            assert g["ARN"] == arn and g["Name"] == s["name"]
            d = sm.describe_secret(SecretId=sid)
            assert d["ARN"] == arn
            assert sm.list_secret_version_ids(SecretId=sid)["ARN"] == arn
        # write ops by partial ARN too
        sm.put_secret_value(SecretId=partial, SecretString="v2")
        sm.tag_resource(SecretId=arn, Tags=[{"Key": "x", "Value": "y"}])
        assert sm.get_secret_value(SecretId=s["name"])["SecretString"] == "v2"

    def test_name_ending_like_suffix_lookup_via_arn(self, sm):
        name = unique_name("amb") + "-Zz9Yy8"
        arn = sm.create_secret(Name=name, SecretString="amb")["ARN"]
        assert sm.get_secret_value(SecretId=arn)["SecretString"] == "amb"
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "amb"

    def test_missing_secret(self, sm):
        name = unique_name("missing")
        for call in (sm.get_secret_value, sm.describe_secret, sm.list_secret_version_ids,
                     sm.restore_secret, sm.get_resource_policy, sm.delete_resource_policy):
            expect_error(call, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
        expect_error(sm.put_secret_value, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, SecretString="x")
        expect_error(sm.update_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, Description="x")
        expect_error(sm.tag_resource, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, Tags=[{"Key": "a", "Value": "b"}])
        expect_error(sm.untag_resource, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, TagKeys=["a"])
        expect_error(sm.delete_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)
        expect_error(sm.update_secret_version_stage, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, VersionStage="X", MoveToVersionId=new_token())
        expect_error(sm.put_resource_policy, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=name, ResourcePolicy=json.dumps(POLICY))
        # a well-formed but unknown full ARN
        fake = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbC123"
        expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND, SecretId=fake)

    @pytest.mark.parametrize("op", [
        "describe_secret", "get_secret_value", "list_secret_version_ids", "delete_secret",
        "put_secret_value", "tag_resource", "untag_resource", "update_secret",
        "validate_resource_policy",
    ])
    def test_invalid_name_in_secret_id(self, sm_raw, op):
        sid = "bad name*" + unique_name("")
        extra = {
            "put_secret_value": {"SecretString": "x"},
            "tag_resource": {"Tags": [{"Key": "a", "Value": "b"}]},
            "untag_resource": {"TagKeys": ["a"]},
            "update_secret": {"Description": "d"},
            "validate_resource_policy": {"ResourcePolicy": json.dumps(POLICY)},
        }.get(op, {})
        expect_error(getattr(sm_raw, op), "ValidationException", INVALID_NAME,
                     SecretId=sid, **extra)


# =============================================================================================
# GetSecretValue (§3.4)
# =============================================================================================
class TestGetSecretValue:
    def test_response_shape_and_version_created_date(self, sm, mk):
        s = mk("one")
        t_mid = time.time()
        p = sm.put_secret_value(SecretId=s["name"], SecretString="two")
        g = sm.get_secret_value(SecretId=s["name"])
        assert set(strip_meta(g)) == {"ARN", "Name", "VersionId", "SecretString",
                                      "VersionStages", "CreatedDate"}
        assert g["VersionId"] == p["VersionId"]
        # CreatedDate is the *version's* creation date
        assert ts(g["CreatedDate"]) >= t_mid - 1
        d = sm.describe_secret(SecretId=s["name"])
        assert ts(d["CreatedDate"]) <= ts(g["CreatedDate"])
        lv = {v["VersionId"]: v for v in list_all_versions(sm, s["name"])}
        assert abs(ts(lv[p["VersionId"]]["CreatedDate"]) - ts(g["CreatedDate"])) < 0.002

    def test_by_stage_and_version(self, sm, sm_raw, mk):
        s = mk("v1")
        v2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
        assert sm.get_secret_value(SecretId=s["name"], VersionStage="AWSPREVIOUS")[
            "SecretString"] == "v1"
        assert sm.get_secret_value(SecretId=s["name"], VersionId=s["vid"])[
            "SecretString"] == "v1"
        g = sm.get_secret_value(SecretId=s["name"], VersionId=v2, VersionStage="AWSCURRENT")
        assert g["SecretString"] == "v2"
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.get_secret_value, "ResourceNotFoundException",
                     stage_not_found_msg("NOSUCHSTAGE"), SecretId=s["name"],
                     VersionStage="NOSUCHSTAGE")
        missing = new_token()
        expect_error(sm_raw.get_secret_value, "ResourceNotFoundException",
                     vid_not_found_msg(missing), SecretId=s["name"], VersionId=missing)
        expect_error(sm_raw.get_secret_value, "InvalidRequestException", STAGE_MISMATCH,
                     SecretId=s["name"], VersionId=s["vid"], VersionStage="AWSCURRENT")
        assert snapshot(sm, s["name"]) == before

    def test_last_accessed_date_set_by_read_not_by_describe(self, sm, mk):
        s = mk("x")
        d0 = sm.describe_secret(SecretId=s["name"])
        assert "LastAccessedDate" not in d0
        d1 = sm.describe_secret(SecretId=s["name"])
        assert "LastAccessedDate" not in d1  # DescribeSecret does not set it
        t0 = time.time()
        sm.get_secret_value(SecretId=s["name"])
        t1 = time.time()
        d2 = sm.describe_secret(SecretId=s["name"])
        assert "LastAccessedDate" in d2
        lad = ts(d2["LastAccessedDate"])
        assert lad in midnight_utc_candidates(t0, t1), (lad, t0)
        sm.get_secret_value(SecretId=s["name"])
        assert ts(sm.describe_secret(SecretId=s["name"])["LastAccessedDate"]) == lad

    def test_version_last_accessed_only_for_read_versions(self, sm, mk):
        s = mk("v1")
        v2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
        sm.get_secret_value(SecretId=s["name"])  # reads v2 only
        vs = {v["VersionId"]: v for v in list_all_versions(sm, s["name"])}
        assert "LastAccessedDate" in vs[v2]
        assert "LastAccessedDate" not in vs[s["vid"]]


# =============================================================================================
# PutSecretValue / UpdateSecret / labels (§3.2, §3.3, §4.2, §4.3)
# =============================================================================================
class TestPutSecretValue:
    def test_current_previous_dragging(self, sm, mk):
        s = mk("v1")
        v1 = s["vid"]
        p2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")
        assert set(strip_meta(p2)) == {"ARN", "Name", "VersionId", "VersionStages"}
        assert p2["VersionStages"] == ["AWSCURRENT"]
        v2 = p2["VersionId"]
        assert stages(sm, s["name"]) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
        v3 = sm.put_secret_value(SecretId=s["name"], SecretString="v3")["VersionId"]
        assert stages(sm, s["name"]) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
        # v1 is now deprecated: hidden by default, listed with IncludeDeprecated, readable
        default = [v["VersionId"] for v in list_all_versions(sm, s["name"], False)]
        assert sorted(default) == sorted([v2, v3])
        full = {v["VersionId"]: v for v in list_all_versions(sm, s["name"], True)}
        assert set(full) == {v1, v2, v3}
        assert "VersionStages" not in full[v1]
        assert sm.get_secret_value(SecretId=s["name"], VersionId=v1)["SecretString"] == "v1"

    def test_put_drops_pending_from_old_current(self, sm, mk):
        s = mk("v1")
        sm.update_secret_version_stage(SecretId=s["name"], VersionStage="AWSPENDING",
                                       MoveToVersionId=s["vid"])
        assert stages(sm, s["name"]) == {s["vid"]: ["AWSCURRENT", "AWSPENDING"]}
        v2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
        st = stages(sm, s["name"])
        assert st[v2] == ["AWSCURRENT"]
        assert "AWSPREVIOUS" in st[s["vid"]]
        assert "AWSPENDING" not in st[s["vid"]]

    def test_explicit_version_stages(self, sm, mk):
        s = mk("v1")
        v1 = s["vid"]
        r = sm.put_secret_value(SecretId=s["name"], SecretString="custom",
                                VersionStages=["BLUE"])
        v2 = r["VersionId"]
        assert r["VersionStages"] == ["BLUE"]
        # AWSCURRENT did not move
        assert stages(sm, s["name"]) == {v1: ["AWSCURRENT"], v2: ["BLUE"]}
        assert sm.get_secret_value(SecretId=s["name"])["SecretString"] == "v1"
        assert sm.get_secret_value(SecretId=s["name"], VersionStage="BLUE")[
            "SecretString"] == "custom"
        # moving BLUE to a newer version deprecates v2
        v3 = sm.put_secret_value(SecretId=s["name"], SecretString="c3",
                                 VersionStages=["BLUE"])["VersionId"]
        assert stages(sm, s["name"]) == {v1: ["AWSCURRENT"], v3: ["BLUE"]}
        assert v2 in {v["VersionId"] for v in list_all_versions(sm, s["name"], True)}

    def test_explicit_awscurrent_moves_previous(self, sm, mk):
        s = mk("v1")
        r = sm.put_secret_value(SecretId=s["name"], SecretString="v2",
                                VersionStages=["AWSCURRENT", "GREEN"])
        assert r["VersionStages"] == ["AWSCURRENT", "GREEN"]
        assert stages(sm, s["name"]) == {s["vid"]: ["AWSPREVIOUS"],
                                         r["VersionId"]: ["AWSCURRENT", "GREEN"]}

    def test_labels_sorted_in_responses(self, sm, mk):
        s = mk("v1")
        r = sm.put_secret_value(SecretId=s["name"], SecretString="a",
                                VersionStages=["SAMPLESTAGE1", "SAMPLESTAGE0"])
        assert r["VersionStages"] == ["SAMPLESTAGE0", "SAMPLESTAGE1"]
        r2 = sm.put_secret_value(SecretId=s["name"], SecretString="b",
                                 VersionStages=["one", "two", "three"])
        assert r2["VersionStages"] == ["one", "three", "two"]
        g = sm.get_secret_value(SecretId=s["name"], VersionId=r2["VersionId"])
        assert g["VersionStages"] == ["one", "three", "two"]
        d = sm.describe_secret(SecretId=s["name"])
        assert d["VersionIdsToStages"][r2["VersionId"]] == ["one", "three", "two"]
        lv = {v["VersionId"]: v for v in list_all_versions(sm, s["name"])}
        assert lv[r2["VersionId"]]["VersionStages"] == ["one", "three", "two"]

    def test_replay_create_token_returns_existing_version(self, sm, mk):
        tok = new_token()
        s = mk("same", ClientRequestToken=tok)
        sm.put_secret_value(SecretId=s["name"], SecretString="other",
                            VersionStages=["OTHER"])
        before = snapshot(sm, s["name"])
        r = sm.put_secret_value(SecretId=s["name"], SecretString="same",
                                ClientRequestToken=tok)
        assert r["VersionId"] == tok
        assert r["VersionStages"] == ["AWSCURRENT"]
        assert snapshot(sm, s["name"]) == before

    def test_replay_put_token_is_noop(self, sm, mk):
        s = mk("v1")
        tok = new_token()
        sm.put_secret_value(SecretId=s["name"], SecretString="v2", ClientRequestToken=tok)
        sm.put_secret_value(SecretId=s["name"], SecretString="v3")
        before = snapshot(sm, s["name"])
        r = sm.put_secret_value(SecretId=s["name"], SecretString="v2", ClientRequestToken=tok)
        assert r["VersionId"] == tok
        assert r["VersionStages"] == ["AWSPREVIOUS"]
        assert snapshot(sm, s["name"]) == before

    def test_same_token_different_value(self, sm, sm_raw, mk):
        tok = new_token()
        s = mk("v1", ClientRequestToken=tok)
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.put_secret_value, "ResourceExistsException",
                     token_in_use_msg(tok, s["arn"]), SecretId=s["name"],
                     SecretString="different", ClientRequestToken=tok)
        expect_error(sm_raw.put_secret_value, "ResourceExistsException",
                     token_in_use_msg(tok, s["arn"]), SecretId=s["name"],
                     SecretBinary=b"v1", ClientRequestToken=tok)
        assert snapshot(sm, s["name"]) == before

    def test_no_value(self, sm, sm_raw, mk):
        s = mk("v1")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.put_secret_value, "InvalidRequestException", NEED_VALUE,
                     SecretId=s["name"])
        assert snapshot(sm, s["name"]) == before

    def test_both_values(self, sm, sm_raw, mk):
        s = mk("v1")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.put_secret_value, "InvalidParameterException", BOTH_VALUES,
                     SecretId=s["name"], SecretString="a", SecretBinary=b"b")
        assert snapshot(sm, s["name"]) == before

    def test_label_limit_20_per_secret(self, sm, sm_raw, mk):
        s = mk("v1")  # AWSCURRENT = 1 label
        labels = [f"L{i:02d}" for i in range(19)]
        sm.put_secret_value(SecretId=s["name"], SecretString="many", VersionStages=labels)
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.update_secret_version_stage, "LimitExceededException",
                     SecretId=s["name"], VersionStage="L19", MoveToVersionId=s["vid"])
        expect_error(sm_raw.put_secret_value, "LimitExceededException",
                     SecretId=s["name"], SecretString="more", VersionStages=["L20"])
        assert snapshot(sm, s["name"]) == before

    def test_version_limit(self, sm, sm_raw, mk):
        s = mk("v0")
        created = 1
        err = None
        for i in range(1, 131):
            try:
                sm_raw.put_secret_value(SecretId=s["name"], SecretString=f"v{i}")
                created += 1
            except ClientError as e:
                err = e
                break
        assert err is not None, "no LimitExceededException after 130 versions within 24h"
        assert err.response["Error"]["Code"] == "LimitExceededException", err.response
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert created >= 100, f"limit hit after only {created} versions"
        before = snapshot(sm, s["name"])
        assert len(before["versions"]) == created
        with pytest.raises(ClientError):
            sm_raw.put_secret_value(SecretId=s["name"], SecretString="again")
        assert snapshot(sm, s["name"]) == before
        assert sm.get_secret_value(SecretId=s["name"])["SecretString"] == f"v{created - 1}"


class TestUpdateSecret:
    def test_description_only(self, sm, mk):
        s = mk("v1", Description="old")
        d0 = sm.describe_secret(SecretId=s["name"])
        time.sleep(0.02)
        r = sm.update_secret(SecretId=s["name"], Description="new")
        assert set(strip_meta(r)) == {"ARN", "Name"}
        d1 = sm.describe_secret(SecretId=s["name"])
        assert d1["Description"] == "new"
        assert d1["VersionIdsToStages"] == d0["VersionIdsToStages"]
        assert ts(d1["LastChangedDate"]) > ts(d0["LastChangedDate"])
        sm.update_secret(SecretId=s["name"], Description="")
        assert "Description" not in sm.describe_secret(SecretId=s["name"])

    def test_no_members_is_noop(self, sm, mk):
        s = mk("v1", Description="keep")
        before = snapshot(sm, s["name"])
        r = sm.update_secret(SecretId=s["name"])
        assert set(strip_meta(r)) == {"ARN", "Name"}
        after = snapshot(sm, s["name"])
        assert after["values"] == before["values"]
        assert after["describe"]["Description"] == "keep"
        assert after["describe"]["VersionIdsToStages"] == before["describe"]["VersionIdsToStages"]

    def test_with_value_creates_current(self, sm, mk):
        s = mk("v1")
        tok = new_token()
        r = sm.update_secret(SecretId=s["name"], SecretString="v2", ClientRequestToken=tok)
        assert set(strip_meta(r)) == {"ARN", "Name", "VersionId"}
        assert r["VersionId"] == tok
        assert stages(sm, s["name"]) == {s["vid"]: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}
        before = snapshot(sm, s["name"])
        r2 = sm.update_secret(SecretId=s["name"], SecretString="v2", ClientRequestToken=tok)
        assert r2["VersionId"] == tok
        assert snapshot(sm, s["name"]) == before

    def test_same_token_different_value(self, sm, sm_raw, mk):
        s = mk("v1")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.update_secret, "ResourceExistsException",
                     token_in_use_msg(s["vid"], s["arn"]), SecretId=s["name"],
                     SecretString="other", ClientRequestToken=s["vid"])
        assert snapshot(sm, s["name"]) == before

    def test_both_values(self, sm, sm_raw, mk):
        s = mk("v1")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.update_secret, "InvalidParameterException", SecretId=s["name"],
                     SecretString="a", SecretBinary=b"b")
        assert snapshot(sm, s["name"]) == before


# =============================================================================================
# UpdateSecretVersionStage (§3.9)
# =============================================================================================
class TestUpdateSecretVersionStage:
    @pytest.fixture
    def two(self, sm, mk):
        s = mk("v1")
        s["v2"] = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
        return s

    def test_move_current_requires_remove_from(self, sm, sm_raw, two):
        before = snapshot(sm, two["name"])
        expect_error(sm_raw.update_secret_version_stage, "InvalidParameterException",
                     remove_from_empty_msg("AWSCURRENT", two["v2"]), SecretId=two["name"],
                     VersionStage="AWSCURRENT", MoveToVersionId=two["vid"])
        assert snapshot(sm, two["name"]) == before

    def test_move_current_wrong_remove_from(self, sm, sm_raw, two):
        before = snapshot(sm, two["name"])
        expect_error(sm_raw.update_secret_version_stage, "InvalidParameterException",
                     SecretId=two["name"], VersionStage="AWSCURRENT",
                     MoveToVersionId=two["vid"], RemoveFromVersionId=two["vid"])
        assert snapshot(sm, two["name"]) == before

    def test_move_current_back(self, sm, two):
        r = sm.update_secret_version_stage(SecretId=two["name"], VersionStage="AWSCURRENT",
                                           MoveToVersionId=two["vid"],
                                           RemoveFromVersionId=two["v2"])
        assert set(strip_meta(r)) == {"ARN", "Name"}
        assert r["ARN"] == two["arn"]
        assert stages(sm, two["name"]) == {two["vid"]: ["AWSCURRENT"], two["v2"]: ["AWSPREVIOUS"]}
        assert sm.get_secret_value(SecretId=two["name"])["SecretString"] == "v1"

    def test_move_current_keeps_other_labels(self, sm, mk):
        s = mk("v1")
        v1 = s["vid"]
        sm.update_secret_version_stage(SecretId=s["name"], VersionStage="PUT1",
                                       MoveToVersionId=v1)
        v2 = sm.put_secret_value(SecretId=s["name"], SecretString="pending",
                                 VersionStages=["AWSPENDING"])["VersionId"]
        assert stages(sm, s["name"]) == {v1: ["AWSCURRENT", "PUT1"], v2: ["AWSPENDING"]}
        sm.update_secret_version_stage(SecretId=s["name"], VersionStage="AWSCURRENT",
                                       MoveToVersionId=v2, RemoveFromVersionId=v1)
        assert stages(sm, s["name"]) == {v1: ["AWSPREVIOUS", "PUT1"],
                                         v2: ["AWSCURRENT", "AWSPENDING"]}

    def test_previous_is_taken_from_old_holder(self, sm, two):
        # v1=AWSPREVIOUS, v2=AWSCURRENT; add v3 with a custom label, then make it current
        v3 = sm.put_secret_value(SecretId=two["name"], SecretString="v3",
                                 VersionStages=["NEXT"])["VersionId"]
        sm.update_secret_version_stage(SecretId=two["name"], VersionStage="AWSCURRENT",
                                       MoveToVersionId=v3, RemoveFromVersionId=two["v2"])
        st = stages(sm, two["name"])
        assert st == {two["v2"]: ["AWSPREVIOUS"], v3: ["AWSCURRENT", "NEXT"]}
        assert two["vid"] not in st  # lost AWSPREVIOUS -> deprecated

    def test_custom_label_move_and_remove(self, sm, sm_raw, two):
        n = two["name"]
        sm.update_secret_version_stage(SecretId=n, VersionStage="BLUE", MoveToVersionId=two["vid"])
        assert stages(sm, n)[two["vid"]] == ["AWSPREVIOUS", "BLUE"]
        before = snapshot(sm, n)
        expect_error(sm_raw.update_secret_version_stage, "InvalidParameterException",
                     SecretId=n, VersionStage="BLUE", MoveToVersionId=two["v2"])
        assert snapshot(sm, n) == before
        sm.update_secret_version_stage(SecretId=n, VersionStage="BLUE",
                                       MoveToVersionId=two["v2"], RemoveFromVersionId=two["vid"])
        assert stages(sm, n) == {two["vid"]: ["AWSPREVIOUS"], two["v2"]: ["AWSCURRENT", "BLUE"]}
        sm.update_secret_version_stage(SecretId=n, VersionStage="BLUE",
                                       RemoveFromVersionId=two["v2"])
        assert stages(sm, n) == {two["vid"]: ["AWSPREVIOUS"], two["v2"]: ["AWSCURRENT"]}
        before = snapshot(sm, n)
        expect_error(sm_raw.update_secret_version_stage, "InvalidParameterException",
                     SecretId=n, VersionStage="BLUE", RemoveFromVersionId=two["v2"])
        assert snapshot(sm, n) == before

    def test_removing_last_label_deprecates_version(self, sm, two):
        n = two["name"]
        sm.update_secret_version_stage(SecretId=n, VersionStage="AWSPREVIOUS",
                                       RemoveFromVersionId=two["vid"])
        assert stages(sm, n) == {two["v2"]: ["AWSCURRENT"]}
        full = {v["VersionId"]: v for v in list_all_versions(sm, n, True)}
        assert "VersionStages" not in full[two["vid"]]
        assert sm.get_secret_value(SecretId=n, VersionId=two["vid"])["SecretString"] == "v1"

    def test_unknown_version(self, sm, sm_raw, two):
        before = snapshot(sm, two["name"])
        expect_error(sm_raw.update_secret_version_stage, "InvalidParameterException",
                     SecretId=two["name"], VersionStage="BLUE", MoveToVersionId=new_token())
        assert snapshot(sm, two["name"]) == before


# =============================================================================================
# DescribeSecret fields (§3.6, §4.9) and tags (§3.15)
# =============================================================================================
class TestDescribeAndTags:
    def test_plain_secret_fields(self, sm, mk):
        s = mk("v")
        d = strip_meta(sm.describe_secret(SecretId=s["name"]))
        assert set(d) == {"ARN", "Name", "CreatedDate", "LastChangedDate", "VersionIdsToStages"}
        assert d["ARN"] == s["arn"] and d["Name"] == s["name"]
        assert d["VersionIdsToStages"] == {s["vid"]: ["AWSCURRENT"]}
        s2 = mk("v", Description="described")
        d2 = strip_meta(sm.describe_secret(SecretId=s2["name"]))
        assert set(d2) == {"ARN", "Name", "Description", "CreatedDate", "LastChangedDate",
                           "VersionIdsToStages"}
        for field in ("RotationEnabled", "Tags", "KmsKeyId", "PrimaryRegion", "DeletedDate",
                      "LastAccessedDate", "OwningService"):
            assert field not in d2

    def test_created_and_changed_dates(self, sm):
        t0 = time.time()
        name = unique_name("dates")
        sm.create_secret(Name=name, SecretString="x")
        t1 = time.time()
        d = sm.describe_secret(SecretId=name)
        assert t0 - 1 <= ts(d["CreatedDate"]) <= t1 + 1
        assert t0 - 1 <= ts(d["LastChangedDate"]) <= t1 + 1
        time.sleep(0.02)
        sm.put_secret_value(SecretId=name, SecretString="y")
        d2 = sm.describe_secret(SecretId=name)
        assert ts(d2["LastChangedDate"]) > ts(d["LastChangedDate"])
        assert d2["CreatedDate"] == d["CreatedDate"]

    def test_tags_absent_then_list_then_empty(self, sm, mk):
        s = mk("v")
        assert "Tags" not in sm.describe_secret(SecretId=s["name"])
        r = sm.tag_resource(SecretId=s["name"], Tags=[{"Key": "tag1", "Value": "v1"},
                                                      {"Key": "tag2", "Value": "v2"}])
        assert strip_meta(r) == {}
        assert sm.describe_secret(SecretId=s["name"])["Tags"] == [
            {"Key": "tag1", "Value": "v1"}, {"Key": "tag2", "Value": "v2"}]
        r = sm.untag_resource(SecretId=s["name"], TagKeys=["tag1", "tag2"])
        assert strip_meta(r) == {}
        d = sm.describe_secret(SecretId=s["name"])
        assert d["Tags"] == []
        sm.tag_resource(SecretId=s["name"], Tags=[{"Key": "tag3", "Value": "v3"},
                                                  {"Key": "tag4", "Value": "v4"}])
        assert sm.describe_secret(SecretId=s["name"])["Tags"] == [
            {"Key": "tag3", "Value": "v3"}, {"Key": "tag4", "Value": "v4"}]

    def test_tag_overwrite_case_sensitive_and_untag_absent(self, sm, mk):
        s = mk("v", Tags=[{"Key": "env", "Value": "dev"}])
        sm.tag_resource(SecretId=s["name"], Tags=[{"Key": "env", "Value": "prod"},
                                                  {"Key": "Env", "Value": "other"}])
        tags = sm.describe_secret(SecretId=s["name"])["Tags"]
        assert sorted((t["Key"], t["Value"]) for t in tags) == [("Env", "other"), ("env", "prod")]
        sm.untag_resource(SecretId=s["name"], TagKeys=["nope", "ENV"])  # absent: no error
        tags = sm.describe_secret(SecretId=s["name"])["Tags"]
        assert sorted((t["Key"], t["Value"]) for t in tags) == [("Env", "other"), ("env", "prod")]

    def test_tag_reserved_prefix_rejected(self, sm, sm_raw, mk):  # [E] code
        s = mk("v", Tags=[{"Key": "keep", "Value": "1"}])
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.tag_resource, "InvalidParameterException", SecretId=s["name"],
                     Tags=[{"Key": "aws:reserved", "Value": "x"}])
        assert snapshot(sm, s["name"]) == before

    def test_tag_limit_50(self, sm, sm_raw, mk):  # [E] code
        s = mk("v")
        sm.tag_resource(SecretId=s["name"], Tags=[{"Key": f"k{i}", "Value": "v"}
                                                  for i in range(50)])
        before = snapshot(sm, s["name"])
        with pytest.raises(ClientError) as ei:
            sm_raw.tag_resource(SecretId=s["name"], Tags=[{"Key": "k50", "Value": "v"}])
        assert ei.value.response["Error"]["Code"] in ("InvalidParameterException",
                                                      "LimitExceededException",
                                                      "ValidationException")
        assert snapshot(sm, s["name"]) == before


# =============================================================================================
# Deletion, deleted-secret behaviour, restore (§2.4, §3.10, §3.11)
# =============================================================================================
class TestDeletion:
    def test_default_window_30_days(self, sm, mk):
        s = mk("v")
        t0 = time.time()
        r = sm.delete_secret(SecretId=s["name"])
        t1 = time.time()
        assert set(strip_meta(r)) == {"ARN", "Name", "DeletionDate"}
        assert r["ARN"] == s["arn"] and r["Name"] == s["name"]
        dd = ts(r["DeletionDate"])
        assert t0 + 30 * 86400 - 2 <= dd <= t1 + 30 * 86400 + 2
        d = sm.describe_secret(SecretId=s["name"])
        assert abs(ts(d["DeletedDate"]) - dd) < 1.0

    def test_window_7_days(self, sm, mk):
        s = mk("v")
        t0 = time.time()
        r = sm.delete_secret(SecretId=s["name"], RecoveryWindowInDays=7)
        dd = ts(r["DeletionDate"])
        assert abs(dd - (t0 + 7 * 86400)) < 5

    @pytest.mark.parametrize("days", [0, 6, 31, 365])
    def test_window_out_of_range(self, sm, sm_raw, mk, days):
        s = mk("v")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.delete_secret, "InvalidParameterException", WINDOW_RANGE,
                     SecretId=s["name"], RecoveryWindowInDays=days)
        assert snapshot(sm, s["name"]) == before

    def test_window_and_force(self, sm, sm_raw, mk):
        s = mk("v")
        before = snapshot(sm, s["name"])
        expect_error(sm_raw.delete_secret, "InvalidParameterException", WINDOW_AND_FORCE,
                     SecretId=s["name"], RecoveryWindowInDays=7,
                     ForceDeleteWithoutRecovery=True)
        assert snapshot(sm, s["name"]) == before

    def test_force_delete(self, sm, mk):
        s = mk("v")
        t0 = time.time()
        r = sm.delete_secret(SecretId=s["name"], ForceDeleteWithoutRecovery=True)
        assert r["ARN"] == s["arn"]
        assert abs(ts(r["DeletionDate"]) - t0) < 5
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=s["name"])
        expect_error(sm.get_secret_value, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=s["arn"])

    def test_force_delete_nonexistent_succeeds(self, sm):
        name = unique_name("ghost")
        t0 = time.time()
        r = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        assert r["Name"] == name
        assert r["ARN"]
        assert abs(ts(r["DeletionDate"]) - t0) < 5
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND, SecretId=name)

    def test_describe_works_on_deleted(self, sm, deleted):
        d = sm.describe_secret(SecretId=deleted["name"])
        assert "DeletedDate" in d
        assert d["ARN"] == deleted["arn"]
        assert d["VersionIdsToStages"] == {deleted["vid"]: ["AWSPREVIOUS"],
                                           deleted["v2"]: ["AWSCURRENT"]}

    @pytest.mark.parametrize("op,extra", [
        ("get_secret_value", {}),
        ("put_secret_value", {"SecretString": "new"}),
        ("update_secret", {"Description": "new"}),
        ("update_secret", {"SecretString": "new"}),
        ("tag_resource", {"Tags": [{"Key": "a", "Value": "b"}]}),
        ("untag_resource", {"TagKeys": ["k"]}),
        ("update_secret_version_stage", {"VersionStage": "X", "MoveToVersionId": "VID"}),
        ("list_secret_version_ids", {}),
        ("delete_secret", {}),
        ("delete_secret", {"RecoveryWindowInDays": 10}),
    ])
    def test_ops_on_deleted_secret(self, sm, sm_raw, deleted, op, extra):
        extra = {k: (deleted["vid"] if v == "VID" else v) for k, v in extra.items()}
        before = snapshot(sm, deleted["name"])
        expect_error(getattr(sm_raw, op), "InvalidRequestException", MARKED_FOR_DELETION,
                     SecretId=deleted["name"], **extra)
        assert snapshot(sm, deleted["name"]) == before

    def test_create_same_name_while_scheduled(self, sm, sm_raw, deleted):
        before = snapshot(sm, deleted["name"])
        expect_error(sm_raw.create_secret, "InvalidRequestException", SCHEDULED_CREATE,
                     Name=deleted["name"], SecretString="new")
        assert snapshot(sm, deleted["name"]) == before

    def test_batch_get_on_deleted(self, sm, deleted):
        r = sm.batch_get_secret_value(SecretIdList=[deleted["name"]])
        assert r.get("SecretValues", []) == []
        assert r["Errors"] == [{"SecretId": deleted["name"],
                                "ErrorCode": "InvalidRequestException",
                                "Message": MARKED_FOR_DELETION}]

    def test_force_delete_scheduled(self, sm, deleted):
        sm.delete_secret(SecretId=deleted["name"], ForceDeleteWithoutRecovery=True)
        expect_error(sm.describe_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=deleted["name"])
        arn2 = sm.create_secret(Name=deleted["name"], SecretString="again")["ARN"]
        assert arn2 != deleted["arn"]

    def test_restore(self, sm, deleted):
        r = sm.restore_secret(SecretId=deleted["name"])
        assert set(strip_meta(r)) == {"ARN", "Name"}
        assert r["ARN"] == deleted["arn"]
        d = sm.describe_secret(SecretId=deleted["name"])
        assert "DeletedDate" not in d
        assert d["VersionIdsToStages"] == {deleted["vid"]: ["AWSPREVIOUS"],
                                           deleted["v2"]: ["AWSCURRENT"]}
        assert d["Tags"] == [{"Key": "k", "Value": "v"}]
        assert sm.get_secret_value(SecretId=deleted["name"])["SecretString"] == "v2"
        sm.put_secret_value(SecretId=deleted["name"], SecretString="v3")
        assert sm.get_secret_value(SecretId=deleted["name"])["SecretString"] == "v3"

    def test_restore_by_arn(self, sm, deleted):
        sm.restore_secret(SecretId=deleted["arn"])
        assert "DeletedDate" not in sm.describe_secret(SecretId=deleted["arn"])

    def test_restore_missing(self, sm):
        expect_error(sm.restore_secret, "ResourceNotFoundException", NOT_FOUND,
                     SecretId=unique_name("nope"))

    def test_deleted_excluded_from_list_unless_planned(self, sm, deleted):
        f = [{"Key": "name", "Values": [deleted["name"]]}]
        assert sm.list_secrets(Filters=f)["SecretList"] == []
        lst = sm.list_secrets(Filters=f, IncludePlannedDeletion=True)["SecretList"]
        assert [e["Name"] for e in lst] == [deleted["name"]]
        assert "DeletedDate" in lst[0]


# =============================================================================================
# ListSecrets (§3.7, §4.8)
# =============================================================================================
def _rand_letters(n=10):
    return "".join(random.choice(string.ascii_lowercase) for _ in range(n))


@pytest.fixture(scope="module")
def listing(sm):
    """Four secrets under a unique lowercase prefix P, created in a known order."""
    p = "ls" + _rand_letters()
    specs = [
        (f"{p}/alpha/one", "Alpha service database",
         [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "payments"}]),
        (f"{p}/alpha/two", "an secret thing", [{"Key": "env", "Value": "staging"}]),
        (f"{p}/beta/one", "asecret", None),
        (f"{p}-gamma", None, [{"Key": "Owner", "Value": "Alice"}]),
    ]
    names = []
    for name, desc, tags in specs:
        kw = {"Name": name, "SecretString": "v"}
        if desc:
            kw["Description"] = desc
        if tags:
            kw["Tags"] = tags
        sm.create_secret(**kw)
        names.append(name)
        time.sleep(0.005)  # distinct CreatedDate (ms precision)
    return {"p": p, "names": names}


def _list_names(sm, filters, **kw):
    out, token = [], None
    for _ in range(200):
        args = dict(kw, Filters=filters)
        if token:
            args["NextToken"] = token
        r = sm.list_secrets(**args)
        out.extend(e["Name"] for e in r["SecretList"])
        token = r.get("NextToken")
        if not token:
            return out
    raise AssertionError("ListSecrets pagination did not terminate")


class TestListSecrets:
    def test_entry_shape(self, sm, listing):
        r = sm.list_secrets(Filters=[{"Key": "name", "Values": [listing["names"][0]]}])
        assert len(r["SecretList"]) == 1
        e = r["SecretList"][0]
        assert e["Name"] == listing["names"][0]
        assert arn_regex(e["Name"]).match(e["ARN"])
        assert "SecretVersionsToStages" in e
        assert "VersionIdsToStages" not in e
        assert list(e["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
        assert e["Description"] == "Alpha service database"
        assert e["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "payments"}]
        for field in ("RotationEnabled", "KmsKeyId", "DeletedDate", "ReplicationStatus"):
            assert field not in e
        untagged = sm.list_secrets(
            Filters=[{"Key": "name", "Values": [listing["names"][2]]}])["SecretList"][0]
        assert "Tags" not in untagged

    def test_name_prefix_case_sensitive(self, sm, listing):
        p, n = listing["p"], listing["names"]
        assert _list_names(sm, [{"Key": "name", "Values": [p]}]) == n
        assert _list_names(sm, [{"Key": "name", "Values": [f"{p}/alpha"]}]) == n[:2]
        assert _list_names(sm, [{"Key": "name", "Values": [f"{p}/ALPHA"]}]) == []
        assert _list_names(sm, [{"Key": "name", "Values": [f"{p}/alpha one"]}]) == []
        # values OR
        assert _list_names(sm, [{"Key": "name", "Values": [f"{p}/alpha/t", f"{p}/beta"]}]) == \
            [n[1], n[2]]

    def test_name_negation(self, sm, listing):
        p, n = listing["p"], listing["names"]
        got = _list_names(sm, [{"Key": "name", "Values": [p]},
                               {"Key": "name", "Values": [f"!{p}/"]}])
        assert got == [n[3]]

    def test_description_word_prefix(self, sm, listing):
        p, n = listing["p"], listing["names"]
        base = {"Key": "name", "Values": [p]}

        def desc(*vals):
            return _list_names(sm, [base, {"Key": "description", "Values": list(vals)}])

        assert desc("a") == n[:3]          # Alpha..., an secret..., asecret
        assert desc("a secret") == [n[1]]  # every word must prefix some word
        assert desc("SERV") == [n[0]]      # case-insensitive
        assert desc("secret") == [n[1]]    # not "asecret"
        assert desc("thing", "database") == [n[0], n[1]]  # values OR
        # negation: no description word starts with c. (Whether a secret WITHOUT a
        # description matches a negated description filter is not pinned down: ignore n[3].)
        assert [x for x in desc("!c") if x != n[3]] == n[:3]
        assert [x for x in desc("!alpha") if x != n[3]] == n[1:3]

    def test_tag_key_and_value(self, sm, listing):
        p, n = listing["p"], listing["names"]
        base = {"Key": "name", "Values": [p]}
        assert _list_names(sm, [base, {"Key": "tag-key", "Values": ["env"]}]) == n[:2]
        assert _list_names(sm, [base, {"Key": "tag-key", "Values": ["Own"]}]) == [n[3]]
        assert _list_names(sm, [base, {"Key": "tag-key", "Values": ["own"]}]) == []
        assert _list_names(sm, [base, {"Key": "tag-value", "Values": ["prod"]}]) == [n[0]]
        assert _list_names(sm, [base, {"Key": "tag-value", "Values": ["sta"]}]) == [n[1]]
        assert _list_names(sm, [base, {"Key": "tag-value", "Values": ["Ali"]}]) == [n[3]]

    def test_all_filter(self, sm, listing):
        p, n = listing["p"], listing["names"]
        base = {"Key": "name", "Values": [p]}

        def all_(*vals):
            return _list_names(sm, [base, {"Key": "all", "Values": list(vals)}])

        assert all_("payments") == [n[0]]     # tag value
        assert all_("database") == [n[0]]     # description word
        assert all_("gamma") == [n[3]]        # name word (split at '-')
        assert all_("alice") == [n[3]]        # case-insensitive tag value
        assert all_("owner") == [n[3]]        # tag key
        assert all_("alpha") == n[:2]         # name word (split at '/')
        assert all_(p) == n                   # first name word
        assert _list_names(sm, [{"Key": "all", "Values": [p]}]) == n

    def test_filters_and(self, sm, listing):
        p, n = listing["p"], listing["names"]
        got = _list_names(sm, [{"Key": "description", "Values": ["a"]},
                               {"Key": "name", "Values": [f"{p}/alpha"]}])
        assert got == n[:2]
        got = _list_names(sm, [{"Key": "name", "Values": [p]},
                               {"Key": "tag-key", "Values": ["env"]},
                               {"Key": "tag-key", "Values": ["team"]}])
        assert got == [n[0]]
        got = _list_names(sm, [{"Key": "description", "Values": ["a"]},
                               {"Key": "name", "Values": [f"{p}/beta"]},
                               {"Key": "tag-key", "Values": ["env"]}])
        assert got == []

    def test_sorting(self, sm, listing):
        p, n = listing["p"], listing["names"]
        f = [{"Key": "name", "Values": [p]}]
        assert _list_names(sm, f) == n  # default created-date asc
        assert _list_names(sm, f, SortOrder="asc") == n
        assert _list_names(sm, f, SortOrder="desc") == n[::-1]
        assert _list_names(sm, f, SortBy="created-date", SortOrder="desc") == n[::-1]
        assert _list_names(sm, f, SortBy="name", SortOrder="asc") == sorted(n)
        assert _list_names(sm, f, SortBy="name", SortOrder="desc") == sorted(n, reverse=True)
        assert _list_names(sm, f, SortBy="name", SortOrder="asc", MaxResults=1) == sorted(n)

    def test_sort_by_last_changed(self, sm):
        p = "lc" + _rand_letters()
        names = [f"{p}-{i}" for i in range(3)]
        for nm in names:
            sm.create_secret(Name=nm, SecretString="v")
            time.sleep(0.005)
        time.sleep(0.005)
        sm.update_secret(SecretId=names[0], Description="touched")
        f = [{"Key": "name", "Values": [p]}]
        assert _list_names(sm, f, SortBy="last-changed-date", SortOrder="desc") == \
            [names[0], names[2], names[1]]
        assert _list_names(sm, f, SortBy="last-changed-date", SortOrder="asc") == \
            [names[1], names[2], names[0]]

    def test_pagination_filtered(self, sm):
        p = "pg" + _rand_letters()
        names = []
        for i in range(7):
            nm = f"{p}-{i}"
            sm.create_secret(Name=nm, SecretString="v")
            names.append(nm)
            time.sleep(0.002)
        f = [{"Key": "name", "Values": [p]}]
        for size in (1, 2, 3, 7, 100):
            got = _list_names(sm, f, MaxResults=size)
            assert got == names, (size, got)
        # page size honoured
        r = sm.list_secrets(Filters=f, MaxResults=3)
        assert len(r["SecretList"]) <= 3 and "NextToken" in r

    def test_pagination_unfiltered_no_dups_or_gaps(self, sm):
        p = "pu" + _rand_letters()
        mine = {f"{p}-{i}" for i in range(5)}
        for nm in sorted(mine):
            sm.create_secret(Name=nm, SecretString="v")
        out, token, pages = [], None, 0
        while True:
            kw = {"MaxResults": 25}
            if token:
                kw["NextToken"] = token
            r = sm.list_secrets(**kw)
            pages += 1
            assert len(r["SecretList"]) <= 25
            out.extend(e["ARN"] for e in r["SecretList"])
            token = r.get("NextToken")
            if not token or pages > 1000:
                break
        assert len(out) == len(set(out)), "duplicate entries across pages"
        names = [a.split(":secret:", 1)[1][:-7] for a in out]
        assert mine <= set(names)

    def test_pagination_stable_under_insert(self, sm):
        p = "pi" + _rand_letters()
        names = [f"{p}-{i}" for i in range(6)]
        for nm in names:
            sm.create_secret(Name=nm, SecretString="v")
            time.sleep(0.002)
        f = [{"Key": "name", "Values": [p]}]
        r1 = sm.list_secrets(Filters=f, MaxResults=3)
        sm.create_secret(Name=f"{p}-new", SecretString="v")
        rest = []
        token = r1.get("NextToken")
        while token:
            r = sm.list_secrets(Filters=f, MaxResults=3, NextToken=token)
            rest.extend(e["Name"] for e in r["SecretList"])
            token = r.get("NextToken")
        got = [e["Name"] for e in r1["SecretList"]] + rest
        assert len(got) == len(set(got))
        assert [x for x in got if x != f"{p}-new"] == names

    def test_bad_next_token(self, sm_raw):
        expect_error(sm_raw.list_secrets, "InvalidNextTokenException", BAD_NEXT_TOKEN,
                     NextToken="definitely-not-a-token")
        expect_error(sm_raw.list_secrets, "InvalidNextTokenException", BAD_NEXT_TOKEN,
                     NextToken="eyJmb28iOiAiYmFyIn0=")

    def test_unknown_filter_key(self, sm_raw):
        expect_error(sm_raw.list_secrets, "ValidationException",
                     Filters=[{"Key": "colour", "Values": ["x"]}])

    def test_include_planned_deletion(self, sm):
        p = "pd" + _rand_letters()
        sm.create_secret(Name=f"{p}-live", SecretString="v")
        sm.create_secret(Name=f"{p}-gone", SecretString="v")
        sm.delete_secret(SecretId=f"{p}-gone", RecoveryWindowInDays=7)
        f = [{"Key": "name", "Values": [p]}]
        assert _list_names(sm, f) == [f"{p}-live"]
        assert _list_names(sm, f, IncludePlannedDeletion=True) == [f"{p}-live", f"{p}-gone"]
        assert _list_names(sm, f, IncludePlannedDeletion=False) == [f"{p}-live"]


# =============================================================================================
# ListSecretVersionIds (§3.8)
# =============================================================================================
class TestListSecretVersionIds:
    def test_versions_listing(self, sm, mk):
        s = mk("v1")
        v2 = sm.put_secret_value(SecretId=s["name"], SecretString="v2")["VersionId"]
        v3 = sm.put_secret_value(SecretId=s["name"], SecretString="v3")["VersionId"]
        r = sm.list_secret_version_ids(SecretId=s["name"])
        assert r["ARN"] == s["arn"] and r["Name"] == s["name"]
        assert "NextToken" not in r
        vs = r["Versions"]
        assert [v["VersionId"] for v in vs] == [v2, v3]  # oldest first, labelled only
        for v in vs:
            assert v["KmsKeyIds"] == ["DefaultEncryptionKey"]
            assert isinstance(v["CreatedDate"], dt.datetime)
        assert vs[0]["VersionStages"] == ["AWSPREVIOUS"]
        assert vs[1]["VersionStages"] == ["AWSCURRENT"]
        full = sm.list_secret_version_ids(SecretId=s["name"], IncludeDeprecated=True)["Versions"]
        assert [v["VersionId"] for v in full] == [s["vid"], v2, v3]
        assert "VersionStages" not in full[0]
        assert full[0]["KmsKeyIds"] == ["DefaultEncryptionKey"]
        # deprecated version still readable by id
        g = sm.get_secret_value(SecretId=s["name"], VersionId=s["vid"])
        assert g["SecretString"] == "v1"

    def test_pagination(self, sm, mk):
        s = mk("v1")
        ids = [s["vid"]]
        for i in range(4):
            ids.append(sm.put_secret_value(SecretId=s["name"], SecretString=f"x{i}",
                                           VersionStages=[f"S{i}"])["VersionId"])
        got, token = [], None
        for _ in range(20):
            kw = {"SecretId": s["name"], "MaxResults": 2}
            if token:
                kw["NextToken"] = token
            r = sm.list_secret_version_ids(**kw)
            assert len(r["Versions"]) <= 2
            got.extend(v["VersionId"] for v in r["Versions"])
            token = r.get("NextToken")
            if not token:
                break
        assert got == ids

    def test_bad_next_token(self, sm_raw, mk):
        s = mk("v1")
        expect_error(sm_raw.list_secret_version_ids, "InvalidNextTokenException",
                     SecretId=s["name"], NextToken="garbage-token")


# =============================================================================================
# BatchGetSecretValue (§3.5)
# =============================================================================================
class TestBatchGet:
    def test_by_id_list_with_missing(self, sm, mk):
        a = mk("value-a")
        b = mk(b"\x00bin")
        c = mk("c1")
        sm.put_secret_value(SecretId=c["name"], SecretString="c2",
                            VersionStages=["NOTCURRENT"])
        missing = unique_name("missing")
        r = sm.batch_get_secret_value(SecretIdList=[a["name"], b["arn"], c["name"], missing])
        vals = {v["Name"]: v for v in r["SecretValues"]}
        assert set(vals) == {a["name"], b["name"], c["name"]}
        assert vals[a["name"]]["SecretString"] == "value-a"
        assert vals[a["name"]]["ARN"] == a["arn"]
        assert vals[a["name"]]["VersionId"] == a["vid"]
        assert vals[a["name"]]["VersionStages"] == ["AWSCURRENT"]
        assert "CreatedDate" in vals[a["name"]]
        assert vals[b["name"]]["SecretBinary"] == b"\x00bin"
        assert vals[c["name"]]["SecretString"] == "c1"  # always AWSCURRENT
        assert r["Errors"] == [{"SecretId": missing, "ErrorCode": "ResourceNotFoundException",
                                "Message": NOT_FOUND}]
        assert "NextToken" not in r

    def test_empty_secret_lands_in_errors(self, sm, mk):
        e = mk(None)
        r = sm.batch_get_secret_value(SecretIdList=[e["name"]])
        assert r.get("SecretValues", []) == []
        assert len(r["Errors"]) == 1
        assert r["Errors"][0]["SecretId"] == e["name"]
        assert r["Errors"][0]["ErrorCode"] == "ResourceNotFoundException"

    def test_sets_last_accessed(self, sm, mk):
        a = mk("v")
        t0 = time.time()
        sm.batch_get_secret_value(SecretIdList=[a["name"]])
        lad = ts(sm.describe_secret(SecretId=a["name"])["LastAccessedDate"])
        assert lad in midnight_utc_candidates(t0, time.time())

    def test_by_filters(self, sm):
        p = "bg" + _rand_letters()
        for i in range(3):
            sm.create_secret(Name=f"{p}-{i}", SecretString=f"val{i}")
        sm.create_secret(Name=f"{p}-empty")
        got, token = {}, None
        for _ in range(20):
            kw = {"Filters": [{"Key": "name", "Values": [p]}], "MaxResults": 2}
            if token:
                kw["NextToken"] = token
            r = sm.batch_get_secret_value(**kw)
            for v in r.get("SecretValues", []):
                assert v["Name"] not in got
                got[v["Name"]] = v["SecretString"]
            token = r.get("NextToken")
            if not token:
                break
        assert got == {f"{p}-{i}": f"val{i}" for i in range(3)}

    def test_both_or_neither(self, sm_raw, mk):
        a = mk("v")
        expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException")
        expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException",
                     SecretIdList=[a["name"]], Filters=[{"Key": "name", "Values": ["x"]}])
        expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException",
                     SecretIdList=[a["name"]], MaxResults=5)


# =============================================================================================
# GetRandomPassword (§3.12, §4.10)
# =============================================================================================
LOWER, UPPER, DIGITS, PUNCT = (string.ascii_lowercase, string.ascii_uppercase, string.digits,
                               string.punctuation)


class TestRandomPassword:
    def test_default(self, sm):
        for _ in range(10):
            pw = sm.get_random_password()["RandomPassword"]
            assert len(pw) == 32
            assert " " not in pw
            assert set(pw) <= set(LOWER + UPPER + DIGITS + PUNCT)
            for cls in (LOWER, UPPER, DIGITS, PUNCT):
                assert set(pw) & set(cls), (cls, pw)
        r = sm.get_random_password()
        assert set(strip_meta(r)) == {"RandomPassword"}

    def test_full_alphabet(self, sm):
        pw = sm.get_random_password(PasswordLength=4096)["RandomPassword"]
        assert len(pw) == 4096
        assert set(pw) == set(LOWER + UPPER + DIGITS + PUNCT)

    def test_punctuation_set_exact(self, sm):
        pw = sm.get_random_password(PasswordLength=4096, ExcludeNumbers=True,
                                    ExcludeUppercase=True, ExcludeLowercase=True)["RandomPassword"]
        assert set(pw) == set(PUNCT)

    @pytest.mark.parametrize("flag,cls", [("ExcludeNumbers", DIGITS),
                                          ("ExcludePunctuation", PUNCT),
                                          ("ExcludeUppercase", UPPER),
                                          ("ExcludeLowercase", LOWER)])
    def test_exclude_class(self, sm, flag, cls):
        pw = sm.get_random_password(PasswordLength=512, **{flag: True})["RandomPassword"]
        assert len(pw) == 512
        assert not set(pw) & set(cls)
        rest = [c for c in (LOWER, UPPER, DIGITS, PUNCT) if c != cls]
        for c in rest:
            assert set(pw) & set(c)

    def test_exclude_characters(self, sm):
        excl = "xyzDje@?!."
        for _ in range(5):
            pw = sm.get_random_password(PasswordLength=120,
                                        ExcludeCharacters=excl)["RandomPassword"]
            assert len(pw) == 120
            assert not set(pw) & set(excl)
        templ = ':/@"\'\\'
        pw = sm.get_random_password(PasswordLength=1000, ExcludeCharacters=templ)["RandomPassword"]
        assert not set(pw) & set(templ)

    def test_include_space(self, sm):
        pw = sm.get_random_password(PasswordLength=2000, IncludeSpace=True)["RandomPassword"]
        assert " " in pw
        assert set(pw) <= set(LOWER + UPPER + DIGITS + PUNCT + " ")

    def test_require_each_type_short(self, sm):
        for _ in range(30):
            pw = sm.get_random_password(PasswordLength=4)["RandomPassword"]
            assert len(pw) == 4
            for cls in (LOWER, UPPER, DIGITS, PUNCT):
                assert set(pw) & set(cls), pw

    def test_required_types_not_always_at_end(self, sm):
        # with 2 classes and length 2 both positions must vary
        firsts = set()
        for _ in range(40):
            pw = sm.get_random_password(PasswordLength=2, ExcludeUppercase=True,
                                        ExcludePunctuation=True)["RandomPassword"]
            assert len(pw) == 2
            assert (pw[0] in LOWER) != (pw[1] in LOWER)
            firsts.add(pw[0] in LOWER)
        assert firsts == {True, False}

    def test_require_each_false(self, sm):
        pw = sm.get_random_password(PasswordLength=1, RequireEachIncludedType=False)
        assert len(pw["RandomPassword"]) == 1

    def test_too_short_for_required_types(self, sm_raw):
        expect_error(sm_raw.get_random_password, "InvalidParameterException", PasswordLength=3)

    def test_everything_excluded(self, sm_raw):
        expect_error(sm_raw.get_random_password, "InvalidParameterException",
                     ExcludeNumbers=True, ExcludePunctuation=True, ExcludeUppercase=True,
                     ExcludeLowercase=True)

    def test_length_bounds(self, sm_raw):
        expect_error(sm_raw.get_random_password, "ValidationException",
                     validation_msg(4097, "passwordLength",
                                    "Member must have value less than or equal to 4096"),
                     PasswordLength=4097)
        expect_error(sm_raw.get_random_password, "ValidationException",
                     validation_msg(0, "passwordLength",
                                    "Member must have value greater than or equal to 1"),
                     PasswordLength=0)


# =============================================================================================
# Resource policies (§3.16)
# =============================================================================================
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
    }],
}
PUBLIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*",
                   "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}


class TestResourcePolicy:
    def test_put_get_delete(self, sm, mk):
        s = mk("v")
        g0 = sm.get_resource_policy(SecretId=s["name"])
        assert g0["ARN"] == s["arn"] and g0["Name"] == s["name"]
        assert "ResourcePolicy" not in g0
        r = sm.put_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(POLICY))
        assert set(strip_meta(r)) == {"ARN", "Name"}
        assert r["ARN"] == s["arn"]
        g = sm.get_resource_policy(SecretId=s["arn"])
        assert json.loads(g["ResourcePolicy"]) == POLICY
        d = sm.delete_resource_policy(SecretId=s["name"])
        assert set(strip_meta(d)) == {"ARN", "Name"}
        assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=s["name"])
        sm.delete_resource_policy(SecretId=s["name"])  # idempotent

    def test_public_policy_allowed_without_block(self, sm, mk):
        s = mk("v")
        sm.put_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(PUBLIC_POLICY))
        assert json.loads(sm.get_resource_policy(SecretId=s["name"])["ResourcePolicy"]) == \
            PUBLIC_POLICY

    def test_malformed(self, sm, sm_raw, mk):
        s = mk("v")
        sm.put_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(POLICY))
        before = snapshot(sm, s["name"])
        for bad in ('{"Version": "2012-10-17", "Statement": [', "not json at all", "[1, 2, 3]"):
            expect_error(sm_raw.put_resource_policy, "MalformedPolicyDocumentException",
                         SecretId=s["name"], ResourcePolicy=bad)
        assert snapshot(sm, s["name"]) == before

    def test_block_public_policy(self, sm, sm_raw, mk):
        s = mk("v")
        sm.put_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(POLICY))
        before = snapshot(sm, s["name"])
        for pol in (PUBLIC_POLICY,
                    {**PUBLIC_POLICY, "Statement": [{**PUBLIC_POLICY["Statement"][0],
                                                     "Principal": {"AWS": "*"}}]}):
            expect_error(sm_raw.put_resource_policy, "PublicPolicyException",
                         SecretId=s["name"], ResourcePolicy=json.dumps(pol),
                         BlockPublicPolicy=True)
        assert snapshot(sm, s["name"]) == before
        # a non-public policy passes the block
        sm.put_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(POLICY),
                               BlockPublicPolicy=True)

    def test_validate(self, sm, sm_raw, mk):
        r = sm.validate_resource_policy(ResourcePolicy=json.dumps(POLICY))
        assert r["PolicyValidationPassed"] is True
        assert r["ValidationErrors"] == []
        s = mk("v")
        r = sm.validate_resource_policy(SecretId=s["name"], ResourcePolicy=json.dumps(POLICY))
        assert r["PolicyValidationPassed"] is True
        try:
            bad = sm_raw.validate_resource_policy(ResourcePolicy="{nope")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "MalformedPolicyDocumentException"
        else:
            assert bad["PolicyValidationPassed"] is False
            assert bad["ValidationErrors"]
        # validation never stores anything
        assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=s["name"])


# =============================================================================================
# Extra precision: validation message format, LastChangedDate, concurrency
# =============================================================================================
class TestValidationFormat:
    def test_name_too_long_exact_text(self, sm_raw):
        name = "n" * 513
        expect_error(sm_raw.create_secret, "ValidationException",
                     validation_msg(name, "name",
                                    "Member must have length less than or equal to 512"),
                     Name=name, SecretString="x")

    def test_two_violations(self, sm_raw):
        name = "m" * 513
        resp = expect_error(sm_raw.create_secret, "ValidationException", Name=name,
                            SecretString="x", Description="d" * 2049)
        msg = resp["Error"]["Message"]
        assert msg.startswith("2 validation errors detected: "), msg
        assert f"Value '{name}' at 'name' failed to satisfy constraint: Member must have " \
               "length less than or equal to 512" in msg
        assert "at 'description' failed to satisfy constraint: Member must have length less " \
               "than or equal to 2048" in msg
        assert "; " in msg

    @pytest.mark.parametrize("n", [0, 101])
    def test_list_max_results_range(self, sm_raw, n):
        expect_error(sm_raw.list_secrets, "ValidationException", MaxResults=n)

    def test_too_many_filter_values(self, sm_raw):
        expect_error(sm_raw.list_secrets, "ValidationException",
                     Filters=[{"Key": "name", "Values": [f"v{i}" for i in range(11)]}])

    def test_filter_value_pattern(self, sm_raw):
        expect_error(sm_raw.list_secrets, "ValidationException",
                     Filters=[{"Key": "name", "Values": ["a*b"]}])


class TestLastChangedDate:
    def _lcd(self, sm, name):
        return ts(sm.describe_secret(SecretId=name)["LastChangedDate"])

    def test_bumped_by_label_move_delete_restore(self, sm, mk):
        s = mk("v1")
        t = self._lcd(sm, s["name"])
        time.sleep(0.02)
        sm.update_secret_version_stage(SecretId=s["name"], VersionStage="X",
                                       MoveToVersionId=s["vid"])
        t2 = self._lcd(sm, s["name"])
        assert t2 > t
        time.sleep(0.02)
        sm.delete_secret(SecretId=s["name"], RecoveryWindowInDays=7)
        t3 = self._lcd(sm, s["name"])
        assert t3 > t2
        time.sleep(0.02)
        sm.restore_secret(SecretId=s["name"])
        assert self._lcd(sm, s["name"]) > t3

    def test_not_bumped_by_reads(self, sm, mk):
        s = mk("v1")
        t = self._lcd(sm, s["name"])
        time.sleep(0.02)
        sm.get_secret_value(SecretId=s["name"])
        sm.list_secret_version_ids(SecretId=s["name"])
        sm.batch_get_secret_value(SecretIdList=[s["name"]])
        sm.get_resource_policy(SecretId=s["name"])
        assert self._lcd(sm, s["name"]) == t

    def test_timestamps_have_millisecond_precision(self, sm):
        fractional = False
        for _ in range(3):
            name = unique_name("ms")
            sm.create_secret(Name=name, SecretString="x")
            c = ts(sm.describe_secret(SecretId=name)["CreatedDate"])
            fractional |= (c != int(c))
            time.sleep(0.003)
        assert fractional, "CreatedDate never had a fractional part"


class TestConcurrency:
    def test_parallel_puts_keep_label_invariants(self, server, sm, mk):
        import threading
        s = mk("v0")
        ids, errors = [], []
        lock = threading.Lock()

        def worker(k):
            c = server.client()
            for i in range(8):
                try:
                    r = c.put_secret_value(SecretId=s["name"], SecretString=f"w{k}-{i}")
                    with lock:
                        ids.append(r["VersionId"])
                except Exception as e:  # pragma: no cover - reported below
                    with lock:
                        errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert len(ids) == 64
        st = stages(sm, s["name"])
        flat = sorted(sum(st.values(), []))
        assert flat == ["AWSCURRENT", "AWSPREVIOUS"], st
        all_ids = {v["VersionId"] for v in list_all_versions(sm, s["name"])}
        assert all_ids == set(ids) | {s["vid"]}
        cur = sm.get_secret_value(SecretId=s["name"])
        assert cur["VersionId"] in ids

    def test_parallel_create_same_name(self, server, sm):
        import threading
        name = unique_name("race")
        results = []
        lock = threading.Lock()

        def worker(k):
            c = server.client(validate=False)
            try:
                r = c.create_secret(Name=name, SecretString=f"value-{k}")
                out = ("ok", k, r["ARN"])
            except ClientError as e:
                out = ("err", e.response["Error"]["Code"], e.response["Error"]["Message"])
            with lock:
                results.append(out)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        oks = [r for r in results if r[0] == "ok"]
        errs = [r for r in results if r[0] == "err"]
        assert len(oks) == 1, results
        assert all(e[1:] == ("ResourceExistsException", exists_msg(name)) for e in errs), errs
        winner = oks[0][1]
        assert sm.get_secret_value(SecretId=name)["SecretString"] == f"value-{winner}"
        assert len(list_all_versions(sm, name)) == 1

    def test_parallel_idempotent_replays(self, server, sm):
        import threading
        name = unique_name("replay")
        tok = new_token()
        results = []
        lock = threading.Lock()

        def worker():
            c = server.client()
            try:
                r = c.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
                out = ("ok", r["ARN"], r["VersionId"])
            except ClientError as e:
                out = ("err", e.response["Error"]["Code"], e.response["Error"]["Message"])
            with lock:
                results.append(out)

        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(r[0] == "ok" for r in results), results
        assert len({r[1:] for r in results}) == 1
        assert results[0][2] == tok
        assert len(list_all_versions(sm, name)) == 1


def test_partial_arn_of_name_that_looks_suffixed(sm):
    """§2.2 recommendation: on a full-ARN miss, treat the resource part as a name."""
    name = unique_name("amb") + "-Ab12Cd"
    arn = sm.create_secret(Name=name, SecretString="amb")["ARN"]
    partial = arn[:-7]
    assert partial.endswith(":secret:" + name)
    assert sm.get_secret_value(SecretId=partial)["SecretString"] == "amb"


def test_all_filter_word_splitting(sm):
    """§4.8 [A]: words split at separators, lower->upper changes, letter<->digit changes and
    before the last capital of a capital run; a bare special character matches nothing."""
    p = "ws" + _rand_letters()
    a = f"{p}-MyTest"
    b = f"{p}/plain"
    sm.create_secret(Name=a, SecretString="x", Description="COMPANYthings credsDatabase#892")
    sm.create_secret(Name=b, SecretString="x", Description="nothing special")
    base = {"Key": "name", "Values": [p]}

    def all_(v):
        return _list_names(sm, [base, {"Key": "all", "Values": [v]}])

    assert all_("test") == [a]
    assert all_("my") == [a]
    assert all_("database") == [a]
    assert all_("892") == [a]
    assert all_("creds") == [a]
    assert all_("compan") == [a]
    assert all_("ythings") == [a]
    assert all_("things") == []
    assert all_("/") == []
    assert all_("-") == []


def test_restore_not_deleted_is_noop(sm, mk):  # [E]
    s = mk("v")
    before = snapshot(sm, s["name"])
    r = sm.restore_secret(SecretId=s["name"])
    assert r["ARN"] == s["arn"]
    assert snapshot(sm, s["name"]) == before
