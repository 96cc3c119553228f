"""Schema versions: a binary older than its data refuses it instead of running on a schema it
does not know (migrations are forward-only)."""

from __future__ import annotations

import sqlite3
import subprocess

import rotary_testlib as lib


def test_data_written_by_a_newer_rotary_is_refused_with_exit_2(tmp_path):
    srv = lib.Server(tmp_path / "s")
    srv.start()
    sm = srv.client()
    sm.create_secret(Name="kept", SecretString="v1")
    srv.stop()

    db = srv.data_dir / "rotary.db"
    with sqlite3.connect(db) as conn:
        (known,) = conn.execute("SELECT MAX(version) FROM _sqlx_migrations").fetchone()
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, "
            "execution_time) VALUES (?, 'from a newer release', 1, x'00', 0)",
            (known + 100,),
        )
    r = subprocess.run(
        [lib.ROTARY_BIN, "serve", "--data-dir", str(srv.data_dir),
         "--listen", f"127.0.0.1:{lib.free_port()}"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ROTARY_ROOT_ACCESS_KEY_ID": lib.ACCESS_KEY,
             "ROTARY_ROOT_SECRET_ACCESS_KEY": lib.SECRET_KEY},
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"schema is at version {known + 100}" in r.stderr, r.stderr
    assert "newer Rotary" in r.stderr, r.stderr

    # Nothing was changed: once the newer migration is gone, the data serves again.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM _sqlx_migrations WHERE version = ?", (known + 100,))
    srv.start()
    assert srv.client().get_secret_value(SecretId="kept")["SecretString"] == "v1"
    srv.stop()
