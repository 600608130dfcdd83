-- Grants on keys; constraint pairs in their own table.
CREATE TABLE grants (
    grant_id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    operations TEXT NOT NULL,
    has_equals INTEGER NOT NULL,
    has_subset INTEGER NOT NULL,
    issuing_account TEXT NOT NULL,
    created INTEGER NOT NULL
) STRICT;
CREATE INDEX grants_by_key ON grants (account, region, key_id, created);
CREATE INDEX grants_by_retiring ON grants (retiring_principal);
CREATE TABLE grant_constraints (
    grant_id TEXT NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    pair_key TEXT NOT NULL,
    pair_value TEXT NOT NULL,
    PRIMARY KEY (grant_id, kind, pair_key)
) STRICT;
