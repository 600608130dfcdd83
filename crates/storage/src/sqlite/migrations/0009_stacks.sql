-- Provisioning stacks: one row per stack, the resources each manages, and the steps of its current or last
-- operation. Nothing secret is stored: stack files name where their secrets are, never the secrets.
--
-- status is a StackStatus spelling (APPLY_IN_PROGRESS, ...); on_failure is rollback or preserve;
-- parameters is the list given with the file, one "name=value" per line. Timestamps are milliseconds since
-- the Unix epoch.
CREATE TABLE stacks (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_arn TEXT NOT NULL,
    owner_access_key_id TEXT NOT NULL,
    document TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('rollback', 'preserve')),
    reason TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
) STRICT, WITHOUT ROWID;

-- Start-up looks for stacks a runner had not finished.
CREATE INDEX stacks_by_status ON stacks (status);

CREATE TABLE stack_resources (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    stack TEXT NOT NULL,
    position INTEGER NOT NULL,
    logical_id TEXT NOT NULL,
    physical_id TEXT NOT NULL,
    properties TEXT NOT NULL,
    retained TEXT,
    PRIMARY KEY (account, region, stack, position)
) STRICT, WITHOUT ROWID;

-- log holds one entry per line; desired is the JSON the step moves its resource to.
CREATE TABLE stack_steps (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    stack TEXT NOT NULL,
    position INTEGER NOT NULL,
    logical_id TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    started INTEGER,
    finished INTEGER,
    log TEXT NOT NULL,
    desired TEXT,
    PRIMARY KEY (account, region, stack, position)
) STRICT, WITHOUT ROWID;
