"""Replication to a peer region served over TLS: the primary trusts the peer's private CA
through `ca_file` in its `[[regions]]` entry; without it, the peer's certificate is refused and
the replica's status says so, and nothing reaches the peer.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from rotary_testlib import ACCESS_KEY, SECRET_KEY, Server, unique_name
from test_tls import make_ca, make_server_cert


def _client(url: str, region: str, verify=None):
    return boto3.session.Session().client(
        "secretsmanager", endpoint_url=url, region_name=region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, verify=verify,
    )


def _wait_status(sm, name: str, want: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = sm.describe_secret(SecretId=name)["ReplicationStatus"][0]
        if last["Status"] == want:
            return last
        time.sleep(0.1)
    raise AssertionError(f"status never became {want}: {last}")


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    base = tmp_path_factory.mktemp("repl-tls")
    pki = base / "pki"
    pki.mkdir()
    ca = make_ca(pki)
    cert, key = make_server_cert(pki, "peer", "rotary-peer")
    peer = Server(base / "peer", "peer", region="eu-west-1",
                  args=["--tls-cert", str(cert), "--tls-key", str(key)],
                  ca_bundle=str(ca)).start()
    servers = [peer]
    try:
        def primary(name: str, ca_file: str | None) -> Server:
            d = base / name
            d.mkdir()
            conf = d / "rotary.toml"
            conf.write_text(
                "[[regions]]\n"
                'name = "eu-west-1"\n'
                f'endpoint = "{peer.url}"\n'
                'credentials_secret = "rotary/replication/eu-west-1"\n'
                + (f'ca_file = "{ca_file}"\n' if ca_file else "")
            )
            srv = Server(d, name, region="us-east-1", args=["--config", str(conf)]).start()
            servers.append(srv)
            _client(srv.url, "us-east-1").create_secret(
                Name="rotary/replication/eu-west-1",
                SecretString=json.dumps({"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}))
            return srv

        yield {
            "peer": peer,
            "ca": str(ca),
            "trusting": primary("trusting", str(ca)),
            "untrusting": primary("untrusting", None),
        }
    finally:
        for s in servers:
            s.stop()


def test_a_peer_served_over_tls_gets_replicas_when_its_ca_is_trusted(regions):
    name = unique_name("tls-repl")
    sm = _client(regions["trusting"].url, "us-east-1")
    sm.create_secret(Name=name, SecretString="over-tls-value",
                     AddReplicaRegions=[{"Region": "eu-west-1"}])
    _wait_status(sm, name, "InSync")
    peer = _client(regions["peer"].url, "eu-west-1", verify=regions["ca"])
    got = peer.get_secret_value(SecretId=name)
    assert got["SecretString"] == "over-tls-value"
    assert got["ARN"].startswith("arn:aws:secretsmanager:eu-west-1:")
    shown = peer.describe_secret(SecretId=name)
    assert shown["PrimaryRegion"] == "us-east-1"
    # The replica was read: the next change sent there brings its LastAccessedDate back.
    sm.tag_resource(SecretId=name, Tags=[{"Key": "after-read", "Value": "1"}])

    def synced_with_access():
        st = sm.describe_secret(SecretId=name)["ReplicationStatus"][0]
        return st if st["Status"] == "InSync" and "LastAccessedDate" in st else None

    deadline = time.monotonic() + 20
    st = None
    while time.monotonic() < deadline and not (st := synced_with_access()):
        time.sleep(0.1)
    assert st, sm.describe_secret(SecretId=name)["ReplicationStatus"]
    assert st["LastAccessedDate"] == shown["LastAccessedDate"]


def test_a_peer_certificate_from_an_untrusted_ca_is_refused(regions):
    name = unique_name("tls-untrusted")
    sm = _client(regions["untrusting"].url, "us-east-1")
    sm.create_secret(Name=name, SecretString="never-sent",
                     AddReplicaRegions=[{"Region": "eu-west-1"}])
    st = _wait_status(sm, name, "Failed")
    assert "could not be reached" in st["StatusMessage"], st
    assert "certificate" in st["StatusMessage"].lower(), st
    peer = _client(regions["peer"].url, "eu-west-1", verify=regions["ca"])
    with pytest.raises(peer.exceptions.ResourceNotFoundException):
        peer.describe_secret(SecretId=name)
