-- IAM identities: users, roles, managed and inline policies, attachments, and access keys.
--
-- Tables are STRICT, enumerations are kept in their wire spellings, and timestamps are milliseconds since
-- the Unix epoch, as in the first schema.
-- Secrets are stored only wrapped by the root key, and session tokens only as SHA-256 hashes.

CREATE TABLE iam_users (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (account, name)
) STRICT;

CREATE TABLE iam_roles (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    role_id TEXT NOT NULL,
    trust_policy TEXT NOT NULL,
    description TEXT NOT NULL,
    max_session_duration INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (account, name)
) STRICT;

CREATE TABLE iam_policies (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    document TEXT NOT NULL,
    description TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (account, name)
) STRICT;

-- Tags of users, roles and managed policies, in the order they were first added.
CREATE TABLE iam_tags (
    account TEXT NOT NULL,
    entity TEXT NOT NULL CHECK (entity IN ('user', 'role', 'policy')),
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account, entity, name, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE iam_inline_policies (
    account TEXT NOT NULL,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('user', 'role')),
    owner_name TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (account, owner_kind, owner_name, name)
) STRICT;

CREATE TABLE iam_attachments (
    account TEXT NOT NULL,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('user', 'role')),
    owner_name TEXT NOT NULL,
    policy_arn TEXT NOT NULL,
    PRIMARY KEY (account, owner_kind, owner_name, policy_arn)
) STRICT, WITHOUT ROWID;

-- Long-term keys (of a root or a user) and the temporary keys of sessions; the session columns are set
-- exactly when owner_kind is 'session'. user_name names the user of a user's key or of a user's session;
-- session_role and session_name name the role and the role session name of an assumed role.
CREATE TABLE iam_access_keys (
    access_key_id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('root', 'user', 'session')),
    user_name TEXT,
    wrapped_secret BLOB NOT NULL,
    status TEXT NOT NULL,
    created INTEGER NOT NULL,
    session_subject TEXT CHECK (session_subject IN ('role', 'user', 'root')),
    session_role TEXT,
    session_name TEXT,
    session_expires INTEGER,
    session_token_hash BLOB,
    session_policy TEXT,
    CHECK ((owner_kind = 'session') = (session_subject IS NOT NULL)),
    CHECK ((owner_kind = 'session') = (session_expires IS NOT NULL AND session_token_hash IS NOT NULL)),
    CHECK (owner_kind <> 'user' OR user_name IS NOT NULL)
) STRICT;

-- Expired sessions are pruned by expiry; only temporary keys are indexed.
CREATE INDEX iam_access_keys_by_expiry ON iam_access_keys (session_expires)
    WHERE session_expires IS NOT NULL;

-- Session tags, in the order they were given.
CREATE TABLE iam_session_tags (
    access_key_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (access_key_id, position)
) STRICT, WITHOUT ROWID;
