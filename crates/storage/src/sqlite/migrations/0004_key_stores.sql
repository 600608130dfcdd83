-- KMS custom key stores of the AWS_CLOUDHSM type, and which KMS keys live in which store.
--
-- The kmsuser password is stored only wrapped by the root key (with the store id bound as additional data).

CREATE TABLE custom_key_stores (
    custom_key_store_id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    trust_anchor TEXT NOT NULL,
    wrapped_password BLOB NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    created INTEGER NOT NULL,
    UNIQUE (account, region, name)
) STRICT;

CREATE INDEX custom_key_stores_by_namespace ON custom_key_stores (account, region, custom_key_store_id);

-- One row per KMS key whose backing key lives in a custom key store.
CREATE TABLE custom_key_store_keys (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    custom_key_store_id TEXT NOT NULL,
    PRIMARY KEY (account, region, key_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX custom_key_store_keys_by_store ON custom_key_store_keys (custom_key_store_id);
