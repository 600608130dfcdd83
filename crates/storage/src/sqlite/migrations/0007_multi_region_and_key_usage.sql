-- Sets of related multi-Region keys, and each key's last cryptographic use.

-- One row per Region holding a key of a set; a set is named by its account and the key id its keys share.
-- A primary key that was never replicated has no rows.
-- transition_until and state_after describe a transient state under way (Creating, Updating): the key takes
-- state_after when transition_until (milliseconds) has passed.
-- pending_window_days is the waiting period of a primary scheduled for deletion while replicas remain.
CREATE TABLE multi_region_keys (
    account TEXT NOT NULL,
    key_id TEXT NOT NULL,
    region TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('PRIMARY', 'REPLICA')),
    transition_until INTEGER,
    state_after TEXT,
    pending_window_days INTEGER,
    PRIMARY KEY (account, key_id, region),
    CHECK ((transition_until IS NULL) = (state_after IS NULL))
) STRICT, WITHOUT ROWID;

-- A set has at most one primary.
CREATE UNIQUE INDEX multi_region_keys_one_primary ON multi_region_keys (account, key_id)
    WHERE role = 'PRIMARY';

-- The background worker asks for transient states that have ended; only keys in one are indexed.
CREATE INDEX multi_region_keys_by_transition ON multi_region_keys (transition_until)
    WHERE transition_until IS NOT NULL;

-- The last successful cryptographic operation on each key (GetKeyLastUsage), written in batches.
CREATE TABLE key_last_usage (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    used INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (account, region, key_id)
) STRICT, WITHOUT ROWID;
