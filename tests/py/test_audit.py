"""The audit log (issue 8): `rotary audit verify|query|tail` over DATA_DIR/audit.log.

Two groups:
  * offline tests (`test_cli_*`): build a chain in Python from the documented format
    (docs/audit.md) and check the CLI's verdicts. They need only the binary.
  * server tests (`test_server_*`): start `rotary serve`, make calls, then check the log the
    server wrote. They need the server to write DATA_DIR/audit.log (the request-path wiring),
    and the last two the `--audit-mirror` and `--audit-fail-closed` flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from rotary_testlib import ROTARY_BIN, Server, raw_call, unique_name

GENESIS = "0" * 64
CANARY = "audit-canary-Zq8vW2-never-logged"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def rotary_audit(*args, data_dir: Path):
    """Runs `rotary audit ARGS --data-dir DIR`; returns (rc, stdout, stderr)."""
    p = subprocess.run(
        [ROTARY_BIN, "audit", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "ROTARY_DATA_DIR"},
    )
    return p.returncode, p.stdout, p.stderr


def seal(fields: dict, seq: int, prev: str) -> tuple[str, str]:
    """One line as the writer produces it: Hash = SHA-256 of the bytes before `,"Hash":"`."""
    rec = {"Sequence": seq, **fields, "PrevHash": prev}
    prefix = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)[:-1]
    h = hashlib.sha256(prefix.encode()).hexdigest()
    return prefix + ',"Hash":"' + h + '"}\n', h


def write_chain(data_dir: Path, n: int) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    lines, prev = [], GENESIS
    for i in range(1, n + 1):
        fields = {
            "Time": f"2026-11-30T16:{i % 60:02d}:00.123Z",
            "RequestId": f"req-{i}",
            "PrincipalArn": "arn:aws:iam::000000000000:user/alice" if i % 2 else
                            "arn:aws:iam::000000000000:root",
            "AccessKeyId": "AKIAALICE",
            "Operation": "secretsmanager:GetSecretValue" if i % 3 else "secretsmanager:DeleteSecret",
            "SecretArn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf",
            "Outcome": "Allowed" if i % 4 else "Denied",
        }
        line, prev = seal(fields, i, prev)
        lines.append(line)
    (data_dir / "audit.log").write_text("".join(lines))
    (data_dir / "audit.head").write_text(json.dumps({"Sequence": n, "Hash": prev}) + "\n")
    return lines


def assert_broken(data_dir: Path, position: int):
    rc, out, err = rotary_audit("verify", data_dir=data_dir)
    assert rc == 1, (rc, out, err)
    assert f"record {position}:" in err, err
    rc, out, _ = rotary_audit("verify", "--output", "json", data_dir=data_dir)
    assert rc == 1
    v = json.loads(out)
    assert v["Valid"] is False and v["Position"] == position, v


# ---------------------------------------------------------------------------------------------
# Offline: the CLI against a chain built from the documented format
# ---------------------------------------------------------------------------------------------
def test_cli_verify_whole_chain(tmp_path):
    lines = write_chain(tmp_path, 6)
    rc, out, err = rotary_audit("verify", data_dir=tmp_path)
    assert rc == 0, err
    assert "6 records" in out
    rc, out, _ = rotary_audit("verify", "--output", "json", data_dir=tmp_path)
    v = json.loads(out)
    assert v["Valid"] is True and v["Records"] == 6 and v["HeadChecked"] is True
    assert v["HeadHash"] == json.loads(lines[-1])["Hash"]


def test_cli_verify_edited_byte(tmp_path):
    lines = write_chain(tmp_path, 6)
    lines[2] = lines[2].replace("req-3", "req-X")
    (tmp_path / "audit.log").write_text("".join(lines))
    assert_broken(tmp_path, 3)


def test_cli_verify_edited_hash(tmp_path):
    lines = write_chain(tmp_path, 6)
    h = json.loads(lines[3])["Hash"]
    lines[3] = lines[3].replace(h, ("1" if h[0] != "1" else "2") + h[1:])
    (tmp_path / "audit.log").write_text("".join(lines))
    assert_broken(tmp_path, 4)


def test_cli_verify_deleted_swapped_duplicated(tmp_path):
    lines = write_chain(tmp_path, 6)
    log = tmp_path / "audit.log"
    log.write_text("".join(lines[:2] + lines[3:]))
    assert_broken(tmp_path, 3)
    log.write_text("".join([lines[0], lines[2], lines[1]] + lines[3:]))
    assert_broken(tmp_path, 2)
    log.write_text("".join(lines[:4] + [lines[3]] + lines[4:]))
    assert_broken(tmp_path, 5)


def test_cli_verify_truncated(tmp_path):
    lines = write_chain(tmp_path, 6)
    log = tmp_path / "audit.log"
    log.write_text("".join(lines[:4]))
    assert_broken(tmp_path, 5)
    log.write_text("".join(lines)[:-10])
    assert_broken(tmp_path, 6)


def test_cli_verify_missing_log_is_usage_error(tmp_path):
    rc, _, err = rotary_audit("verify", data_dir=tmp_path / "nope")
    assert rc == 2, err


def test_cli_query_and_tail(tmp_path):
    write_chain(tmp_path, 8)
    rc, out, err = rotary_audit("query", "--outcome", "Denied", "--output", "json",
                                data_dir=tmp_path)
    assert rc == 0, err
    assert [r["Sequence"] for r in json.loads(out)] == [4, 8]
    rc, out, _ = rotary_audit("query", "--action", "DeleteSecret", "--principal", "root",
                              "--output", "json", data_dir=tmp_path)
    assert [r["Sequence"] for r in json.loads(out)] == [6]
    rc, out, _ = rotary_audit("query", "--secret", "app/db", "--limit", "2", "--output", "json",
                              data_dir=tmp_path)
    assert [r["Sequence"] for r in json.loads(out)] == [7, 8]
    rc, out, _ = rotary_audit("query", "--since", "2026-11-30T16:03:00Z",
                              "--until", "2026-11-30T16:05:00Z", "--output", "json",
                              data_dir=tmp_path)
    assert [r["Sequence"] for r in json.loads(out)] == [3, 4]
    rc, out, _ = rotary_audit("tail", "-n", "3", data_dir=tmp_path)
    assert rc == 0
    text = out.splitlines()
    assert len(text) == 3 and "req" not in out and "secretsmanager:" in text[0]
    assert text[-1].split()[0] == "8"


# ---------------------------------------------------------------------------------------------
# Server: needs the request path to write DATA_DIR/audit.log
# ---------------------------------------------------------------------------------------------
def read_records(data_dir: Path) -> list[dict]:
    log = data_dir / "audit.log"
    if not log.exists():
        return []
    return [json.loads(l) for l in log.read_text().splitlines() if l.endswith("}")]


def wait_for(data_dir: Path, pred, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        recs = read_records(data_dir)
        if pred(recs) or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


@pytest.fixture
def audited(own_server):
    """A private server after a few calls: allowed, failed, unauthenticated, bad signature.
    Returns (server, request ids by call)."""
    sm = own_server.client()
    name = unique_name("audit")
    ids = {}
    r = sm.create_secret(Name=name, SecretString=CANARY)
    ids["create"] = (r["ResponseMetadata"]["RequestId"], r["ARN"])
    r = sm.get_secret_value(SecretId=name)
    ids["get"] = (r["ResponseMetadata"]["RequestId"], r["ARN"])
    r = sm.put_secret_value(SecretId=name, SecretString=CANARY + "-2")
    ids["put"] = (r["ResponseMetadata"]["RequestId"], r["VersionId"])
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId=name + "-missing")
    ids["missing"] = ei.value.response["ResponseMetadata"]["RequestId"]
    resp = raw_call(own_server.url, "GetSecretValue", {"SecretId": name}, sign=False)
    assert resp.status == 400
    ids["unsigned"] = resp.headers.get("x-amzn-RequestId")
    resp = raw_call(own_server.url, "GetSecretValue", {"SecretId": name},
                    secret_key="wrong-secret-key-for-audit-test")
    assert resp.status == 400
    ids["badsig"] = resp.headers.get("x-amzn-RequestId")
    wait_for(own_server.data_dir, lambda recs: len(recs) >= 6)
    return own_server, ids


def by_request(recs, rid):
    got = [r for r in recs if r.get("RequestId") == rid]
    assert len(got) == 1, (rid, got)
    return got[0]


def test_server_records_every_call(audited):
    srv, ids = audited
    recs = read_records(srv.data_dir)
    c = by_request(recs, ids["create"][0])
    assert c["Operation"] == "secretsmanager:CreateSecret" and c["Outcome"] == "Allowed"
    assert c["SecretArn"] == ids["create"][1]
    assert c["PrincipalArn"].startswith("arn:aws:iam::")
    assert c["AccessKeyId"] and c["SourceAddress"].startswith("127.0.0.1")
    assert "Boto3" in c.get("UserAgent", "") or "botocore" in c.get("UserAgent", "")
    g = by_request(recs, ids["get"][0])
    assert g["Operation"] == "secretsmanager:GetSecretValue" and g["Outcome"] == "Allowed"
    p = by_request(recs, ids["put"][0])
    assert p["VersionId"] == ids["put"][1]
    m = by_request(recs, ids["missing"])
    assert m["Outcome"] == "ResourceNotFoundException"
    u = by_request(recs, ids["unsigned"])
    assert u["Outcome"] == "AuthenticationFailed" and "PrincipalArn" not in u
    b = by_request(recs, ids["badsig"])
    assert b["Outcome"] == "AuthenticationFailed" and "PrincipalArn" not in b
    seqs = [r["Sequence"] for r in recs]
    assert seqs == list(range(1, len(recs) + 1))


def test_server_log_never_holds_secret_values(audited):
    srv, _ = audited
    srv.stop()
    for f in srv.data_dir.iterdir():
        if f.name.startswith("audit"):
            assert CANARY not in f.read_text(errors="replace"), f
    assert CANARY not in srv.log_path.read_text(errors="replace")


def test_server_log_verifies_running_and_stopped(audited):
    srv, _ = audited
    rc, out, err = rotary_audit("verify", data_dir=srv.data_dir)
    assert rc == 0, err
    srv.stop()
    rc, out, err = rotary_audit("verify", "--output", "json", data_dir=srv.data_dir)
    assert rc == 0, err
    v = json.loads(out)
    assert v["Records"] >= 6 and v["HeadChecked"] is True


def test_server_chain_continues_after_restart(audited):
    srv, _ = audited
    srv.stop()
    before = len(read_records(srv.data_dir))
    srv.start()
    srv.client().list_secrets()
    recs = wait_for(srv.data_dir, lambda r: len(r) > before)
    assert len(recs) > before
    srv.stop()
    rc, out, err = rotary_audit("verify", data_dir=srv.data_dir)
    assert rc == 0, err


@pytest.fixture
def stopped_copy(audited, tmp_path):
    """The stopped server's audit.log and audit.head, copied to a directory of their own."""
    srv, _ = audited
    srv.stop()
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("audit.log", "audit.head"):
        shutil.copy(srv.data_dir / f, copy / f)
    lines = (copy / "audit.log").read_text().splitlines(keepends=True)
    assert len(lines) >= 6
    return copy, lines


def test_server_log_edited_byte_is_found(stopped_copy):
    copy, lines = stopped_copy
    lines[2] = lines[2].replace('"Outcome":"', '"Outcome":"X', 1)
    (copy / "audit.log").write_text("".join(lines))
    assert_broken(copy, 3)


def test_server_log_deleted_record_is_found(stopped_copy):
    copy, lines = stopped_copy
    del lines[1]
    (copy / "audit.log").write_text("".join(lines))
    assert_broken(copy, 2)


def test_server_log_truncation_is_found(stopped_copy):
    copy, lines = stopped_copy
    (copy / "audit.log").write_text("".join(lines[:-2]))
    assert_broken(copy, len(lines) - 1)


def test_server_mirror_gets_the_same_lines(tmp_path):
    """Needs the wiring and the `--audit-mirror PATH` flag."""
    mirror = tmp_path / "mirror.jsonl"
    srv = Server(tmp_path / "m", name="mirror", args=["--audit-mirror", str(mirror)]).start()
    try:
        srv.client().list_secrets()
        wait_for(srv.data_dir, lambda r: len(r) >= 1)
    finally:
        srv.stop()
    assert mirror.read_bytes() == (srv.data_dir / "audit.log").read_bytes()
    assert oct(mirror.stat().st_mode & 0o777) == "0o600"


def test_server_fail_closed_refuses_unauditable_requests(tmp_path):
    """Needs the wiring and `--audit-fail-closed`, `--audit-mirror PATH`: /dev/full answers
    every write with ENOSPC, even for root."""
    srv = Server(tmp_path / "fc", name="failclosed",
                 args=["--audit-fail-closed", "--audit-mirror", "/dev/full"]).start()
    try:
        name = unique_name("failclosed")
        with pytest.raises(ClientError) as ei:
            srv.client().create_secret(Name=name, SecretString=CANARY)
        assert ei.value.response["Error"]["Code"] == "InternalServiceError"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        srv.stop()
    assert CANARY not in (srv.data_dir / "audit.log").read_text(errors="replace")
