"""Issue #9: TLS with rustls. `--tls-cert`/`--tls-key` (PEM) serve HTTPS with HTTP/1.1 and
HTTP/2 by ALPN; the pair is reloaded on SIGHUP (a bad new pair is logged and the old one kept);
plain HTTP on a non-loopback address is warned about loudly.

Certificates are made in the test with the `openssl` CLI: a throwaway CA and server
certificates for 127.0.0.1 signed by it. Clients: boto3 (`verify=ca.pem`), the aws CLI
(`AWS_CA_BUNDLE`) and Python's ssl module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from rotary_testlib import ACCESS_KEY, REGION, ROTARY_BIN, SECRET_KEY, Server, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path) -> Path:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rotary Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    return d / "ca.pem"


def make_server_cert(d: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost with common name `cn`, signed by d/ca."""
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d,
    )
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d,
    )
    return d / f"{name}.pem", d / f"{name}.key"


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca = make_ca(d)
    cert, key = make_server_cert(d, "first", "rotary-first")
    # The files the server is pointed at; tests overwrite them before a SIGHUP.
    live_cert, live_key = d / "live.pem", d / "live.key"
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    return {"dir": d, "ca": ca, "cert": live_cert, "key": live_key}


@pytest.fixture
def tls_server(tmp_path, pki):
    srv = Server(
        tmp_path / "tls", name="tls",
        args=["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])],
        ca_bundle=str(pki["ca"]),
    )
    srv.start()
    yield srv
    srv.stop()


def boto_client(url: str, verify):
    return boto3.session.Session().client(
        "secretsmanager", endpoint_url=url, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, verify=verify,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def peer_cn(port: int, ca: Path, alpn: list[str] | None = None) -> tuple[str, str | None]:
    """(common name of the server certificate, ALPN protocol) of a new TLS connection."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            cert = s.getpeercert()
            cn = dict(x[0] for x in cert["subject"])["commonName"]
            return cn, s.selected_alpn_protocol()


def test_boto3_and_the_aws_cli_over_tls(tls_server, pki, tmp_path):
    assert tls_server.url.startswith("https://")
    sm = boto_client(tls_server.url, str(pki["ca"]))
    sm.create_secret(Name="tls-secret", SecretString="over-tls")
    assert sm.get_secret_value(SecretId="tls-secret")["SecretString"] == "over-tls"

    # Without the CA the certificate is refused.
    with pytest.raises(SSLError):
        boto_client(tls_server.url, True).list_secrets()

    home = tmp_path / "awscli-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "creds"),
        AWS_CA_BUNDLE=str(pki["ca"]), AWS_MAX_ATTEMPTS="1", AWS_PAGER="", HOME=str(home),
    )
    p = subprocess.run(
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", "tls-secret",
         "--endpoint-url", tls_server.url, "--region", REGION, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["SecretString"] == "over-tls"


def test_plain_http_to_the_tls_port_gets_no_api(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert not data.startswith(b"HTTP/1.1 200")


def test_alpn_offers_h2_and_http11(tls_server, pki):
    assert peer_cn(tls_server.port, pki["ca"], ["h2", "http/1.1"]) == ("rotary-first", "h2")
    assert peer_cn(tls_server.port, pki["ca"], ["http/1.1"]) == ("rotary-first", "http/1.1")
    assert peer_cn(tls_server.port, pki["ca"]) == ("rotary-first", None)


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_sighup_reloads_the_certificate_and_keeps_it_on_errors(tls_server, pki):
    d = pki["dir"]
    assert peer_cn(tls_server.port, pki["ca"])[0] == "rotary-first"
    cert2, key2 = make_server_cert(d, "second", "rotary-second")
    shutil.copy(cert2, pki["cert"])
    shutil.copy(key2, pki["key"])
    tls_server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: peer_cn(tls_server.port, pki["ca"])[0] == "rotary-second"), (
        tls_server.log_tail()
    )
    assert "Reloaded the TLS certificate and key" in tls_server.log_path.read_text()

    # A broken pair is refused: logged, and the previous certificate stays in use.
    pki["cert"].write_text("not a certificate\n")
    tls_server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "Reloading the TLS certificate and key failed"
                    in tls_server.log_path.read_text()), tls_server.log_tail()
    assert tls_server.alive()
    assert peer_cn(tls_server.port, pki["ca"])[0] == "rotary-second"
    boto_client(tls_server.url, str(pki["ca"])).list_secrets()
    # No key material in the log.
    log = tls_server.log_path.read_text()
    assert "PRIVATE KEY" not in log


def test_tls_needs_both_files(tmp_path, pki):
    p = subprocess.run(
        [ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--listen",
         f"127.0.0.1:{free_port()}", "--tls-cert", str(pki["cert"])],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "ROTARY_ROOT_ACCESS_KEY_ID": ACCESS_KEY,
             "ROTARY_ROOT_SECRET_ACCESS_KEY": SECRET_KEY},
    )
    assert p.returncode != 0
    assert "--tls-cert and --tls-key go together" in p.stderr


def test_plain_http_on_a_public_address_is_warned_about(tmp_path):
    log = tmp_path / "public.log"
    port = free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--listen",
             f"0.0.0.0:{port}"],
            stdout=fh, stderr=fh, stdin=subprocess.DEVNULL,
            env={**os.environ, "ROTARY_ROOT_ACCESS_KEY_ID": ACCESS_KEY,
                 "ROTARY_ROOT_SECRET_ACCESS_KEY": SECRET_KEY},
        )
    try:
        assert wait_for(lambda: "SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS"
                        in log.read_text(errors="replace"), timeout=20), log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
