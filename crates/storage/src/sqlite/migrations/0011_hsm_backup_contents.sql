-- Backups that hold what a cluster is made of, and clusters created from them.
--
-- hsm_backups.contents: the cluster's keys (wrapped inside an HSM under the cluster wrapping key, so
-- never in plaintext outside a token), its users (names and roles, never a password) and its
-- certificates, the whole sealed by the root key with the backup id bound as additional data. NULL
-- for backups taken before this migration, which hold metadata only.
-- hsm_clusters.source_backup_id: the backup the cluster was created from (DescribeClusters'
-- SourceBackupId).

ALTER TABLE hsm_clusters ADD COLUMN source_backup_id TEXT;
ALTER TABLE hsm_backups ADD COLUMN contents BLOB;
