"""Named KMS keys (docs/kms.md) over the real binary: key ids, ARNs and aliases accepted as
KmsKeyId, `rotary.CreateKey|ListKeys|DescribeKey|RotateKey`, key rotation without losing old
values (before and after a restart), lazy re-wrap of data keys, authorization, audit, the
`rotary kms` commands, and two nodes over one PostgreSQL database.

Secret values are sealed as `format ‖ u16 name length ‖ key name ‖ [u32 key version] ‖ …`:
format 1 for a key's first version, 2 (with the version) for later ones. The tests read the
SQLite store to check which key version sealed (or re-wrapped) each value.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import rotary_testlib as lib

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KEY_ARN_PREFIX = f"arn:aws:kms:{lib.REGION}:{lib.ACCOUNT}:key/"
ALIAS_ARN_PREFIX = f"arn:aws:kms:{lib.REGION}:{lib.ACCOUNT}:"


def call(url, op, body=None, **sign_kw):
    """A Rotary API call; returns (status, parsed JSON)."""
    r = lib.raw_call(url, f"rotary.{op}", json.dumps(body or {}), **sign_kw)
    return r.status, r.json


def ok(url, op, body=None, **sign_kw):
    status, out = call(url, op, body, **sign_kw)
    assert status == 200, (op, status, out)
    return out


def no_material(obj):
    """No member that could carry key material."""
    text = json.dumps(obj)
    assert "Sealed" not in text and "Material" not in text and "Plaintext" not in text


def sealed_key_version(data_dir: Path, arn: str, version_id: str) -> tuple[str, int]:
    """(key name, key version) recorded in a stored value's header."""
    with sqlite3.connect(f"file:{data_dir / 'rotary.db'}?mode=ro", uri=True) as c:
        (blob,) = c.execute(
            "SELECT v.ciphertext FROM versions v JOIN secrets s ON s.uid = v.secret_uid "
            "WHERE s.arn = ? AND v.version_id = ?", (arn, version_id)).fetchone()
    fmt = blob[0]
    (n,) = struct.unpack(">H", blob[1:3])
    name = blob[3:3 + n].decode()
    if fmt == 1:
        return name, 1
    assert fmt == 2, fmt
    (version,) = struct.unpack(">I", blob[3 + n:7 + n])
    return name, version


def meta_value(data_dir: Path, key: str) -> bytes | None:
    with sqlite3.connect(f"file:{data_dir / 'rotary.db'}?mode=ro", uri=True) as c:
        row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = lib.Server(tmp_path_factory.mktemp("kms"), name="kms")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def team_key(srv):
    alias = lib.unique_name("team")
    out = ok(srv.url, "CreateKey", {"Alias": alias, "Description": "team key"})
    no_material(out)
    return out["KeyMetadata"]


def test_create_key_gives_id_arn_alias(srv, team_key):
    k = team_key
    assert UUID_RE.match(k["KeyId"]), k
    assert k["Arn"] == KEY_ARN_PREFIX + k["KeyId"]
    assert len(k["Aliases"]) == 1 and k["Aliases"][0].startswith("alias/team-")
    assert k["Description"] == "team key"
    assert k["KeyManager"] == "CUSTOMER" and k["KeyState"] == "Enabled"
    assert k["CurrentKeyVersion"] == 1 and [v["Version"] for v in k["KeyVersions"]] == [1]
    assert isinstance(k["CreationDate"], (int, float)) and k["CreationDate"] > 1.7e9

    alias = k["Aliases"][0]
    # Every form of the key resolves to it.
    for form in (k["KeyId"], k["Arn"], alias, ALIAS_ARN_PREFIX + alias):
        d = ok(srv.url, "DescribeKey", {"KeyId": form})["KeyMetadata"]
        assert d["KeyId"] == k["KeyId"], form
        no_material(d)

    listed = ok(srv.url, "ListKeys")["Keys"]
    ids = [x["KeyId"] for x in listed]
    assert k["KeyId"] in ids
    default = [x for x in listed if x["Aliases"] == ["alias/aws/secretsmanager"]]
    assert len(default) == 1 and default[0]["KeyManager"] == "AWS"
    assert UUID_RE.match(default[0]["KeyId"])
    no_material(listed)

    # The same alias twice is refused; so is an alias with characters KMS refuses.
    status, err = call(srv.url, "CreateKey", {"Alias": alias})
    assert status == 400 and err["__type"] == "ResourceExistsException", err
    status, err = call(srv.url, "CreateKey", {"Alias": "bad name"})
    assert status == 400 and err["__type"] == "InvalidParameterException", err
    status, err = call(srv.url, "CreateKey", {"Alias": "aws/mine"})
    assert status == 400 and err["__type"] == "InvalidParameterException", err
    assert len(ok(srv.url, "ListKeys")["Keys"]) == len(listed)

    # A key without an alias is known by its id.
    bare = ok(srv.url, "CreateKey", {})["KeyMetadata"]
    assert bare["Aliases"] == [] and "Description" not in bare
    assert ok(srv.url, "DescribeKey", {"KeyId": bare["Arn"]})["KeyMetadata"]["KeyId"] == \
        bare["KeyId"]


def _forms(k):
    alias = k["Aliases"][0]
    return {"id": k["KeyId"], "arn": k["Arn"], "alias": alias,
            "alias-arn": ALIAS_ARN_PREFIX + alias}


def test_kms_key_id_in_every_form_and_rotation(srv, team_key):
    sm = srv.client()
    k = team_key
    secrets = {}
    for label, form in _forms(k).items():
        name = lib.unique_name(f"kms-{label}")
        c = sm.create_secret(Name=name, SecretString=f"{label}-v1", KmsKeyId=form)
        secrets[label] = {"name": name, "arn": c["ARN"], "form": form,
                          "versions": [(c["VersionId"], f"{label}-v1")]}
        assert sm.get_secret_value(SecretId=name)["SecretString"] == f"{label}-v1"
        d = sm.describe_secret(SecretId=name)
        assert d["KmsKeyId"] == form  # as given (spec §4.9)
        listed = sm.list_secret_version_ids(SecretId=name)["Versions"]
        assert [v["KmsKeyIds"] for v in listed] == [[k["Arn"]]]
        # All four sealed under the same stored key, version 1.
        assert sealed_key_version(srv.data_dir, c["ARN"], c["VersionId"]) == \
            (k["Aliases"][0], 1)
    # A second value before the rotation.
    for label, s in secrets.items():
        p = sm.put_secret_value(SecretId=s["name"], SecretString=f"{label}-v2")
        s["versions"].append((p["VersionId"], f"{label}-v2"))

    # A secret on the default key: DescribeSecret omits KmsKeyId, listings say so.
    plain = lib.unique_name("kms-default")
    sm.create_secret(Name=plain, SecretString="default-key-value")
    assert "KmsKeyId" not in sm.describe_secret(SecretId=plain)
    assert sm.list_secret_version_ids(SecretId=plain)["Versions"][0]["KmsKeyIds"] == \
        ["DefaultEncryptionKey"]

    # Rotate by alias ARN: version 2 at once.
    r = ok(srv.url, "RotateKey", {"KeyId": ALIAS_ARN_PREFIX + k["Aliases"][0]})["KeyMetadata"]
    no_material(r)
    assert r["KeyId"] == k["KeyId"] and r["CurrentKeyVersion"] == 2
    assert [v["Version"] for v in r["KeyVersions"]] == [1, 2]
    assert r["KeyVersions"][1]["CreationDate"] >= r["KeyVersions"][0]["CreationDate"]
    d = ok(srv.url, "DescribeKey", {"KeyId": k["KeyId"]})["KeyMetadata"]
    assert d["CurrentKeyVersion"] == 2

    # Every old version of every secret is still readable.
    for s in secrets.values():
        for vid, value in s["versions"]:
            assert sm.get_secret_value(SecretId=s["name"], VersionId=vid)["SecretString"] == value

    # The "id" secret is not written again: its values stay wrapped under version 1.
    untouched = secrets["id"]
    for vid, _ in untouched["versions"]:
        assert sealed_key_version(srv.data_dir, untouched["arn"], vid)[1] == 1

    # A new put uses version 2, and re-wraps the data keys of the secret's other versions.
    for label in ("arn", "alias", "alias-arn"):
        s = secrets[label]
        p = sm.put_secret_value(SecretId=s["name"], SecretString=f"{label}-v3")
        s["versions"].append((p["VersionId"], f"{label}-v3"))
        assert sealed_key_version(srv.data_dir, s["arn"], p["VersionId"]) == \
            (k["Aliases"][0], 2)
        for vid, _ in s["versions"]:
            assert sealed_key_version(srv.data_dir, s["arn"], vid)[1] == 2, (label, vid)
        assert sm.get_secret_value(SecretId=s["name"])["SecretString"] == f"{label}-v3"
        for vid, value in s["versions"]:
            got = sm.get_secret_value(SecretId=s["name"], VersionId=vid)["SecretString"]
            assert got == value

    # A second rotation: version 3; everything still opens.
    r = ok(srv.url, "RotateKey", {"KeyId": k["Aliases"][0]})["KeyMetadata"]
    assert r["CurrentKeyVersion"] == 3
    s = secrets["alias"]
    p = sm.put_secret_value(SecretId=s["name"], SecretString="alias-v4")
    s["versions"].append((p["VersionId"], "alias-v4"))
    assert sealed_key_version(srv.data_dir, s["arn"], p["VersionId"])[1] == 3

    # After a restart: the key, its versions and every value.
    srv.restart()
    sm = srv.client()
    d = ok(srv.url, "DescribeKey", {"KeyId": k["Arn"]})["KeyMetadata"]
    assert d["CurrentKeyVersion"] == 3 and [v["Version"] for v in d["KeyVersions"]] == [1, 2, 3]
    assert d["KeyId"] == k["KeyId"] and d["Aliases"] == k["Aliases"]
    for s in secrets.values():
        for vid, value in s["versions"]:
            assert sm.get_secret_value(SecretId=s["name"], VersionId=vid)["SecretString"] == value
    assert sm.get_secret_value(SecretId=plain)["SecretString"] == "default-key-value"
    # UpdateSecret naming the key by id, with a value: sealed under the newest version.
    s = secrets["alias"]
    u = sm.update_secret(SecretId=s["name"], KmsKeyId=k["KeyId"], SecretString="alias-v5")
    assert sealed_key_version(srv.data_dir, s["arn"], u["VersionId"]) == (k["Aliases"][0], 3)
    assert sm.describe_secret(SecretId=s["name"])["KmsKeyId"] == k["KeyId"]
    assert sm.get_secret_value(SecretId=s["name"])["SecretString"] == "alias-v5"


def test_alias_created_on_first_use_keeps_the_bare_stored_form(srv):
    sm = srv.client()
    alias = f"alias/{lib.unique_name('firstuse')}"
    name = lib.unique_name("kms-first")
    c = sm.create_secret(Name=name, SecretString="first-use", KmsKeyId=alias)
    # Stored as before keys had ids (older servers read it); its id is derived from the name.
    assert len(meta_value(srv.data_dir, f"kms:{alias}")) == 60
    d = ok(srv.url, "DescribeKey", {"KeyId": alias})["KeyMetadata"]
    assert UUID_RE.match(d["KeyId"]) and d["Aliases"] == [alias]
    assert "CreationDate" not in d
    by_id = ok(srv.url, "DescribeKey", {"KeyId": d["KeyId"]})["KeyMetadata"]
    assert by_id["Arn"] == d["Arn"]
    # The id is stable across restarts (nothing was written to give it one).
    srv.restart()
    again = ok(srv.url, "DescribeKey", {"KeyId": alias})["KeyMetadata"]
    assert again["KeyId"] == d["KeyId"]
    sm = srv.client()
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first-use"
    # Rotating it keeps its first version bare and adds version 2 beside it.
    ok(srv.url, "RotateKey", {"KeyId": d["KeyId"]})
    assert len(meta_value(srv.data_dir, f"kms:{alias}")) == 60
    assert meta_value(srv.data_dir, f"kms-version:{alias}:2") is not None
    p = sm.put_secret_value(SecretId=name, SecretString="first-use-2")
    assert sealed_key_version(srv.data_dir, c["ARN"], p["VersionId"]) == (alias, 2)
    assert sealed_key_version(srv.data_dir, c["ARN"], c["VersionId"]) == (alias, 2)
    assert sm.get_secret_value(SecretId=name, VersionId=c["VersionId"])["SecretString"] == \
        "first-use"


def test_unknown_keys_get_the_errors_clients_expect(srv):
    sm = srv.client()
    missing_id = str(uuid.uuid4())
    status, err = call(srv.url, "DescribeKey", {"KeyId": missing_id})
    assert status == 400 and err["__type"] == "ResourceNotFoundException", err
    assert err["message" if "message" in err else "Message"] == \
        f"Key '{KEY_ARN_PREFIX}{missing_id}' does not exist"
    status, err = call(srv.url, "RotateKey", {"KeyId": "alias/never-made"})
    assert status == 400 and err["__type"] == "ResourceNotFoundException", err
    assert "alias/never-made is not found" in json.dumps(err)
    # RotateKey on an alias that does not exist did not create it.
    status, _ = call(srv.url, "DescribeKey", {"KeyId": "alias/never-made"})
    assert status == 400
    status, err = call(srv.url, "RotateKey", {})
    assert status == 400 and err["__type"] == "ValidationException", err
    status, err = call(srv.url, "DescribeKey", {"KeyId": "arn:aws:kms:eu-west-1:111122223333:key/x"})
    assert status == 400 and err["__type"] == "ResourceNotFoundException", err

    # CreateSecret naming an unknown key id or key ARN: InvalidParameterException, no secret.
    for form in (missing_id, KEY_ARN_PREFIX + missing_id):
        name = lib.unique_name("kms-missing")
        with pytest.raises(ClientError) as ei:
            sm.create_secret(Name=name, SecretString="x", KmsKeyId=form)
        assert ei.value.response["Error"]["Code"] == "InvalidParameterException"
        assert missing_id in ei.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as ei:
            sm.describe_secret(SecretId=name)
        assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # UpdateSecret too, and the secret keeps its key.
    name = lib.unique_name("kms-upd")
    sm.create_secret(Name=name, SecretString="x")
    with pytest.raises(ClientError) as ei:
        sm.update_secret(SecretId=name, KmsKeyId=missing_id)
    assert ei.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "KmsKeyId" not in sm.describe_secret(SecretId=name)


def test_permissions_and_audit(srv, team_key):
    user = lib.unique_name("kmsuser")
    ok(srv.url, "CreateUser", {"UserName": user})
    ok(srv.url, "PutUserPolicy", {"UserName": user, "PolicyName": "describe",
                                   "PolicyDocument": json.dumps({
                                       "Version": "2012-10-17",
                                       "Statement": [{"Effect": "Allow",
                                                      "Action": ["rotary:DescribeKey",
                                                                 "rotary:ListKeys"],
                                                      "Resource": "*"}]})})
    key = ok(srv.url, "CreateAccessKey", {"UserName": user})["AccessKey"]
    creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    before = ok(srv.url, "DescribeKey", {"KeyId": team_key["KeyId"]})["KeyMetadata"]
    # Allowed: DescribeKey, ListKeys. Denied: RotateKey, CreateKey.
    deadline = time.monotonic() + 10
    while True:
        status, out = call(srv.url, "DescribeKey", {"KeyId": team_key["KeyId"]}, **creds)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, out
    assert call(srv.url, "ListKeys", {}, **creds)[0] == 200
    r = lib.raw_call(srv.url, "rotary.RotateKey", json.dumps({"KeyId": team_key["KeyId"]}),
                     **creds)
    assert r.status == 400 and r.json["__type"] == "AccessDeniedException", r.json
    denied_id = r.headers.get("x-amzn-RequestId")
    status, out = call(srv.url, "CreateKey", {"Alias": lib.unique_name("nope")}, **creds)
    assert status == 400 and out["__type"] == "AccessDeniedException"
    after = ok(srv.url, "DescribeKey", {"KeyId": team_key["KeyId"]})["KeyMetadata"]
    assert after["CurrentKeyVersion"] == before["CurrentKeyVersion"]

    # Root may rotate; both calls are in the audit log.
    r = lib.raw_call(srv.url, "rotary.RotateKey", json.dumps({"KeyId": team_key["KeyId"]}))
    assert r.status == 200
    allowed_id = r.headers.get("x-amzn-RequestId")
    log = srv.data_dir / "audit.log"
    deadline = time.monotonic() + 5
    recs = {}
    while time.monotonic() < deadline:
        recs = {}
        if log.exists():
            for line in log.read_text().splitlines():
                if line.endswith("}"):
                    rec = json.loads(line)
                    recs[rec.get("RequestId")] = rec
        if denied_id in recs and allowed_id in recs:
            break
        time.sleep(0.05)
    d, a = recs[denied_id], recs[allowed_id]
    assert d["Operation"] == "rotary:RotateKey" and d["Outcome"] == "Denied"
    assert d["PrincipalArn"].endswith(f":user/{user}")
    assert a["Operation"] == "rotary:RotateKey" and a["Outcome"] == "Allowed"
    assert a["PrincipalArn"].endswith(":root")


# ---------------------------------------------------------------------------------------------
# `rotary kms …`
# ---------------------------------------------------------------------------------------------
def cli_env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=lib.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=lib.SECRET_KEY,
               AWS_REGION=lib.REGION, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
               AWS_ENDPOINT_URL_SECRETS_MANAGER=url)
    return env


def rotary(srv, *args):
    return subprocess.run([lib.ROTARY_BIN, *args], env=cli_env(srv.url), input="",
                          capture_output=True, text=True, timeout=60)


def cli_ok(p):
    assert p.returncode == 0, f"rc={p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert "panicked" not in p.stderr
    return p.stdout


def test_cli_kms_commands(srv):
    alias = lib.unique_name("cli")
    out = cli_ok(rotary(srv, "kms", "create-key", "--alias", alias, "--description",
                        "made by the CLI"))
    assert f"alias/{alias}" in out and "CurrentKeyVersion: 1" in out
    key_id = re.search(r"^KeyId:\s+(\S+)$", out, re.M).group(1)
    assert UUID_RE.match(key_id)

    table = cli_ok(rotary(srv, "kms", "list"))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["KEY", "ID", "ALIASES"]
    row = [l for l in lines if l.startswith(key_id)]
    assert len(row) == 1 and f"alias/{alias}" in row[0] and "made by the CLI" in row[0]
    assert any("alias/aws/secretsmanager" in l for l in lines)

    listed = json.loads(cli_ok(rotary(srv, "kms", "list", "--output", "json")))
    assert key_id in [k["KeyId"] for k in listed["Keys"]]

    d = json.loads(cli_ok(rotary(srv, "kms", "describe", f"alias/{alias}", "--output", "json")))
    assert d["KeyMetadata"]["KeyId"] == key_id and d["KeyMetadata"]["CurrentKeyVersion"] == 1

    out = cli_ok(rotary(srv, "kms", "rotate", KEY_ARN_PREFIX + key_id))
    assert "CurrentKeyVersion: 2" in out and "Version 2:" in out
    d = json.loads(cli_ok(rotary(srv, "kms", "describe", key_id, "--output", "json")))
    assert d["KeyMetadata"]["CurrentKeyVersion"] == 2
    no_material(d)

    p = rotary(srv, "kms", "describe", "alias/no-such-key-here")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "ResourceNotFoundException" in p.stderr and "not found" in p.stderr
    p = rotary(srv, "kms", "create-key", "--alias", alias)
    assert p.returncode == 1 and "ResourceExistsException" in p.stderr


# ---------------------------------------------------------------------------------------------
# Two nodes over one PostgreSQL database
# ---------------------------------------------------------------------------------------------
def test_two_nodes_share_keys_and_rotations(tmp_path):
    from pg_server import PgServer

    pg = PgServer(name="kms").start()
    nodes = []
    try:
        pg.sql("CREATE DATABASE rotary")
        url = f"postgres://postgres:{pg.superuser_password}@127.0.0.1:{pg.port}/rotary"
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o700)
        for i in range(2):
            nodes.append(lib.Server(tmp_path / f"node{i}", name=f"node{i}", args=[
                "--store", url, "--master-key-file", str(shared / "master.key"),
                "--node-id", f"node{i}"]))
            nodes[-1].start()
        a, b = (n.client() for n in nodes)
        k = ok(nodes[0].url, "CreateKey", {"Alias": lib.unique_name("shared")})["KeyMetadata"]
        # Made on node0, known on node1 by every form.
        for form in _forms(k).values():
            assert ok(nodes[1].url, "DescribeKey", {"KeyId": form})["KeyMetadata"]["KeyId"] == \
                k["KeyId"]
        name = lib.unique_name("kms-cluster")
        c = a.create_secret(Name=name, SecretString="v1", KmsKeyId=k["KeyId"])
        assert b.get_secret_value(SecretId=name)["SecretString"] == "v1"

        # Rotated on node1, then written through node1 at once: node0 opens the value sealed
        # under version 2 whether or not the notice reached it (it loads on a miss).
        rot = ok(nodes[1].url, "RotateKey", {"KeyId": k["Arn"]})["KeyMetadata"]
        assert rot["CurrentKeyVersion"] == 2
        p = b.put_secret_value(SecretId=name, SecretString="v2")
        assert a.get_secret_value(SecretId=name)["SecretString"] == "v2"
        assert a.get_secret_value(SecretId=name, VersionId=c["VersionId"])["SecretString"] == "v1"
        assert ok(nodes[0].url, "DescribeKey", {"KeyId": k["KeyId"]})["KeyMetadata"][
            "CurrentKeyVersion"] == 2

        # Rotations on both nodes at once each get their own version; nothing is lost.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda n: call(n.url, "RotateKey", {"KeyId": k["KeyId"]}),
                                 [nodes[0], nodes[1], nodes[0], nodes[1]]))
        assert all(s == 200 for s, _ in outs), outs
        final = ok(nodes[0].url, "DescribeKey", {"KeyId": k["KeyId"]})["KeyMetadata"]
        assert [v["Version"] for v in final["KeyVersions"]] == [1, 2, 3, 4, 5, 6]
        p3 = a.put_secret_value(SecretId=name, SecretString="v3")
        for sm in (a, b):
            assert sm.get_secret_value(SecretId=name)["SecretString"] == "v3"
            for vid, value in ((c["VersionId"], "v1"), (p["VersionId"], "v2"),
                               (p3["VersionId"], "v3")):
                assert sm.get_secret_value(SecretId=name, VersionId=vid)["SecretString"] == value

        # The master key of the cluster, rotated with every node stopped: the store's sealed
        # values (KMS keys and their versions, an IAM user's key) re-wrapped in one go.
        user = lib.unique_name("mkuser")
        ok(nodes[0].url, "CreateUser", {"UserName": user})
        ok(nodes[0].url, "PutUserPolicy", {
            "UserName": user, "PolicyName": "read", "PolicyDocument": json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                               "Resource": "*"}]})})
        key = ok(nodes[0].url, "CreateAccessKey", {"UserName": user})["AccessKey"]
        for n in nodes:
            n.stop()
        keyfile = shared / "master.key"
        old_key = keyfile.read_bytes()
        r = subprocess.run([lib.ROTARY_BIN, "master-key", "rotate", "--data-dir",
                            str(nodes[0].data_dir), "--master-key-file", str(keyfile),
                            "--store", url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert keyfile.read_bytes() != old_key
        assert (shared / "master.key.old").read_bytes() == old_key
        # A node still holding the old key is refused (exit 2) and changes nothing.
        r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "stale"),
                            "--store", url, "--master-key-file", str(shared / "master.key.old"),
                            "--listen", f"127.0.0.1:{lib.free_port()}"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "ROTARY_ROOT_ACCESS_KEY_ID": lib.ACCESS_KEY,
                                "ROTARY_ROOT_SECRET_ACCESS_KEY": lib.SECRET_KEY})
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "master" in r.stderr.lower() and "key" in r.stderr.lower(), r.stderr
        for n in nodes:
            n.start()
        a, b = (n.client() for n in nodes)
        as_user = lib.make_client(nodes[1].url, access_key=key["AccessKeyId"],
                                  secret_key=key["SecretAccessKey"])
        for sm in (a, b, as_user):
            for vid, value in ((c["VersionId"], "v1"), (p["VersionId"], "v2"),
                               (p3["VersionId"], "v3")):
                assert sm.get_secret_value(SecretId=name, VersionId=vid)["SecretString"] == value
        # New keys and versions are sealed under the new master key and open on both nodes.
        ok(nodes[1].url, "RotateKey", {"KeyId": k["KeyId"]})
        b.put_secret_value(SecretId=name, SecretString="v4")
        assert a.get_secret_value(SecretId=name)["SecretString"] == "v4"
    finally:
        for n in nodes:
            n.stop()
        pg.stop()
        pg.destroy()


# ---------------------------------------------------------------------------------------------
# `rotary master-key rotate` re-wraps every key-material version
# ---------------------------------------------------------------------------------------------
def test_master_key_rotation_rewraps_every_key_version(tmp_path):
    srv = lib.Server(tmp_path / "mk", name="mk")
    srv.start()
    try:
        sm = srv.client()
        k = ok(srv.url, "CreateKey", {"Alias": "mk-team", "Description": "d"})["KeyMetadata"]
        c = sm.create_secret(Name="mk/one", SecretString="before-rotate", KmsKeyId=k["KeyId"])
        sm.create_secret(Name="mk/first-use", SecretString="bare", KmsKeyId="alias/mk-bare")
        ok(srv.url, "RotateKey", {"KeyId": "alias/mk-team"})
        ok(srv.url, "RotateKey", {"KeyId": "alias/mk-bare"})
        p = sm.put_secret_value(SecretId="mk/one", SecretString="after-rotate")
    finally:
        srv.stop()
    before = {key: meta_value(srv.data_dir, key) for key in
              ("kms:alias/mk-team", "kms-version:alias/mk-team:2", "kms:alias/mk-bare",
               "kms-version:alias/mk-bare:2")}
    assert all(before.values()), before
    r = subprocess.run([lib.ROTARY_BIN, "master-key", "rotate", "--data-dir", str(srv.data_dir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for key, value in before.items():
        after = meta_value(srv.data_dir, key)
        assert after != value, key
    # The bare form stays bare (older servers read it).
    assert len(meta_value(srv.data_dir, "kms:alias/mk-bare")) == 60
    srv.start()
    try:
        sm = srv.client()
        assert sm.get_secret_value(SecretId="mk/one", VersionId=c["VersionId"])[
            "SecretString"] == "before-rotate"
        assert sm.get_secret_value(SecretId="mk/one")["SecretString"] == "after-rotate"
        assert sealed_key_version(srv.data_dir, c["ARN"], p["VersionId"]) == ("alias/mk-team", 2)
        assert sm.get_secret_value(SecretId="mk/first-use")["SecretString"] == "bare"
        d = ok(srv.url, "DescribeKey", {"KeyId": "alias/mk-team"})["KeyMetadata"]
        assert d["KeyId"] == k["KeyId"] and d["Description"] == "d"
        assert d["CurrentKeyVersion"] == 2
    finally:
        srv.stop()
