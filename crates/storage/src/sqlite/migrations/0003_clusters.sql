-- The CloudHSM-style control plane: clusters, their subnets and crypto users, HSM assignments, backup
-- records, and the tags of clusters and backups.
--
-- Tables are STRICT, enumerations are kept in their wire spellings, and timestamps are milliseconds since
-- the Unix epoch, as in the first schema.
-- Nothing secret is stored here: passwords stay in the HSMs and in the operator's files.

CREATE TABLE hsm_clusters (
    cluster_id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    state_message TEXT,
    hsm_type TEXT NOT NULL,
    mode TEXT NOT NULL,
    backup_retention_days INTEGER NOT NULL,
    security_group TEXT NOT NULL,
    created INTEGER NOT NULL,
    key_label TEXT,
    public_key BLOB,
    csr TEXT,
    cluster_certificate TEXT,
    trust_anchor TEXT,
    CHECK ((key_label IS NULL) = (public_key IS NULL) AND (key_label IS NULL) = (csr IS NULL)),
    CHECK ((cluster_certificate IS NULL) = (trust_anchor IS NULL))
) STRICT;

-- DescribeClusters lists the clusters of one account and Region in id order.
CREATE INDEX hsm_clusters_by_namespace ON hsm_clusters (account, region, cluster_id);

CREATE TABLE hsm_cluster_subnets (
    cluster_id TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    PRIMARY KEY (cluster_id, availability_zone)
) STRICT, WITHOUT ROWID;

CREATE TABLE hsm_crypto_users (
    cluster_id TEXT NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (cluster_id, username)
) STRICT, WITHOUT ROWID;

-- Tags of clusters and backups, keyed by the resource id, in the order they were first added.
CREATE TABLE hsm_tags (
    resource_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (resource_id, position)
) STRICT, WITHOUT ROWID;

-- One row per declared HSM in use: the UNIQUE constraint is what stops two clusters claiming one HSM,
-- even when the server and a `strongroom hsm` command race.
CREATE TABLE hsm_assignments (
    hsm_id TEXT NOT NULL PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    declared_hsm TEXT NOT NULL UNIQUE,
    availability_zone TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    eni_id TEXT NOT NULL,
    eni_ip TEXT NOT NULL,
    state TEXT NOT NULL,
    state_message TEXT,
    created INTEGER NOT NULL
) STRICT;

CREATE TABLE hsm_backups (
    backup_id TEXT NOT NULL PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    hsm_type TEXT NOT NULL,
    mode TEXT NOT NULL,
    never_expires INTEGER NOT NULL CHECK (never_expires IN (0, 1)),
    created INTEGER NOT NULL,
    deleted INTEGER
) STRICT;

CREATE INDEX hsm_backups_by_namespace ON hsm_backups (account, region, created, backup_id);
