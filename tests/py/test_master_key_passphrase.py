"""Passphrase-sealed master key: `rotary master-key seal`, `unseal`,
`unseal-test`, and `rotary serve` opening a sealed key with a passphrase from a file, the
environment or the TOML config, refusing (exit 2) without one or with a wrong one. The
passphrase never shows in output or logs, and the sealed file never holds the key in clear."""

from __future__ import annotations

import base64
import os
import stat
import subprocess

import pytest

import rotary_testlib as lib

PASSPHRASE = "pw-canary-7f3a9c correct horse battery"
WRONG = "not-the-passphrase-1234"
N_SECRETS = 5
MAGIC = b"rotary-sealed-master-key v1\n"
# Variables of the developer's shell that would change what these tests check.
SCRUBBED = (
    "ROTARY_MASTER_KEY_PASSPHRASE",
    "ROTARY_MASTER_KEY_PASSPHRASE_FILE",
    "ROTARY_MASTER_KEY_FILE",
    "ROTARY_DATA_DIR",
    "ROTARY_CONFIG",
)


def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(extra or {})
    return env


def rotary(*args, env: dict | None = None, timeout=120):
    """Runs a `rotary` command with no terminal (so it never prompts)."""
    return subprocess.run(
        [lib.ROTARY_BIN, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=clean_env(env),
    )


def write_secret_file(path, text: str):
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def no_passphrase_in(*texts):
    for t in texts:
        assert PASSPHRASE not in t, "the passphrase leaked"
        assert WRONG not in t, "the (wrong) passphrase leaked"


def serve_expect_exit(srv: lib.Server, args=(), env: dict | None = None):
    """Runs `rotary serve` on srv's data dir, expecting it to refuse to start."""
    r = subprocess.run(
        [
            lib.ROTARY_BIN, "serve",
            "--data-dir", str(srv.data_dir),
            "--listen", f"127.0.0.1:{lib.free_port()}",
            "--region", lib.REGION,
            "--account-id", lib.ACCOUNT,
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=clean_env(
            {
                "ROTARY_ROOT_ACCESS_KEY_ID": lib.ACCESS_KEY,
                "ROTARY_ROOT_SECRET_ACCESS_KEY": lib.SECRET_KEY,
                **(env or {}),
            }
        ),
    )
    no_passphrase_in(r.stdout, r.stderr)
    return r


def read_all(srv: lib.Server, expected: dict):
    sm = srv.client()
    for name, value in expected.items():
        r = sm.get_secret_value(SecretId=name)
        got = r.get("SecretString", r.get("SecretBinary"))
        assert got == value, name


def start_and_check(tmp_path, expected, name, args=(), env=None) -> lib.Server:
    srv = lib.Server(tmp_path / "node", name=name, env=env, args=list(args))
    srv.start(timeout=60)
    try:
        read_all(srv, expected)
    finally:
        srv.stop()
    log = srv.log_path.read_text(errors="replace")
    no_passphrase_in(log)
    return srv


@pytest.fixture
def data(tmp_path):
    """A data directory with secrets (server stopped); returns (server, expected values,
    plain key bytes, passphrase file)."""
    srv = lib.Server(tmp_path / "node", name="first")
    srv.start()
    sm = srv.client()
    expected = {}
    for i in range(N_SECRETS):
        name = lib.unique_name(f"mkp{i}")
        if i % 2:
            value = os.urandom(24)
            sm.create_secret(Name=name, SecretBinary=value)
        else:
            value = f"value-{i}-{os.urandom(8).hex()}"
            sm.create_secret(Name=name, SecretString=value)
        expected[name] = value
    srv.stop()
    key_file = srv.data_dir / "master.key"
    plain = key_file.read_bytes()
    assert len(plain) == 32
    pass_file = write_secret_file(tmp_path / "passphrase", PASSPHRASE + "\n")
    return srv, expected, plain, pass_file


def seal(srv, pass_file):
    r = rotary(
        "master-key", "seal",
        "--key-file", srv.data_dir / "master.key",
        "--master-key-passphrase-file", pass_file,
    )
    no_passphrase_in(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    return r


def assert_sealed_without_plain_key(key_file, plain: bytes):
    sealed = key_file.read_bytes()
    assert sealed.startswith(MAGIC), sealed[:40]
    for form in (plain, base64.b64encode(plain), plain.hex().encode()):
        assert form not in sealed
    assert PASSPHRASE.encode() not in sealed
    assert mode(key_file) == 0o600


def test_seal_then_serve_with_passphrase_file_env_and_config(tmp_path, data):
    srv, expected, plain, pass_file = data
    key_file = srv.data_dir / "master.key"
    r = seal(srv, pass_file)
    assert "Sealed the master key" in r.stdout
    assert_sealed_without_plain_key(key_file, plain)
    assert not (srv.data_dir / "master.key.tmp").exists()

    # Passphrase from a file (flag), from the environment, and from the TOML config.
    start_and_check(tmp_path, expected, "by-file", args=["--master-key-passphrase-file", pass_file])
    start_and_check(tmp_path, expected, "by-env", env={"ROTARY_MASTER_KEY_PASSPHRASE": PASSPHRASE})
    config = tmp_path / "rotary.toml"
    config.write_text(f'master_key_passphrase_file = "{pass_file}"\n')
    start_and_check(tmp_path, expected, "by-config", args=["--config", config])
    # Starting changed nothing in the key file.
    assert_sealed_without_plain_key(key_file, plain)


def test_sealed_key_without_passphrase_refused(tmp_path, data):
    srv, _, plain, pass_file = data
    seal(srv, pass_file)
    r = serve_expect_exit(srv)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "sealed with a passphrase and none was given" in r.stderr, r.stderr
    assert str(srv.data_dir / "master.key") in r.stderr
    # Nothing was created or changed.
    assert_sealed_without_plain_key(srv.data_dir / "master.key", plain)


def test_sealed_key_wrong_passphrase_refused(tmp_path, data):
    srv, _, plain, pass_file = data
    seal(srv, pass_file)
    wrong_file = write_secret_file(tmp_path / "wrong", WRONG + "\n")
    for args, env in (
        (["--master-key-passphrase-file", wrong_file], None),
        ([], {"ROTARY_MASTER_KEY_PASSPHRASE": WRONG}),
    ):
        r = serve_expect_exit(srv, args=args, env=env)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "the passphrase does not open the sealed master key" in r.stderr, r.stderr
    assert_sealed_without_plain_key(srv.data_dir / "master.key", plain)


def test_passphrase_file_readable_by_others_refused(tmp_path, data):
    srv, _, _, pass_file = data
    seal(srv, pass_file)
    os.chmod(pass_file, 0o644)
    r = serve_expect_exit(srv, args=["--master-key-passphrase-file", pass_file])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "chmod 600" in r.stderr, r.stderr


def test_unseal_test_exit_codes(tmp_path, data):
    srv, _, _, pass_file = data
    key_file = srv.data_dir / "master.key"
    # A plain key file has nothing to test.
    r = rotary("master-key", "unseal-test", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    assert r.returncode == 2 and "is not sealed" in r.stderr, r.stderr
    seal(srv, pass_file)
    wrong_file = write_secret_file(tmp_path / "wrong", WRONG)
    cases = [
        (["--master-key-passphrase-file", pass_file], None, 0),
        ([], {"ROTARY_MASTER_KEY_PASSPHRASE": PASSPHRASE}, 0),
        ([], {"ROTARY_MASTER_KEY_PASSPHRASE_FILE": str(pass_file)}, 0),
        (["--master-key-passphrase-file", wrong_file], None, 2),
        ([], {"ROTARY_MASTER_KEY_PASSPHRASE": WRONG}, 2),
        ([], None, 2),  # no passphrase, no terminal
    ]
    for args, env, rc in cases:
        r = rotary("master-key", "unseal-test", "--key-file", key_file, *args, env=env)
        no_passphrase_in(r.stdout, r.stderr)
        assert r.returncode == rc, (args, env and list(env), r.returncode, r.stderr)
        if rc == 0:
            assert "The passphrase opens the sealed master key" in r.stdout
        elif args or env:
            assert "the passphrase does not open" in r.stderr, r.stderr
        else:
            assert "no passphrase given" in r.stderr, r.stderr
    # A tampered file: refused like a wrong passphrase.
    text = key_file.read_text().replace("iterations: 3\n", "iterations: 4\n")
    key_file.write_text(text)
    r = rotary("master-key", "unseal-test", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    assert r.returncode == 2, r.stderr


def test_seal_refuses_twice_and_short_passphrase(tmp_path, data):
    srv, _, plain, pass_file = data
    key_file = srv.data_dir / "master.key"
    short = write_secret_file(tmp_path / "short", "abc\n")
    r = rotary("master-key", "seal", "--key-file", key_file, "--master-key-passphrase-file", short)
    assert r.returncode == 2 and "at least 8 characters" in r.stderr, r.stderr
    assert key_file.read_bytes() == plain
    seal(srv, pass_file)
    r = rotary("master-key", "seal", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    assert r.returncode == 2 and "already sealed" in r.stderr, r.stderr


def test_unseal_back_to_plain_and_serve_without_passphrase(tmp_path, data):
    srv, expected, plain, pass_file = data
    key_file = srv.data_dir / "master.key"
    seal(srv, pass_file)
    r = rotary("master-key", "unseal", "--key-file", key_file,
               env={"ROTARY_MASTER_KEY_PASSPHRASE": WRONG})
    assert r.returncode == 2, r.stderr
    assert key_file.read_bytes().startswith(MAGIC)
    r = rotary("master-key", "unseal", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    no_passphrase_in(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    assert key_file.read_bytes() == plain
    assert mode(key_file) == 0o600
    start_and_check(tmp_path, expected, "plain-again")


@pytest.mark.skipif(
    os.environ.get("ROTARY_TEST_STORE") == "postgres",
    reason="`rotary master-key rotate` works on the SQLite store of a data directory",
)
def test_rotate_keeps_sealed_key_sealed(tmp_path, data):
    srv, expected, plain, pass_file = data
    key_file = srv.data_dir / "master.key"
    seal(srv, pass_file)
    r = rotary("master-key", "rotate", "--data-dir", srv.data_dir)
    assert r.returncode == 2 and "none was given" in r.stderr, r.stderr
    r = rotary("master-key", "rotate", "--data-dir", srv.data_dir,
               "--master-key-passphrase-file", pass_file)
    no_passphrase_in(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    assert "sealed with the same passphrase" in r.stdout
    assert_sealed_without_plain_key(key_file, plain)
    old = srv.data_dir / "master.key.old"
    assert old.read_bytes().startswith(MAGIC)
    start_and_check(tmp_path, expected, "rotated",
                    env={"ROTARY_MASTER_KEY_PASSPHRASE": PASSPHRASE})
    # The new key is a different key: unsealed, it is not the original.
    r = rotary("master-key", "unseal", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    assert r.returncode == 0, r.stderr
    assert len(key_file.read_bytes()) == 32 and key_file.read_bytes() != plain


def test_first_start_with_passphrase_creates_sealed_key(tmp_path):
    pass_file = write_secret_file(tmp_path / "passphrase", PASSPHRASE + "\n")
    srv = lib.Server(tmp_path / "fresh", name="fresh",
                     args=["--master-key-passphrase-file", str(pass_file)])
    srv.start(timeout=60)
    try:
        name = lib.unique_name("mkpfresh")
        srv.client().create_secret(Name=name, SecretString="fresh-value")
    finally:
        srv.stop()
    key_file = srv.data_dir / "master.key"
    assert key_file.read_bytes().startswith(MAGIC)
    assert mode(key_file) == 0o600
    no_passphrase_in(srv.log_path.read_text(errors="replace"))
    r = serve_expect_exit(srv)
    assert r.returncode == 2 and "none was given" in r.stderr, r.stderr
    r = rotary("master-key", "unseal-test", "--key-file", key_file,
               "--master-key-passphrase-file", pass_file)
    assert r.returncode == 0, r.stderr
