"""Failover: a replica promoted in its region takes its rotation with it. The schedule the
primary configured runs in the new region (its test clock moved past the next window), with
the same-named function there; the primary's server is gone meanwhile.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

import rotary_testlib as lib
from rotary_testlib import ACCESS_KEY, SECRET_KEY, Server, unique_name

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))
from rotlib import GENERIC, wait_for  # noqa: E402


def _client(url: str, region: str):
    return boto3.session.Session().client(
        "secretsmanager", endpoint_url=url, region_name=region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def _current(sm, name: str) -> str:
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    return next(v for v, s in stages.items() if "AWSCURRENT" in s)


def test_a_promoted_replica_rotates_on_its_schedule_in_its_new_region(tmp_path):
    west = Server(tmp_path / "west", "west", region="us-west-2",
                  args=["--test-clock"]).start()
    conf = tmp_path / "east.toml"
    conf.write_text(
        "[[regions]]\n"
        'name = "us-west-2"\n'
        f'endpoint = "{west.url}"\n'
        'credentials_secret = "rotary/replication/us-west-2"\n')
    (tmp_path / "east").mkdir()
    east = Server(tmp_path / "east", "east", region="us-east-1",
                  args=["--config", str(conf)]).start()
    try:
        primary = _client(east.url, "us-east-1")
        replica = _client(west.url, "us-west-2")
        primary.create_secret(
            Name="rotary/replication/us-west-2",
            SecretString=json.dumps({"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}))
        name = unique_name("failover")
        primary.create_secret(Name=name, SecretString=json.dumps({"password": "initial"}),
                              AddReplicaRegions=[{"Region": "us-west-2"}])
        primary.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC, RotateImmediately=False,
                              RotationRules={"AutomaticallyAfterDays": 1})

        def in_sync():
            st = primary.describe_secret(SecretId=name)["ReplicationStatus"][0]
            return st["Status"] == "InSync" and "RotationEnabled" in replica.describe_secret(
                SecretId=name)

        wait_for(in_sync, 20, "the rotation configuration to reach the replica", east.log_tail)
        shown = replica.describe_secret(SecretId=name)
        assert shown["RotationEnabled"] is True
        assert shown["RotationLambdaARN"] == GENERIC
        before = _current(replica, name)

        # The primary's region is lost; the replica is promoted where it is.
        east.kill()
        replica.stop_replication_to_replica(SecretId=name)
        promoted = replica.describe_secret(SecretId=name)
        assert "PrimaryRegion" not in promoted
        assert promoted["RotationLambdaARN"] == GENERIC.replace(lib.REGION, "us-west-2")
        assert _current(replica, name) == before
        # The scheduled rotation runs once the clock has passed its window.
        r = lib.raw_call(west.url, "rotary.AdvanceTestClock", json.dumps({"Seconds": 2 * 86400}),
                         region="us-west-2")
        assert r.status == 200, r

        wait_for(lambda: _current(replica, name) != before, 30,
                 "the promoted secret to rotate in its new region", west.log_tail)
        after = replica.get_secret_value(SecretId=name)
        assert json.loads(after["SecretString"])["password"] != "initial"
        stages = replica.describe_secret(SecretId=name)["VersionIdsToStages"]
        assert stages[before] == ["AWSPREVIOUS"], stages
    finally:
        east.stop()
        west.stop()
