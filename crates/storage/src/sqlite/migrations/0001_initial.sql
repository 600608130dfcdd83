-- The first schema: keys with their materials and tags, aliases, and server settings.
--
-- Tables are STRICT so a value of the wrong type cannot be stored, and every enumeration is kept in its
-- wire spelling so the file can be read with the sqlite3 shell.
-- Timestamps are milliseconds since the Unix epoch.

CREATE TABLE keys (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    key_manager TEXT NOT NULL,
    state TEXT NOT NULL,
    deletion_date INTEGER,
    deletion_window_days INTEGER,
    policy TEXT NOT NULL,
    rotation_enabled INTEGER NOT NULL CHECK (rotation_enabled IN (0, 1)),
    rotation_period_days INTEGER,
    rotation_next INTEGER,
    rotation_on_demand_started INTEGER,
    multi_region INTEGER NOT NULL CHECK (multi_region IN (0, 1)),
    PRIMARY KEY (account, region, key_id),
    CHECK ((deletion_date IS NULL) = (deletion_window_days IS NULL))
) STRICT;

-- The background worker asks for keys whose deletion date has passed; only keys pending deletion are indexed.
CREATE INDEX keys_by_deletion_date ON keys (deletion_date) WHERE deletion_date IS NOT NULL;

-- The background worker asks for keys whose automatic rotation is due; only keys with rotation on are indexed.
CREATE INDEX keys_by_rotation_next ON keys (rotation_next)
    WHERE rotation_enabled = 1 AND rotation_next IS NOT NULL;

-- Versions of each key's material, oldest first by position.
CREATE TABLE key_materials (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    material_id BLOB NOT NULL CHECK (length(material_id) = 32),
    wrapped BLOB NOT NULL,
    created INTEGER NOT NULL,
    rotation_type TEXT,
    PRIMARY KEY (account, region, key_id, position)
) STRICT;

-- Tags of each key, in the order they were first added.
CREATE TABLE key_tags (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    key_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account, region, key_id, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE aliases (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
) STRICT;

-- ListAliases with a KeyId filter, and the cascade when a key is deleted.
-- The aliases table keeps its rowid: without one, the planner prefers a namespace scan of the primary key
-- to this index when it has no statistics.
CREATE INDEX aliases_by_target ON aliases (account, region, target, name);

CREATE TABLE settings (
    name TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
