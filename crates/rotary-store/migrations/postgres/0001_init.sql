-- The same schema as SQLite's, in PostgreSQL's types. Every text that is compared or sorted
-- uses the "C" collation, so that orders and prefix ranges are byte orders, as in SQLite
-- and in Rust, whatever the database's default collation is.

-- Server-wide values: wrapped KMS keys, wrapped credentials, settings.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

-- One row per secret. `doc` holds the metadata that is not searched by SQL (JSON);
-- `revision` gives optimistic concurrency to read-modify-write operations.
CREATE TABLE secrets (
    uid              TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    namespace        TEXT COLLATE "C" NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    arn              TEXT COLLATE "C" NOT NULL,
    created_ms       BIGINT NOT NULL,
    last_changed_ms  BIGINT NOT NULL,
    last_accessed_ms BIGINT,
    deleted_ms       BIGINT,
    revision         BIGINT NOT NULL,
    doc              TEXT NOT NULL
);
CREATE UNIQUE INDEX secrets_by_name ON secrets (namespace, name);
CREATE UNIQUE INDEX secrets_by_arn ON secrets (arn);
CREATE INDEX secrets_by_deletion ON secrets (deleted_ms) WHERE deleted_ms IS NOT NULL;

-- Versions. `ciphertext` is NULL for a version created without a value (the AWSPENDING
-- placeholder of a rotation); it is never plaintext.
CREATE TABLE versions (
    secret_uid       TEXT COLLATE "C" NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
    version_id       TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL,
    last_accessed_ms BIGINT,
    stages           TEXT NOT NULL,
    kms_key_id       TEXT,
    ciphertext       BYTEA,
    PRIMARY KEY (secret_uid, version_id)
);
