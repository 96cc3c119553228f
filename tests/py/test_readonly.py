"""A read-only data directory: writes fail with a clear error and change nothing, reads keep
working, and the server takes writes again once the directory is writable.

A file system cannot be remounted read-only while a process has files open on it for writing
(the kernel answers "busy"), so two other ways make the data directory read-only under a
running server:

- the kernel's own: an ext4 file system mounted with `errors=remount-ro` (the usual default)
  whose error trigger is pulled turns read-only at once. It stays so until it is unmounted,
  checked and mounted again, which needs the server stopped: the test restarts on it then.
- strace attached to the server fails every change the process makes to the store's files
  with EROFS, as a read-only file system does, and detaching gives the files back without
  a restart.

The suite runs as root (loop mounts, sysfs, ptrace)."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import rotary_testlib as lib
from test_disk_full import READ_ONLY, assert_write_refused

# The system calls that change a file's contents, size or times.
CHANGES = "pwrite64,pwritev,pwritev2,write,writev,ftruncate,fallocate,fsync,fdatasync,utimensat"


def seed(sm, prefix: str) -> list[str]:
    """A few secrets, one with a second version, tags and a description."""
    names = [f"{prefix}/s{i}" for i in range(4)]
    for i, name in enumerate(names):
        sm.create_secret(Name=name, SecretString=f"value-{i}", Description=f"d{i}",
                         Tags=[{"Key": "team", "Value": "ops"}])
    sm.put_secret_value(SecretId=names[0], SecretString="value-0-v2")
    return names


def assert_writes_refused(srv, sm, names: list[str], prefix: str) -> list[str]:
    """Every kind of write is refused with the read-only message; returns the names of the
    secrets whose creation was refused."""
    refused = [f"{prefix}/new-{i}" for i in range(2)]
    for name in refused:
        assert_write_refused(srv, READ_ONLY, sm.create_secret, Name=name, SecretString="x")
    assert_write_refused(srv, READ_ONLY, sm.put_secret_value, SecretId=names[0],
                         SecretString="while read-only")
    assert_write_refused(srv, READ_ONLY, sm.update_secret, SecretId=names[1],
                         Description="while read-only")
    assert_write_refused(srv, READ_ONLY, sm.tag_resource, SecretId=names[2],
                         Tags=[{"Key": "k", "Value": "v"}])
    assert_write_refused(srv, READ_ONLY, sm.delete_secret, SecretId=names[3],
                         RecoveryWindowInDays=7)
    return refused


def assert_reads_unchanged(sm, names, before: dict, refused: list[str]) -> None:
    for name in names:
        assert lib.snapshot(sm, name) == before[name], name
    assert sm.get_secret_value(SecretId=names[0])["SecretString"] == "value-0-v2"
    got = sm.batch_get_secret_value(SecretIdList=names)["SecretValues"]
    assert sorted(v["Name"] for v in got) == sorted(names)
    listed = {s["Name"] for s in sm.list_secrets(MaxResults=100)["SecretList"]}
    assert set(names) <= listed
    for name in refused:
        assert name not in listed
        with pytest.raises(ClientError) as e:
            sm.describe_secret(SecretId=name)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def integrity_ok(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


class Ext4Image:
    """A 32 MiB ext4 image file, mounted with errors=remount-ro on a loop device."""

    def __init__(self, img: Path, mnt: Path):
        self.img, self.mnt = img, mnt
        self.devices: list[str] = []
        with open(img, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)

    def mount(self) -> str:
        """Mounts the image on a loop device of its own and returns the device's name. A new
        device each time: the kernel keeps the file system of the previous one (and its
        read-only state) while anything still refers to it, e.g. a mount namespace copied by
        another process before the unmount."""
        r = subprocess.run(["losetup", "--find", "--show", str(self.img)], capture_output=True,
                           text=True)
        assert r.returncode == 0, f"no loop device (the suite runs as root): {r.stderr}"
        dev = r.stdout.strip()
        self.devices.append(dev)
        subprocess.run(["mount", "-o", "errors=remount-ro", dev, str(self.mnt)], check=True)
        return Path(dev).name

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.mnt)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.mnt)], check=False, capture_output=True)
        for dev in self.devices:
            subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@pytest.fixture
def ext4_data_dir(tmp_path):
    """The ext4 image, mounted as the data directory of a server based in tmp_path/srv (its
    log stays outside). Yields (image, loop device name)."""
    mnt = tmp_path / "srv" / "data"
    mnt.mkdir(parents=True)
    image = Ext4Image(tmp_path / "fs.img", mnt)
    try:
        dev = image.mount()
        os.chmod(mnt, 0o700)
        yield image, dev
    finally:
        image.close()


def test_file_system_turned_read_only_by_the_kernel(ext4_data_dir):
    image, dev = ext4_data_dir
    mnt = image.mnt
    srv = lib.Server(mnt.parent, name="ro-kernel")
    srv.start()
    try:
        sm = srv.client()
        names = seed(sm, "ro")
        before = {n: lib.snapshot(sm, n) for n in names}

        # What the kernel does on a file system error with errors=remount-ro.
        Path(f"/sys/fs/ext4/{dev}/trigger_fs_error").write_text("1")
        with pytest.raises(OSError) as e:
            (mnt / "probe").write_text("x")
        assert e.value.errno == errno.EROFS, e.value

        refused = assert_writes_refused(srv, sm, names, "ro")
        assert_reads_unchanged(sm, names, before, refused)
        assert srv.alive()
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, srv.log_tail(20)

    # The operator's repair: unmount, check, mount read-write, start again.
    image.unmount()
    r = subprocess.run(["e2fsck", "-fy", str(image.img)], capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stdout + r.stderr  # 1: errors were corrected
    image.mount()
    integrity_ok(mnt / "rotary.db")
    # The audit log may end with a record torn by the switch to read-only. The server cuts a
    # torn record it was never able to sync; if `verify` finds the log broken otherwise, the
    # operator keeps it as evidence and moves it aside, as docs/audit.md says. Only the last
    # record may be torn.
    r = subprocess.run([lib.ROTARY_BIN, "audit", "verify", "--data-dir", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        assert "incomplete record at the end of the file" in r.stdout + r.stderr, r
        for f in ("audit.log", "audit.head"):
            if (mnt / f).exists():
                (mnt / f).rename(mnt / f"{f}.evidence")
    srv.start()
    try:
        sm = srv.client()
        assert_reads_unchanged(sm, names, before, refused)
        sm.put_secret_value(SecretId=names[0], SecretString="after the repair")
        assert sm.get_secret_value(SecretId=names[0])["SecretString"] == "after the repair"
    finally:
        srv.stop()


def _traced_by(pid: int, tracer: int) -> bool:
    """Whether every thread of `pid` is traced by `tracer`."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue
        if f"TracerPid:\t{tracer}\n" not in status:
            return False
    return bool(tasks)


def test_read_only_store_files_then_writable_again_without_restart(tmp_path):
    srv = lib.Server(tmp_path / "srv", name="ro-strace")
    srv.start()
    try:
        sm = srv.client()
        names = seed(sm, "rw")
        before = {n: lib.snapshot(sm, n) for n in names}
        db = srv.data_dir / "rotary.db"
        paths = [a for f in ("", "-wal", "-shm", "-journal") for a in ("-P", f"{db}{f}")]
        strace = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(srv.proc.pid), *paths,
             "-e", f"trace={CHANGES}", "-e", f"inject={CHANGES}:error=EROFS"])
        try:
            deadline = time.monotonic() + 10
            while not _traced_by(srv.proc.pid, strace.pid):
                assert strace.poll() is None, "strace exited"
                assert time.monotonic() < deadline, "strace did not attach"
                time.sleep(0.05)
            refused = assert_writes_refused(srv, sm, names, "rw")
            assert_reads_unchanged(sm, names, before, refused)
        finally:
            strace.send_signal(signal.SIGINT)  # detaches
            strace.wait(timeout=10)

        # Writable again: the same process takes writes.
        assert srv.alive()
        sm.put_secret_value(SecretId=names[0], SecretString="writable again")
        assert sm.get_secret_value(SecretId=names[0])["SecretString"] == "writable again"
        sm.create_secret(Name="rw/new-0", SecretString="now")
        sm.delete_secret(SecretId=names[3], RecoveryWindowInDays=7)
        assert "DeletedDate" in sm.describe_secret(SecretId=names[3])
    finally:
        srv.stop()
    integrity_ok(srv.data_dir / "rotary.db")
