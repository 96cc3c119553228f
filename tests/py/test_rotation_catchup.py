"""Rotations whose window passed while the server was down run at start-up, marked late.

The test clock's offset is kept across restarts, and `--test-clock-skip-seconds` moves it
forward at start-up, as if the server had been down that long.
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "rotation_fixtures"))

import rotary_testlib as lib  # noqa: E402
import rotlib  # noqa: E402


def test_missed_window_runs_at_startup_and_is_recorded_late(tmp_path):
    srv = lib.Server(tmp_path / "s", env={"ROTARY_TEST_CLOCK": "true"})
    srv.start()
    try:
        sm = srv.client()
        rot = rotlib.Rotary(srv)
        sm.create_secret(Name="late/app", SecretString='{"username":"u","password":"p0-initial"}')
        sm.rotate_secret(
            SecretId="late/app",
            RotationLambdaARN=rotlib.GENERIC,
            RotationRules={"AutomaticallyAfterDays": 1},
            RotateImmediately=False,
        )
        # The test rotation (testSecret on a copy) finishes first.
        rot.wait_history("late/app", lambda recs: any(r["Outcome"] == "Succeeded" for r in recs),
                         what="the test rotation")
        before = sm.describe_secret(SecretId="late/app")
        current_before = rotlib.current_of(before["VersionIdsToStages"])

        # Down for three days: the window (tomorrow) passes while nobody runs it.
        srv.kill()
        srv.extra_env["ROTARY_TEST_CLOCK_SKIP_SECONDS"] = str(3 * 86400)
        srv.start()
        sm = srv.client()

        recs = rot.wait_history(
            "late/app",
            lambda recs: any(r["Trigger"] == "schedule" and r["Outcome"] == "Succeeded"
                             for r in recs),
            what="the missed scheduled rotation",
        )
        sched = [r for r in recs if r["Trigger"] == "schedule"]
        assert len(sched) == 1
        assert sched[0]["Late"] is True
        after = sm.describe_secret(SecretId="late/app")
        stages = after["VersionIdsToStages"]
        assert stages[current_before] == ["AWSPREVIOUS"]
        assert stages[sched[0]["Token"]] == ["AWSCURRENT"]
        # The next window is planned from the (moved) clock, in the future.
        assert rotlib.as_epoch(after["NextRotationDate"]) > rotlib.as_epoch(after["LastRotatedDate"])
    finally:
        srv.stop()


def test_skip_needs_the_test_clock(tmp_path):
    env = dict(os.environ, ROTARY_TEST_CLOCK_SKIP_SECONDS="60")
    r = subprocess.run([lib.ROTARY_BIN, "serve", "--data-dir", str(tmp_path / "data")],
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 2
    assert b"--test-clock-skip-seconds needs --test-clock" in r.stderr
