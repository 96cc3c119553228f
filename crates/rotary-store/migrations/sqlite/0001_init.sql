-- Server-wide values: wrapped KMS keys, wrapped credentials, settings.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

-- One row per secret. `doc` holds the metadata that is not searched by SQL (JSON);
-- `revision` gives optimistic concurrency to read-modify-write operations.
CREATE TABLE secrets (
    uid              TEXT PRIMARY KEY NOT NULL,
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    arn              TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    last_changed_ms  INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    deleted_ms       INTEGER,
    revision         INTEGER NOT NULL,
    doc              TEXT NOT NULL
);
CREATE UNIQUE INDEX secrets_by_name ON secrets (namespace, name);
CREATE UNIQUE INDEX secrets_by_arn ON secrets (arn);
CREATE INDEX secrets_by_deletion ON secrets (deleted_ms) WHERE deleted_ms IS NOT NULL;

-- Versions. `ciphertext` is NULL for a version created without a value (the AWSPENDING
-- placeholder of a rotation); it is never plaintext.
CREATE TABLE versions (
    secret_uid       TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
    version_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    created_ms       INTEGER NOT NULL,
    last_accessed_ms INTEGER,
    stages           TEXT NOT NULL,
    kms_key_id       TEXT,
    ciphertext       BLOB,
    PRIMARY KEY (secret_uid, version_id)
);
