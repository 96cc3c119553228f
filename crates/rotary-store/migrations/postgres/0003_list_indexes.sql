-- ListSecrets pages in the query: one index per sort order, so that a page costs the same
-- with 100 or 100,000 secrets (keyset pagination on (sort key, uid)).
CREATE INDEX secrets_by_created ON secrets (namespace, created_ms, uid);
CREATE INDEX secrets_by_changed ON secrets (namespace, last_changed_ms, uid);
CREATE INDEX secrets_by_accessed ON secrets (namespace, (COALESCE(last_accessed_ms, -1)), uid);
CREATE INDEX secrets_by_name_uid ON secrets (namespace, name, uid);

-- Tag keys and values from the JSON document (`doc.tags`, a list of [key, value] pairs),
-- so that a tag-key filter is served by an index. The store writes them with the document
-- in the same transaction (no triggers: fewer SQL features asked of the database).
CREATE TABLE secret_tags (
    secret_uid TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL
);
CREATE INDEX secret_tags_by_key ON secret_tags (key, secret_uid);
CREATE INDEX secret_tags_by_secret ON secret_tags (secret_uid);
