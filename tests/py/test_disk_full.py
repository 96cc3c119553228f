"""A full disk: writes fail with a clear error and change nothing, reads
keep working, and the server recovers by itself when space returns. The data directory is a
small tmpfs (the suite runs as root)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

import rotary_testlib as lib

FULL = "The server's storage is full: the change was not made."
READ_ONLY = "The server's storage is read-only: the change was not made."


def assert_refused_by_store(srv, response: dict, message: str) -> None:
    """`response` (a ClientError's) is the store's refusal: InternalServiceError starting
    with `message`, and the server's error line carries the request id the client got, so the
    two can be matched."""
    assert response["Error"]["Code"] == "InternalServiceError", response
    assert response["Error"]["Message"].startswith(message), response
    rid = response["ResponseMetadata"]["RequestId"]
    lines = [ln for ln in srv.log_tail(400).splitlines() if rid in ln]
    assert any("refused by the store" in ln for ln in lines), srv.log_tail(20)


def assert_write_refused(srv, message: str, call, **kwargs) -> None:
    """`call(**kwargs)` fails with the store's refusal `message`."""
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert_refused_by_store(srv, e.value.response, message)


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs that becomes the data directory of a server based in tmp_path/srv
    (its log stays outside)."""
    mnt = tmp_path / "srv" / "data"
    mnt.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"mounting a tmpfs failed (the suite runs as root): {r.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_refuses_writes_keeps_reads_and_recovers(small_disk):
    srv = lib.Server(small_disk.parent, name="full")
    srv.start()
    try:
        sm = srv.client()
        sm.create_secret(Name="kept", SecretString="before the disk filled")
        # Leave no room: a filler takes what is free, less a little.
        st = os.statvfs(small_disk)
        filler = small_disk / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 64 * 1024))
        errors, created, refused = [], [], []
        for i in range(400):
            name = f"fill-{i}"
            try:
                sm.create_secret(Name=name, SecretString=uuid.uuid4().hex * 400)
                created.append(name)
            except ClientError as e:
                errors.append(e.response)
                refused.append(name)
                if len(errors) >= 3:
                    break
            except Exception as e:  # noqa: BLE001 - the server must answer, not drop
                raise AssertionError(f"no answer while the disk filled:\n{srv.log_tail()}") from e
        assert errors, "the disk never filled"
        assert_refused_by_store(srv, errors[-1], FULL)
        # A refused write changed nothing.
        assert_write_refused(srv, FULL, sm.put_secret_value, SecretId="kept",
                             SecretString="while full")
        # Reads keep working, the refused writes are not visible.
        assert sm.get_secret_value(SecretId="kept")["SecretString"] == "before the disk filled"
        for name in created[:5]:
            sm.describe_secret(SecretId=name)
        for name in refused:
            with pytest.raises(ClientError) as e:
                sm.describe_secret(SecretId=name)
            assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert len(lib.list_all_versions(sm, "kept")) == 1

        # Space returns: writes work again, with no restart.
        filler.unlink()
        sm.put_secret_value(SecretId="kept", SecretString="after the disk emptied")
        assert sm.get_secret_value(SecretId="kept")["SecretString"] == "after the disk emptied"
        sm.create_secret(Name="after", SecretString="v")
        assert srv.alive()
    finally:
        srv.stop()
    with sqlite3.connect(srv.data_dir / "rotary.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
