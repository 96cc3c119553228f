"""Graceful shutdown: on SIGTERM the server stops accepting connections, lets the requests in
flight finish, closes idle connections at once, and exits 0; a request still unfinished after
the grace period (10 s) is dropped and the server exits anyway.

The request in flight is a CreateSecret whose body the client is still uploading when the
signal arrives: its headers are in, the server is waiting for the rest."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time

import pytest

import rotary_testlib as lib

GRACE = 10.0


def start_upload(srv, name: str, value: str):
    """A CreateSecret sent up to the middle of its body; returns (connection, rest of body)."""
    headers, body = lib.signed_request(srv.url, "CreateSecret",
                                       {"Name": name, "SecretString": value,
                                        "ClientRequestToken": lib.new_token()})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=GRACE + 20)
    conn.putrequest("POST", "/", skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    if not any(k.lower() == "content-length" for k in headers):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    return conn, body[half:]


def idle_keep_alive(srv):
    """A connection that made one request and stays open."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    headers, body = lib.signed_request(srv.url, "ListSecrets", {})
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read()
    return conn


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # queued just before the listener closed
        pass
    return False


@pytest.fixture
def srv(tmp_path):
    s = lib.Server(tmp_path / "srv", name="shutdown")
    s.start()
    yield s
    s.kill()


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(srv):
    name = lib.unique_name("shutdown")
    idle = idle_keep_alive(srv)
    conn, rest = start_upload(srv, name, "sent across the shutdown")
    time.sleep(0.3)  # the server has the headers and waits for the body
    srv.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    # No new connections, while the one in flight stays open.
    deadline = t0 + 5
    while not refused(srv.port):
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.05)
    assert srv.alive()
    time.sleep(0.3)
    # The idle connection was closed without waiting for the grace period.
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, OSError)):
        headers, body = lib.signed_request(srv.url, "ListSecrets", {})
        idle.request("POST", "/", body=body, headers=headers)
        idle.getresponse().read()

    time.sleep(0.7)
    conn.send(rest)
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    assert resp.status == 200, answer
    assert answer["Name"] == name
    # Then the server exits, well before the grace period ends, with status 0.
    rc = srv.proc.wait(timeout=GRACE)
    assert rc == 0, srv.log_tail(20)
    assert time.monotonic() - t0 < GRACE - 2, "waited for the grace period with nothing in flight"
    assert "Rotary stopped" in srv.log_tail(5)

    # The acknowledged write is there after a restart.
    srv.start()
    got = srv.client().get_secret_value(SecretId=name)
    assert got["SecretString"] == "sent across the shutdown"
    assert got["VersionId"] == answer["VersionId"]


def test_a_request_unfinished_at_the_end_of_the_grace_period_is_dropped(srv):
    name = lib.unique_name("stalled")
    conn, _rest = start_upload(srv, name, "never finished")
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(timeout=GRACE + 10)
    took = time.monotonic() - t0
    assert rc == 0, srv.log_tail(20)
    # It waited for the request during the grace period, then no longer.
    assert GRACE - 1 <= took <= GRACE + 5, took
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, OSError)):
        conn.getresponse()
    # The unfinished request changed nothing.
    srv.start()
    with pytest.raises(Exception) as e:
        srv.client().describe_secret(SecretId=name)
    assert "ResourceNotFoundException" in str(e.value)
