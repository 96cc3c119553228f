"""Cross-region replication between Rotary servers (docs/replication.md).

Three servers, each its own region with its own data dir: us-east-1, us-west-2 and
eu-west-1. Each names its peers in a `[[regions]]` table of its config file, with a
credentials secret (created on it after start) holding a key of a principal on the peer.
us-east-1 reaches us-west-2 as a dedicated IAM user allowed only `rotary:ApplyReplica` and
`rotary:DeleteReplica` (the documented least-privilege setup); the other links use the peer's
root key pair.

What must hold, as AWS behaves (spec §3.17):
- a secret created with AddReplicaRegions is read in the replica region with boto3
  configured for that region: value, versions, labels, tags, description, resource policy,
  rotation configuration; the replica's ARN is the primary's with the region replaced;
  ReplicationStatus goes InProgress then InSync; PrimaryRegion on both sides;
- writes on the primary (values, labels, tags, description, a built-in rotation) reach the
  replica in order; every write on the replica is refused and changes nothing;
- a primary with replicas cannot be deleted until RemoveRegionsFromReplication, which
  deletes the replica promptly;
- a peer killed during a burst of writes catches up after it comes back: the same versions,
  the same AWSCURRENT;
- StopReplicationToReplica promotes a replica; a name clash fails unless
  ForceOverwriteReplicaSecret; the primary-region filter lists replicas;
- no value, nor a replication credential, is ever in plaintext on the wire between regions
  (us-east-1 reaches eu-west-1 over plain HTTP through a relay that records every byte), in
  a server's log (Rotary's crates log at debug level) or in a data dir: values cross sealed.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import rotary_testlib as lib

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
# Every test's replication must settle within this. Catching up after a peer comes back may
# take longer: the primary retries a secret that failed after a delay that doubles with each
# failed attempt, up to 30 s (docs/replication.md, "Lag and monitoring").
SYNC_TIMEOUT = 15.0
CATCH_UP_TIMEOUT = 45.0

GENERIC = f"arn:aws:lambda:{EAST}:{lib.ACCOUNT}:function:rotary-generic-password"

REPLICA_WRITE = (
    "Operation not permitted on a replica secret. Call must be made in primary secret's region."
)
NAME_CLASH = "Secret with this name already exists in this region"
INVALID_REPLICA_REGION = "Invalid replica region."
# Rotary's status message for a region whose replica was promoted (docs/replication.md).
PROMOTED = ("The replica in this region was promoted to a standalone secret "
            "(StopReplicationToReplica); remove the region from the primary's replication.")

# The least-privilege identity policy for the principal a peer replicates as.
REPLICATOR_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow",
    "Action": ["rotary:ApplyReplica", "rotary:DeleteReplica"],
    "Resource": "*"}]})

# Debug logging in Rotary's own crates, so that "never logged" covers the detailed lines too.
LOG_FILTER = ("info,rotary=debug,rotary_core=debug,rotary_server=debug,rotary_store=debug,"
              "rotary_rotation=debug,sqlx=warn,tower_http=warn")

# Every value and credential the module stores: the last test looks for each in the logs
# and data dirs.
CANARIES: list[bytes] = []


def still_replicated_msg(secret_id: str, regions: list[str]) -> str:
    return (f"You can't delete secret {secret_id} that still has replica regions "
            f"[{','.join(regions)}]")


def canary(label: str) -> str:
    """A fresh secret value, remembered for the plaintext check."""
    v = f"{label}-plaintext-{uuid.uuid4().hex}"
    CANARIES.append(v.encode())
    return v


def secret_value(label: str) -> str:
    """A JSON secret value like applications store, with a fresh password."""
    return json.dumps({"username": "app", "password": canary(label)})


def region_arn(arn: str, region: str) -> str:
    parts = arn.split(":")
    parts[3] = region
    return ":".join(parts)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
class RegionServer(lib.Server):
    """A `rotary serve` of one region, configured by a TOML file that names its peers.

    Its port is chosen at construction, so the peers' config files can name it before it
    starts and a restart on the same data dir keeps it (the peers' endpoints stay valid)."""

    def __init__(self, base_dir: Path, region: str, port: int):
        self.config_path = Path(base_dir) / "rotary.toml"
        super().__init__(base_dir, name=region, env={"ROTARY_LOG": LOG_FILTER},
                         args=["--config", str(self.config_path)])
        self.region = region
        self.port = port

    def configure(self, peers: list["RegionServer"], via: dict[str, str] | None = None) -> None:
        """Writes the config file naming `peers`; `via`: region -> endpoint to use instead of
        the peer's own URL (a relay in front of it)."""
        via = via or {}
        lines = [f'region = "{self.region}"', f'account_id = "{lib.ACCOUNT}"', ""]
        for p in peers:
            endpoint = via.get(p.region, p.url)
            lines += ["[[regions]]", f'name = "{p.region}"', f'endpoint = "{endpoint}"',
                      f'credentials_secret = "{credentials_secret(p.region)}"', ""]
        self.config_path.write_text("\n".join(lines))

    def start(self, timeout: float = 20.0) -> "RegionServer":
        if not os.path.exists(lib.ROTARY_BIN):
            pytest.fail(f"rotary binary not found at {lib.ROTARY_BIN} (set ROTARY_BIN)")
        env = dict(os.environ)
        env["ROTARY_ROOT_ACCESS_KEY_ID"] = lib.ACCESS_KEY
        env["ROTARY_ROOT_SECRET_ACCESS_KEY"] = lib.SECRET_KEY
        env.update(self.extra_env)
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(f"\n===== start port={self.port} at {time.time():.3f} =====\n".encode())
        self._log_fh.flush()
        self.proc = subprocess.Popen(
            [lib.ROTARY_BIN, "serve", "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{self.port}", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log_fh, stderr=self._log_fh, env=env)
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"rotary ({self.region}) exited with rc={rc} during startup; "
                            f"log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError) as e:  # not up yet
                last_err = e
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"rotary ({self.region}) not healthy after {timeout}s ({last_err}); "
                    f"log:\n{self.log_tail()}")

    def client(self, access_key: str = lib.ACCESS_KEY, secret_key: str = lib.SECRET_KEY):
        """boto3 configured for this server's region, as an application in it would be."""
        return lib.make_client(self.url, access_key=access_key, secret_key=secret_key,
                               region=self.region)

    def rotary(self, op: str, body: dict) -> dict:
        """A Rotary API call (`rotary.<op>`, root keys) that must succeed."""
        r = lib.raw_call(self.url, f"rotary.{op}", json.dumps(body), region=self.region)
        assert r.status == 200, (self.region, op, r.status, r.json)
        return r.json


def credentials_secret(peer_region: str) -> str:
    return f"rotary/replication/{peer_region}"


class WireRecorder:
    """A TCP relay in front of a server that keeps every byte passing through it, both ways:
    what crosses the network between two regions."""

    def __init__(self):
        self.port = lib.free_port()
        self.target_port: int | None = None
        self.data = bytearray()
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def captured(self) -> bytes:
        with self._lock:
            return bytes(self.data)

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while chunk := src.recv(65536):
                with self._lock:
                    self.data += chunk
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._sock.close()


class Regions:
    def __init__(self, servers: dict[str, RegionServer], wire: WireRecorder):
        self.servers = servers
        # What us-east-1 sends to eu-west-1 (over plain HTTP) and gets back.
        self.wire = wire
        self.east = servers[EAST].client()
        self.west = servers[WEST].client()
        self.eu = servers[EU].client()
        self.replicator_key: dict = {}


def fixed_port() -> int:
    """A free port below the kernel's ephemeral range (32768-60999). A server's port is
    chosen before it starts (its peers' configs name it) and kept across a restart: a port
    in the ephemeral range could meanwhile become some outgoing connection's source port."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-32000")


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    base = tmp_path_factory.mktemp("replication")
    servers = {r: RegionServer(base / r, r, fixed_port()) for r in (EAST, WEST, EU)}
    wire = WireRecorder()
    wire.target_port = servers[EU].port
    servers[EAST].configure([servers[WEST], servers[EU]], via={EU: wire.url})
    servers[WEST].configure([servers[EAST]])
    servers[EU].configure([servers[EAST]])
    try:
        for s in servers.values():
            s.start()
        env = Regions(servers, wire)

        # us-east-1 → us-west-2: a user on us-west-2 that may only apply and delete replicas.
        user = "replicator-us-east-1"
        servers[WEST].rotary("CreateUser", {"UserName": user})
        servers[WEST].rotary("PutUserPolicy", {"UserName": user, "PolicyName": "replicate",
                                               "PolicyDocument": REPLICATOR_POLICY})
        key = servers[WEST].rotary("CreateAccessKey", {"UserName": user})["AccessKey"]
        env.replicator_key = key
        CANARIES.append(key["SecretAccessKey"].encode())
        env.east.create_secret(Name=credentials_secret(WEST), SecretString=json.dumps(
            {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}))

        # The other links: the peer's root key pair.
        root = json.dumps({"AccessKeyId": lib.ACCESS_KEY, "SecretAccessKey": lib.SECRET_KEY})
        env.east.create_secret(Name=credentials_secret(EU), SecretString=root)
        env.west.create_secret(Name=credentials_secret(EAST), SecretString=root)
        env.eu.create_secret(Name=credentials_secret(EAST), SecretString=root)
        yield env
    finally:
        for s in servers.values():
            s.stop()
        wire.close()


@pytest.fixture(autouse=True)
def _regions_alive(request):
    """Fail loudly if a test left a region's server dead (a crash is a server bug)."""
    yield
    if "regions" in request.fixturenames:
        for s in request.getfixturevalue("regions").servers.values():
            if not s.alive():
                pytest.fail(f"{s.region} server died during {request.node.name} "
                            f"(rc={s.proc.returncode}); log tail:\n{s.log_tail()}")


# ---------------------------------------------------------------------------------------------
# Observing
# ---------------------------------------------------------------------------------------------
def wait_until(fn, timeout: float, what: str, detail=lambda: ""):
    """Polls fn() until it returns something truthy and returns it. A ClientError counts as
    not yet (e.g. a replica that does not exist yet) and is shown on timeout."""
    deadline = time.monotonic() + timeout
    delay, last = 0.05, None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except ClientError as e:
            last = e.response.get("Error")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"last: {last!r}\n{detail()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def statuses(sm, sid) -> dict[str, dict]:
    d = sm.describe_secret(SecretId=sid)
    return {r["Region"]: r for r in d.get("ReplicationStatus", [])}


def wait_status(sm, sid, region, status, timeout=SYNC_TIMEOUT) -> dict:
    return wait_until(
        lambda: (s := statuses(sm, sid).get(region)) and s["Status"] == status and s,
        timeout, f"{sid} to be {status} in {region}",
        lambda: f"ReplicationStatus: {statuses(sm, sid)}")


def view(sm, sid) -> dict:
    """What a replica must show exactly as its primary does."""
    d = sm.describe_secret(SecretId=sid)
    versions = lib.list_all_versions(sm, sid)
    values = {}
    for v in versions:
        g = sm.get_secret_value(SecretId=sid, VersionId=v["VersionId"])
        values[v["VersionId"]] = g.get("SecretString", g.get("SecretBinary"))
    try:
        policy = sm.get_resource_policy(SecretId=sid).get("ResourcePolicy")
    except ClientError as e:
        policy = ("error", e.response["Error"]["Code"])
    return {
        "Name": d["Name"],
        "Description": d.get("Description"),
        "Tags": d.get("Tags"),
        "VersionIdsToStages": {k: sorted(v) for k, v in d.get("VersionIdsToStages", {}).items()},
        "RotationEnabled": d.get("RotationEnabled"),
        "RotationLambdaARN": d.get("RotationLambdaARN"),
        "RotationRules": d.get("RotationRules"),
        "versions": sorted(v["VersionId"] for v in versions),
        "values": values,
        "policy": json.loads(policy) if isinstance(policy, str) else policy,
    }


def wait_replica_matches(env: Regions, replica, sid, timeout=SYNC_TIMEOUT) -> dict:
    """Waits until the replica shows what the primary (us-east-1) shows; returns it."""
    want = view(env.east, sid)
    got = {}

    def same():
        nonlocal got
        got = view(replica, sid)
        return got == want

    wait_until(same, timeout, f"the replica of {sid} to match its primary",
               lambda: f"primary: {want}\nreplica: {got}")
    return want


class CurrentWatcher:
    """Reads a replica's AWSCURRENT version over and over in a thread, to check that it
    moves only forward through the primary's order of writes (`order`: version ids, oldest
    first). Reads made while the server is down are not counted."""

    def __init__(self, server: RegionServer, sid: str, order: list[str]):
        self.server, self.sid, self.order = server, sid, order
        self.seen: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        sm = lib.make_client(self.server.url, region=self.server.region)
        while not self._done.is_set():
            if not self.server.alive():
                time.sleep(0.05)
                continue
            try:
                self.seen.append(sm.get_secret_value(SecretId=self.sid)["VersionId"])
            except ClientError as e:
                self.seen.append(f"error {e.response['Error']['Code']}")
            except Exception:  # noqa: BLE001 - the server is restarting: not a read
                time.sleep(0.05)

    def wait_for_last(self, timeout: float):
        wait_until(lambda: self.seen and self.seen[-1] == self.order[-1], timeout,
                   f"the replica of {self.sid} to reach the primary's last write",
                   lambda: f"last reads: {self.seen[-5:]}")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)
        if exc[0] is None:
            positions = [self.order.index(v) if v in self.order else v for v in self.seen]
            assert all(isinstance(p, int) for p in positions), f"unexpected reads: {self.seen}"
            assert positions == sorted(positions), f"the replica went back: {positions}"
        return False


def replica_gone(sm, sid) -> bool:
    try:
        sm.describe_secret(SecretId=sid)
    except ClientError as e:
        return e.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


def create_replicated(env: Regions, prefix: str, regions=(WEST,), **kw) -> tuple[str, dict]:
    name = lib.unique_name(prefix)
    kw.setdefault("SecretString", secret_value(prefix))
    if regions:
        kw["AddReplicaRegions"] = [{"Region": x} for x in regions]
    return name, env.east.create_secret(Name=name, **kw)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def test_created_with_replica_regions_everything_is_read_in_the_replica_region(regions):
    env = regions
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{lib.ACCOUNT}:root"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    tags = [{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}]
    name, r = create_replicated(env, "repl-create", Description="payments database",
                                Tags=tags)
    assert lib.arn_regex(name, EAST).match(r["ARN"]), r
    assert r["ReplicationStatus"] == [{"Region": WEST, "Status": "InProgress"}], r
    env.east.put_resource_policy(SecretId=name, ResourcePolicy=policy)
    env.east.update_secret_version_stage(SecretId=name, VersionStage="deployed",
                                         MoveToVersionId=r["VersionId"])

    wait_status(env.east, name, WEST, "InSync")
    want = wait_replica_matches(env, env.west, name)
    assert want["Description"] == "payments database" and want["Tags"] == tags
    assert want["VersionIdsToStages"] == {r["VersionId"]: ["AWSCURRENT", "deployed"]}
    assert want["policy"] == json.loads(policy)

    primary = env.east.describe_secret(SecretId=name)
    assert primary["PrimaryRegion"] == EAST, primary
    replica = env.west.describe_secret(SecretId=name)
    assert replica["PrimaryRegion"] == EAST, replica
    assert replica["ARN"] == region_arn(r["ARN"], WEST), (replica["ARN"], r["ARN"])
    # Read as applications in that region read it: by name and by the replica's ARN.
    for sid in (name, replica["ARN"]):
        g = env.west.get_secret_value(SecretId=sid)
        assert g["SecretString"] == env.east.get_secret_value(SecretId=name)["SecretString"]
        assert g["VersionId"] == r["VersionId"] and g["ARN"] == replica["ARN"], g
    assert env.west.get_resource_policy(SecretId=name)["ARN"] == replica["ARN"]

    # The peer credential of us-east-1 works for replication only.
    k = env.replicator_key
    spy = env.servers[WEST].client(access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    for call in (lambda: spy.get_secret_value(SecretId=name),
                 lambda: spy.list_secrets(),
                 lambda: spy.create_secret(Name=lib.unique_name("spy"), SecretString="x")):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["Error"]["Code"] == "AccessDeniedException", ei.value.response


def test_writes_on_the_primary_reach_the_replica_in_order(regions):
    env = regions
    name, r = create_replicated(env, "repl-writes", Description="first",
                                Tags=[{"Key": "a", "Value": "1"}])
    v1 = r["VersionId"]
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)

    v2 = env.east.put_secret_value(SecretId=name, SecretString=secret_value("repl-writes"))[
        "VersionId"]
    want = wait_replica_matches(env, env.west, name)
    assert want["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}

    # Labels: AWSCURRENT back to the first version, a custom label on the second.
    env.east.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT",
                                         MoveToVersionId=v1, RemoveFromVersionId=v2)
    env.east.update_secret_version_stage(SecretId=name, VersionStage="canary",
                                         MoveToVersionId=v2)
    want = wait_replica_matches(env, env.west, name)
    assert "AWSCURRENT" in want["VersionIdsToStages"][v1]
    assert "canary" in want["VersionIdsToStages"][v2]
    assert env.west.get_secret_value(SecretId=name)["VersionId"] == v1

    env.east.tag_resource(SecretId=name, Tags=[{"Key": "b", "Value": "2"}])
    env.east.untag_resource(SecretId=name, TagKeys=["a"])
    want = wait_replica_matches(env, env.west, name)
    assert want["Tags"] == [{"Key": "b", "Value": "2"}]

    env.east.update_secret(SecretId=name, Description="second")
    want = wait_replica_matches(env, env.west, name)
    assert want["Description"] == "second"

    # A rotation runs on the primary only; its result (and the rotation configuration)
    # replicates.
    token = env.east.rotate_secret(SecretId=name, RotationLambdaARN=GENERIC,
                                   RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    wait_until(lambda: lib.stages(env.east, name).get(token) == ["AWSCURRENT"]
               and not any("AWSPENDING" in s for s in lib.stages(env.east, name).values()),
               30, f"the rotation of {name} to finish on the primary",
               lambda: f"stages: {lib.stages(env.east, name)}")
    CANARIES.append(env.east.get_secret_value(SecretId=name)["SecretString"].encode())
    want = wait_replica_matches(env, env.west, name)
    assert want["RotationEnabled"] is True and want["RotationLambdaARN"] == GENERIC
    assert env.west.get_secret_value(SecretId=name)["VersionId"] == token

    # A burst of writes: what the replica shows moves only forward, through the primary's
    # order, and ends at the primary's last.
    tokens = [lib.new_token() for _ in range(15)]
    with CurrentWatcher(env.servers[WEST], name, [token, *tokens]) as watcher:
        for t in tokens:
            env.east.put_secret_value(SecretId=name, SecretString=secret_value("repl-burst"),
                                      ClientRequestToken=t)
        watcher.wait_for_last(SYNC_TIMEOUT)
    wait_replica_matches(env, env.west, name)


def test_every_write_on_a_replica_is_refused_and_changes_nothing(regions):
    env = regions
    name, r = create_replicated(env, "repl-readonly", Description="d",
                                Tags=[{"Key": "k", "Value": "v"}])
    env.east.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{lib.ACCOUNT}:root"},
            "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]}))
    v1 = r["VersionId"]
    v2 = env.east.put_secret_value(SecretId=name, SecretString=secret_value("repl-readonly"))[
        "VersionId"]
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)
    replica_before = lib.snapshot(env.west, name)
    primary_before = lib.snapshot(env.east, name)
    arn = env.west.describe_secret(SecretId=name)["ARN"]

    w = env.west
    refused = [
        (w.put_secret_value, {"SecretString": canary("repl-refused")}),
        (w.update_secret, {"Description": "changed"}),
        (w.update_secret, {"SecretString": canary("repl-refused")}),
        (w.tag_resource, {"Tags": [{"Key": "x", "Value": "y"}]}),
        (w.untag_resource, {"TagKeys": ["k"]}),
        (w.delete_secret, {}),
        (w.delete_secret, {"ForceDeleteWithoutRecovery": True}),
        (w.update_secret_version_stage, {"VersionStage": "AWSCURRENT", "MoveToVersionId": v1,
                                         "RemoveFromVersionId": v2}),
        (w.put_resource_policy, {"ResourcePolicy": json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{lib.ACCOUNT}:root"},
                "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})}),
        (w.delete_resource_policy, {}),
        (w.rotate_secret, {"RotationLambdaARN": region_arn(GENERIC, WEST)}),
        (w.cancel_rotate_secret, {}),
    ]
    for call, kw in refused:
        for sid in (name, arn):
            lib.expect_error(call, "InvalidRequestException", REPLICA_WRITE, SecretId=sid, **kw)
    # Nor can a Secrets Manager administrator write it through the peer-facing operations:
    # they need rotary:ApplyReplica / rotary:DeleteReplica.
    west = env.servers[WEST]
    admin = lib.unique_name("sm-admin")
    west.rotary("CreateUser", {"UserName": admin})
    west.rotary("PutUserPolicy", {"UserName": admin, "PolicyName": "all", "PolicyDocument":
                                  json.dumps({"Version": "2012-10-17", "Statement": [{
                                      "Effect": "Allow", "Action": "secretsmanager:*",
                                      "Resource": "*"}]})})
    key = west.rotary("CreateAccessKey", {"UserName": admin})["AccessKey"]
    for op, body in (("ApplyReplica", {"Salt": "", "Snapshot": {"Name": name}}),
                     ("DeleteReplica", {"Name": name, "PrimaryRegion": EAST})):
        resp = lib.raw_call(west.url, f"rotary.{op}", json.dumps(body), region=WEST,
                            access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        assert resp.status == 400 and resp.json["__type"].endswith("AccessDeniedException"), \
            (op, resp)
    assert lib.snapshot(env.west, name) == replica_before
    assert lib.snapshot(env.east, name) == primary_before


def test_a_primary_with_replicas_is_deleted_only_after_removing_them(regions):
    env = regions
    name, r = create_replicated(env, "repl-delete")
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)

    for sid in (name, r["ARN"]):  # the message names the secret as the caller did
        lib.expect_error(env.east.delete_secret, "InvalidParameterException",
                         still_replicated_msg(sid, [WEST]), SecretId=sid)
        lib.expect_error(env.east.delete_secret, "InvalidParameterException",
                         still_replicated_msg(sid, [WEST]), SecretId=sid,
                         ForceDeleteWithoutRecovery=True)
    assert "DeletedDate" not in env.east.describe_secret(SecretId=name)

    out = env.east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[WEST])
    assert out["ARN"] == r["ARN"] and out["ReplicationStatus"] == [], out
    wait_until(lambda: replica_gone(env.west, name), 5, f"the replica of {name} to be deleted")
    assert WEST not in statuses(env.east, name)

    env.east.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert replica_gone(env.east, name)


def test_a_peer_down_during_writes_catches_up_when_it_returns(regions):
    env = regions
    west = env.servers[WEST]
    # Created without a value: the 100 puts make exactly the 100 versions a secret may hold
    # within a day.
    name = lib.unique_name("repl-down")
    env.east.create_secret(Name=name, AddReplicaRegions=[{"Region": WEST}])
    # Another secret, removed from replication while the peer is down.
    removed, _ = create_replicated(env, "repl-down-removed")
    wait_status(env.east, removed, WEST, "InSync")
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)

    tokens = [lib.new_token() for _ in range(100)]
    slowest = 0.0
    try:
        for i, t in enumerate(tokens):
            if i == 30:
                west.kill()
            t0 = time.monotonic()
            out = env.east.put_secret_value(SecretId=name, ClientRequestToken=t,
                                            SecretString=secret_value("repl-down"))
            slowest = max(slowest, time.monotonic() - t0)
            assert out["VersionId"] == t, out
        # The primary does not wait for a peer that is down.
        assert slowest < 5.0, f"a put took {slowest:.1f}s while the peer was down"
        s = statuses(env.east, name)[WEST]
        assert s["Status"] in ("Failed", "InProgress"), s
        if s["Status"] == "Failed":
            assert s.get("StatusMessage"), s
        out = env.east.remove_regions_from_replication(SecretId=removed,
                                                       RemoveReplicaRegions=[WEST])
        assert out["ReplicationStatus"] == [], out
    finally:
        if not west.alive():
            west.start()

    # Back on the same port and data dir: it catches up with every version, in order.
    with CurrentWatcher(west, name, tokens) as watcher:
        watcher.wait_for_last(CATCH_UP_TIMEOUT)
    wait_status(env.east, name, WEST, "InSync", timeout=CATCH_UP_TIMEOUT)
    want = wait_replica_matches(env, env.west, name, timeout=CATCH_UP_TIMEOUT)
    assert want["versions"] == sorted(tokens), want["versions"]
    # The same creation times, so the same order of versions.
    def created(sm):
        return {v["VersionId"]: v["CreatedDate"] for v in lib.list_all_versions(sm, name)}
    assert created(env.west) == created(env.east)
    assert want["VersionIdsToStages"][tokens[-1]] == ["AWSCURRENT"]
    assert want["VersionIdsToStages"][tokens[-2]] == ["AWSPREVIOUS"]
    assert env.west.get_secret_value(SecretId=name)["VersionId"] == tokens[-1]
    assert env.east.describe_secret(SecretId=name)["PrimaryRegion"] == EAST
    # The removal made while it was down reached it too.
    wait_until(lambda: replica_gone(env.west, removed), CATCH_UP_TIMEOUT,
               f"the replica of {removed} to be deleted once its region is back")


def test_stop_replication_promotes_the_replica_to_a_standalone_secret(regions):
    env = regions
    name, r = create_replicated(env, "repl-promote")
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)
    replica_arn = region_arn(r["ARN"], WEST)

    # Not a replica: the primary itself.
    lib.expect_error(env.east.stop_replication_to_replica, "InvalidRequestException",
                     SecretId=name)

    out = env.west.stop_replication_to_replica(SecretId=name)
    assert out["ARN"] == replica_arn, out
    d = env.west.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in d, d
    assert d["ARN"] == replica_arn
    # Writable now.
    value = secret_value("repl-promoted")
    vid = env.west.put_secret_value(SecretId=name, SecretString=value)["VersionId"]
    env.west.update_secret(SecretId=name, Description="promoted")
    env.west.tag_resource(SecretId=name, Tags=[{"Key": "promoted", "Value": "yes"}])
    g = env.west.get_secret_value(SecretId=name)
    assert g["VersionId"] == vid and g["SecretString"] == value
    assert env.west.describe_secret(SecretId=name)["Description"] == "promoted"
    # Promoting it again: it is no longer a replica.
    lib.expect_error(env.west.stop_replication_to_replica, "InvalidRequestException",
                     SecretId=name)
    # The primary keeps serving; the primary-region filter no longer finds the promoted one.
    assert env.east.get_secret_value(SecretId=name)["VersionId"] == r["VersionId"]
    listed = env.west.list_secrets(Filters=[{"Key": "primary-region", "Values": [EAST]},
                                            {"Key": "name", "Values": [name]}])["SecretList"]
    assert listed == [], listed

    # The old primary writes again (as after a failover it should not): the promoted
    # secret refuses the replica, the region's status says why, nothing changes there.
    promoted = lib.snapshot(env.west, name)
    env.east.put_secret_value(SecretId=name, SecretString=secret_value("repl-old-primary"))
    s = wait_status(env.east, name, WEST, "Failed")
    assert s.get("StatusMessage") == PROMOTED, s
    assert lib.snapshot(env.west, name) == promoted


def test_name_clash_fails_unless_forced_to_overwrite(regions):
    env = regions
    name = lib.unique_name("repl-clash")
    local = canary("repl-clash-local")
    env.west.create_secret(Name=name, SecretString=local)
    value = secret_value("repl-clash")
    created = env.east.create_secret(Name=name, SecretString=value)

    out = env.east.replicate_secret_to_regions(SecretId=name,
                                               AddReplicaRegions=[{"Region": WEST}])
    assert out["ARN"] == created["ARN"], out
    assert [s["Region"] for s in out["ReplicationStatus"]] == [WEST], out
    assert out["ReplicationStatus"][0]["Status"] in ("InProgress", "Failed"), out
    s = wait_status(env.east, name, WEST, "Failed")
    assert s.get("StatusMessage") == NAME_CLASH, s
    # The secret in that region is untouched.
    d = env.west.describe_secret(SecretId=name)
    assert "PrimaryRegion" not in d, d
    assert env.west.get_secret_value(SecretId=name)["SecretString"] == local

    out = env.east.replicate_secret_to_regions(SecretId=name,
                                               AddReplicaRegions=[{"Region": WEST}],
                                               ForceOverwriteReplicaSecret=True)
    assert out["ARN"] == created["ARN"], out
    wait_status(env.east, name, WEST, "InSync")
    want = wait_replica_matches(env, env.west, name)
    assert want["versions"] == [created["VersionId"]], want
    d = env.west.describe_secret(SecretId=name)
    assert d["PrimaryRegion"] == EAST and d["ARN"] == region_arn(created["ARN"], WEST), d
    assert env.west.get_secret_value(SecretId=name)["SecretString"] == value


def test_a_replica_region_may_name_its_own_kms_key(regions):
    env = regions
    alias = f"alias/{lib.unique_name('replica-key')}"
    name, r = create_replicated(env, "repl-kms", regions=())  # no replicas yet
    assert "ReplicationStatus" not in r, r
    out = env.east.replicate_secret_to_regions(
        SecretId=name, AddReplicaRegions=[{"Region": WEST, "KmsKeyId": alias}])
    assert out["ReplicationStatus"] == [
        {"Region": WEST, "KmsKeyId": alias, "Status": "InProgress"}], out
    s = wait_status(env.east, name, WEST, "InSync")
    assert s["KmsKeyId"] == alias, s
    wait_replica_matches(env, env.west, name)
    # Sealed there under that key (created on first use, as an alias always is); the
    # primary keeps its default key.
    assert env.west.describe_secret(SecretId=name).get("KmsKeyId") == alias
    assert "KmsKeyId" not in env.east.describe_secret(SecretId=name)
    versions = lib.list_all_versions(env.west, name)
    assert len(versions) == 1 and versions[0]["KmsKeyIds"] != ["DefaultEncryptionKey"], versions


def test_replica_regions_must_be_configured_peers(regions):
    env = regions
    for region, message in ((EAST, INVALID_REPLICA_REGION), ("ap-south-1", None)):
        name = lib.unique_name("repl-badregion")
        resp = lib.expect_error(env.east.create_secret, "InvalidParameterException", message,
                                Name=name, SecretString=canary("repl-badregion"),
                                AddReplicaRegions=[{"Region": region}])
        if message is None:
            assert region in resp["Error"]["Message"], resp["Error"]
        assert replica_gone(env.east, name), "a refused create must create nothing"

        env.east.create_secret(Name=name, SecretString=canary("repl-badregion"))
        before = lib.snapshot(env.east, name)
        resp = lib.expect_error(env.east.replicate_secret_to_regions,
                                "InvalidParameterException", message, SecretId=name,
                                AddReplicaRegions=[{"Region": region}])
        if message is None:
            assert region in resp["Error"]["Message"], resp["Error"]
        assert lib.snapshot(env.east, name) == before


def test_one_primary_in_three_regions(regions):
    env = regions
    name, r = create_replicated(env, "repl-three", regions=(WEST, EU))
    assert sorted(r["ReplicationStatus"], key=lambda s: s["Region"]) == [
        {"Region": EU, "Status": "InProgress"}, {"Region": WEST, "Status": "InProgress"}], r
    for region in (WEST, EU):
        wait_status(env.east, name, region, "InSync")
    for replica in (env.west, env.eu):
        wait_replica_matches(env, replica, name)
    assert env.eu.describe_secret(SecretId=name)["ARN"] == region_arn(r["ARN"], EU)

    value = secret_value("repl-three")
    vid = env.east.put_secret_value(SecretId=name, SecretString=value)["VersionId"]
    for replica in (env.west, env.eu):
        wait_until(lambda: replica.get_secret_value(SecretId=name)["VersionId"] == vid,
                   SYNC_TIMEOUT, "the put to reach every replica")
        assert replica.get_secret_value(SecretId=name)["SecretString"] == value
        wait_replica_matches(env, replica, name)

    with pytest.raises(ClientError) as ei:
        env.east.delete_secret(SecretId=name)
    err = ei.value.response["Error"]
    assert err["Code"] == "InvalidParameterException", err
    assert err["Message"] in (still_replicated_msg(name, [WEST, EU]),
                              still_replicated_msg(name, [EU, WEST])), err

    out = env.east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[WEST])
    assert [s["Region"] for s in out["ReplicationStatus"]] == [EU], out
    wait_until(lambda: replica_gone(env.west, name), 5, "the us-west-2 replica to go")
    assert env.eu.get_secret_value(SecretId=name)["VersionId"] == vid
    lib.expect_error(env.east.delete_secret, "InvalidParameterException",
                     still_replicated_msg(name, [EU]), SecretId=name)
    out = env.east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[EU])
    assert out["ReplicationStatus"] == [], out
    wait_until(lambda: replica_gone(env.eu, name), 5, "the eu-west-1 replica to go")


def test_primary_region_filter_lists_the_replicas(regions):
    env = regions
    prefix = f"repl-filter-{uuid.uuid4().hex[:8]}/"
    names = []
    for i in range(2):
        name = f"{prefix}{i}"
        env.east.create_secret(Name=name, SecretString=secret_value("repl-filter"),
                               AddReplicaRegions=[{"Region": WEST}])
        names.append(name)
    env.west.create_secret(Name=f"{prefix}local", SecretString=canary("repl-filter-local"))
    for name in names:
        wait_status(env.east, name, WEST, "InSync")

    def listed(sm, region):
        return sm.list_secrets(Filters=[{"Key": "primary-region", "Values": [region]},
                                        {"Key": "name", "Values": [prefix]}])["SecretList"]

    got = listed(env.west, EAST)
    assert sorted(s["Name"] for s in got) == names, got
    assert all(s["PrimaryRegion"] == EAST for s in got), got
    assert listed(env.west, WEST) == []
    every = env.west.list_secrets(Filters=[{"Key": "name", "Values": [prefix]}])["SecretList"]
    assert sorted(s["Name"] for s in every) == sorted([*names, f"{prefix}local"]), every


def test_values_and_credentials_never_in_plaintext_on_the_wire_in_logs_or_data_dirs(regions):
    """Runs last: every value the module stored, and the replication credentials, are looked
    for in what crossed between us-east-1 and eu-west-1 over plain HTTP, in the three
    servers' logs, and in every file of their data dirs (database, WAL, audit log)."""
    env = regions
    # One more value, text and binary, certain to have crossed to both peers.
    text = canary("repl-sealed")
    binary = canary("repl-sealed-bin").encode()
    name, _ = create_replicated(env, "repl-sealed", regions=(WEST, EU), SecretString=text)
    env.east.put_secret_value(SecretId=name, SecretBinary=binary)
    for replica in (env.west, env.eu):
        wait_replica_matches(env, replica, name)
        assert replica.get_secret_value(SecretId=name)["SecretBinary"] == binary

    needles = [c for c in CANARIES if len(c) >= 16] + [lib.SECRET_KEY.encode()]
    forms = []
    for c in needles:
        forms += [c, base64.b64encode(c)]
    wire = env.wire.captured()
    # The relay did see the replication requests (names and metadata are not sealed).
    assert b"rotary.ApplyReplica" in wire and name.encode() in wire, len(wire)
    found = [f"wire: {n[:40]!r}" for n in forms if n in wire]
    for region in (EAST, WEST, EU):
        s = env.servers[region]
        files = [s.log_path, *(p for p in s.data_dir.rglob("*") if p.is_file())]
        for f in files:
            try:
                data = f.read_bytes()
            except OSError:
                continue
            found += [f"{f}: {n[:40]!r}" for n in forms if n in data]
    assert not found, "plaintext found:\n" + "\n".join(found)


def test_a_replica_forced_over_a_clash_once_is_not_forced_after_its_promotion(regions):
    """ForceOverwriteReplicaSecret is a parameter of one ReplicateSecretToRegions call: once
    that region's replica is promoted (failover), the old primary's later writes must not
    overwrite the promoted secret, as for any other replica."""
    env = regions
    name = lib.unique_name("repl-force-promote")
    env.west.create_secret(Name=name, SecretString=canary("repl-force-local"))
    env.east.create_secret(Name=name, SecretString=secret_value("repl-force"))
    env.east.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": WEST}],
                                         ForceOverwriteReplicaSecret=True)
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)

    env.west.stop_replication_to_replica(SecretId=name)
    value = secret_value("repl-force-promoted")
    env.west.put_secret_value(SecretId=name, SecretString=value)
    promoted = lib.snapshot(env.west, name)
    env.east.put_secret_value(SecretId=name, SecretString=secret_value("repl-force-old"))
    # The write makes the region InProgress until the primary has tried to send it.
    s = wait_until(lambda: (x := statuses(env.east, name)[WEST])["Status"] != "InProgress"
                   and x, SYNC_TIMEOUT, "the old primary to send its write")
    assert env.west.get_secret_value(SecretId=name)["SecretString"] == value, \
        f"the old primary overwrote the promoted secret (its status: {s})"
    assert lib.snapshot(env.west, name) == promoted
    assert s["Status"] == "Failed" and s.get("StatusMessage") == PROMOTED, s


def test_a_removed_replica_is_deleted_when_its_region_returns_even_after_the_primary(regions):
    """RemoveRegionsFromReplication while the region is down, then the primary deleted at
    once (allowed: it has no replica regions left): the replica must still be deleted when
    the region is back, not left behind as a read-only replica of nothing."""
    env = regions
    west = env.servers[WEST]
    name, _ = create_replicated(env, "repl-orphan")
    wait_status(env.east, name, WEST, "InSync")
    wait_replica_matches(env, env.west, name)
    try:
        west.kill()
        env.east.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[WEST])
        env.east.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    finally:
        if not west.alive():
            west.start()
    wait_until(lambda: replica_gone(env.west, name), CATCH_UP_TIMEOUT,
               f"the replica of the deleted primary {name} to be deleted",
               lambda: f"replica: {env.west.describe_secret(SecretId=name)}")
