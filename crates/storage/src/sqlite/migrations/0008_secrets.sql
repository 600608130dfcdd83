-- Secrets Manager: secrets, their tags, their versions (each value envelope-encrypted under a KMS key), and
-- the staging labels attached to versions.
--
-- A secret's value never reaches this file in plaintext: a version holds the KMS ciphertext of a data key
-- and the value sealed under that data key.

-- One row per secret; the name is unique in its account and Region, including secrets scheduled for
-- deletion. kms_key_id is the key reference given at creation, NULL for the AWS managed key
-- alias/aws/secretsmanager. Timestamps are milliseconds since the Unix epoch.
CREATE TABLE secrets (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    arn_suffix TEXT NOT NULL,
    description TEXT,
    kms_key_id TEXT,
    created INTEGER NOT NULL,
    last_changed INTEGER NOT NULL,
    last_accessed INTEGER,
    deletion_date INTEGER,
    PRIMARY KEY (account, region, name)
) STRICT, WITHOUT ROWID;

-- The background worker asks for secrets whose recovery window has ended; only those scheduled are indexed.
CREATE INDEX secrets_by_deletion_date ON secrets (deletion_date) WHERE deletion_date IS NOT NULL;

CREATE TABLE secret_tags (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account, region, name, position)
) STRICT, WITHOUT ROWID;

-- kind is STRING or BINARY (which member GetSecretValue returns); key_arn is the KMS key that encrypted
-- the data key; sealed is the value under the data key (derivation nonce, then ciphertext and tag).
CREATE TABLE secret_versions (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    version_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('STRING', 'BINARY')),
    key_arn TEXT NOT NULL,
    encrypted_data_key BLOB NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (account, region, name, version_id)
) STRICT;

-- A staging label is attached to at most one version of a secret.
CREATE TABLE secret_stages (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (account, region, name, stage)
) STRICT, WITHOUT ROWID;
