//! Key records: one row in `keys`, with its materials in `key_materials` and its tags in `key_tags`.
//!
//! Functions here run inside a transaction the caller opened, so a record is always written and read whole.

use rusqlite::{Connection, Row, params};
use strongroom_types::{
    AccountId, Deletion, ExpirationModel, ImportState, KeyId, KeyMaterial, KeyMaterialId,
    KeyRecord, MaterialImport, Namespace, Region, Rotation, RotationType, Tag, Timestamp,
};

use crate::StoreError;
use crate::sqlite::{backend, column, corrupt, parse, parse_column};

/// Adds the row unless the primary key is taken; the change count tells which happened.
const INSERT_KEY: &str = "INSERT INTO keys (account, region, key_id, created, description, key_spec, key_usage, \
     origin, key_manager, state, deletion_date, deletion_window_days, policy, rotation_enabled, \
     rotation_period_days, rotation_next, rotation_on_demand_started, multi_region) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
     ON CONFLICT DO NOTHING";

/// Takes the same parameters as [`INSERT_KEY`].
pub(super) const UPDATE_KEY: &str = "UPDATE keys SET created = ?4, description = ?5, key_spec = ?6, key_usage = ?7, \
     origin = ?8, key_manager = ?9, state = ?10, deletion_date = ?11, deletion_window_days = ?12, policy = ?13, \
     rotation_enabled = ?14, rotation_period_days = ?15, rotation_next = ?16, rotation_on_demand_started = ?17, \
     multi_region = ?18 \
     WHERE account = ?1 AND region = ?2 AND key_id = ?3";

pub(super) const SELECT_KEY: &str = "SELECT created, description, key_spec, key_usage, origin, key_manager, state, \
     deletion_date, deletion_window_days, policy, rotation_enabled, rotation_period_days, rotation_next, \
     rotation_on_demand_started, multi_region \
     FROM keys WHERE account = ?1 AND region = ?2 AND key_id = ?3";

pub(super) const DELETE_KEY: &str =
    "DELETE FROM keys WHERE account = ?1 AND region = ?2 AND key_id = ?3";

const INSERT_MATERIAL: &str = "INSERT INTO key_materials \
     (account, region, key_id, position, material_id, wrapped, created, rotation_type, import_state, \
     expiration_model, valid_to, import_description, pending_rotation) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

pub(super) const SELECT_MATERIALS: &str = "SELECT position, material_id, wrapped, created, rotation_type, import_state, \
     expiration_model, valid_to, import_description, pending_rotation FROM key_materials \
     WHERE account = ?1 AND region = ?2 AND key_id = ?3 ORDER BY position";

pub(super) const DELETE_MATERIALS: &str =
    "DELETE FROM key_materials WHERE account = ?1 AND region = ?2 AND key_id = ?3";

const INSERT_TAG: &str = "INSERT INTO key_tags (account, region, key_id, position, tag_key, tag_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(super) const SELECT_TAGS: &str = "SELECT position, tag_key, tag_value FROM key_tags \
     WHERE account = ?1 AND region = ?2 AND key_id = ?3 ORDER BY position";

pub(super) const DELETE_TAGS: &str =
    "DELETE FROM key_tags WHERE account = ?1 AND region = ?2 AND key_id = ?3";

pub(super) const DELETE_ALIASES_OF_KEY: &str =
    "DELETE FROM aliases WHERE account = ?1 AND region = ?2 AND target = ?3";

/// The empty string sorts before every key id, so it stands for "from the start".
pub(super) const LIST_KEYS: &str = "SELECT key_id FROM keys WHERE account = ?1 AND region = ?2 AND key_id > ?3 \
     ORDER BY key_id LIMIT ?4";

/// Each part matches its partial index exactly (`rotation_enabled = 1` must be spelled as in the index),
/// and `UNION` drops a key that is due for more than one reason.
pub(super) const KEYS_DUE: &str = "SELECT account, region, key_id FROM keys \
     WHERE deletion_date IS NOT NULL AND deletion_date <= ?1 \
     UNION \
     SELECT account, region, key_id FROM keys \
     WHERE rotation_enabled = 1 AND rotation_next IS NOT NULL AND rotation_next <= ?1 \
     UNION \
     SELECT account, region, key_id FROM key_materials \
     WHERE valid_to IS NOT NULL AND valid_to <= ?1 \
     ORDER BY account, region, key_id";

pub(super) fn insert(connection: &Connection, key: &KeyRecord) -> Result<(), StoreError> {
    let inserted = execute_key_row(connection, INSERT_KEY, key)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(describe(
            &key.namespace,
            &key.key_id,
        )));
    }
    insert_children(connection, key)
}

pub(super) fn replace(connection: &Connection, key: &KeyRecord) -> Result<(), StoreError> {
    let updated = execute_key_row(connection, UPDATE_KEY, key)?;
    if updated == 0 {
        return Err(StoreError::NotFound(describe(&key.namespace, &key.key_id)));
    }
    let identity = params![
        key.namespace.account.as_str(),
        key.namespace.region.as_str(),
        key.key_id.as_str()
    ];
    for sql in [DELETE_MATERIALS, DELETE_TAGS] {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(identity))
            .map_err(backend)?;
    }
    insert_children(connection, key)
}

pub(super) fn read(
    connection: &Connection,
    namespace: &Namespace,
    key_id: &KeyId,
) -> Result<Option<KeyRecord>, StoreError> {
    let identity = params![
        namespace.account.as_str(),
        namespace.region.as_str(),
        key_id.as_str()
    ];
    let account = namespace.account.as_str();
    let region = namespace.region.as_str();

    let mut statement = connection.prepare_cached(SELECT_KEY).map_err(backend)?;
    let mut rows = statement.query(identity).map_err(backend)?;
    let Some(row) = rows.next().map_err(backend)? else {
        return Ok(None);
    };
    let mut key = decode_key(
        row,
        &row_name("keys", account, region, key_id.as_str(), None),
        namespace,
        key_id,
    )?;

    let mut statement = connection
        .prepare_cached(SELECT_MATERIALS)
        .map_err(backend)?;
    let mut rows = statement.query(identity).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let position = row.get(0).map_err(backend)?;
        let name = row_name(
            "key_materials",
            account,
            region,
            key_id.as_str(),
            Some(position),
        );
        key.materials.push(decode_material(row, &name)?);
    }

    let mut statement = connection.prepare_cached(SELECT_TAGS).map_err(backend)?;
    let mut rows = statement.query(identity).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let position = row.get(0).map_err(backend)?;
        let name = row_name("key_tags", account, region, key_id.as_str(), Some(position));
        key.tags.push(Tag {
            key: column(row, &name, "tag_key")?,
            value: column(row, &name, "tag_value")?,
        });
    }
    Ok(Some(key))
}

pub(super) fn delete(
    connection: &Connection,
    namespace: &Namespace,
    key_id: &KeyId,
) -> Result<(), StoreError> {
    let identity = params![
        namespace.account.as_str(),
        namespace.region.as_str(),
        key_id.as_str()
    ];
    let deleted = connection
        .prepare_cached(DELETE_KEY)
        .and_then(|mut statement| statement.execute(identity))
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(describe(namespace, key_id)));
    }
    for sql in [DELETE_MATERIALS, DELETE_TAGS, DELETE_ALIASES_OF_KEY] {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(identity))
            .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn list(
    connection: &Connection,
    namespace: &Namespace,
    after: Option<&KeyId>,
    limit: usize,
) -> Result<Vec<KeyId>, StoreError> {
    let after = after.map_or("", KeyId::as_str);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(LIST_KEYS).map_err(backend)?;
    let mut rows = statement
        .query(params![
            namespace.account.as_str(),
            namespace.region.as_str(),
            after,
            limit
        ])
        .map_err(backend)?;
    let mut key_ids = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let text: String = row.get(0).map_err(backend)?;
        let name = row_name(
            "keys",
            namespace.account.as_str(),
            namespace.region.as_str(),
            &text,
            None,
        );
        key_ids.push(parse(&name, "key_id", &text)?);
    }
    Ok(key_ids)
}

pub(super) fn due(
    connection: &Connection,
    now: Timestamp,
) -> Result<Vec<(Namespace, KeyId)>, StoreError> {
    let mut statement = connection.prepare_cached(KEYS_DUE).map_err(backend)?;
    let mut rows = statement.query(params![now.millis()]).map_err(backend)?;
    let mut due = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let account: String = row.get(0).map_err(backend)?;
        let region: String = row.get(1).map_err(backend)?;
        let key_id: String = row.get(2).map_err(backend)?;
        let name = row_name("keys", &account, &region, &key_id, None);
        let namespace = Namespace {
            account: parse::<AccountId>(&name, "account", &account)?,
            region: parse::<Region>(&name, "region", &region)?,
        };
        due.push((namespace, parse(&name, "key_id", &key_id)?));
    }
    Ok(due)
}

/// Runs [`INSERT_KEY`] or [`UPDATE_KEY`], which share their parameters, and returns the change count.
fn execute_key_row(
    connection: &Connection,
    sql: &str,
    key: &KeyRecord,
) -> Result<usize, StoreError> {
    let rotation = key.rotation;
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            key.namespace.account.as_str(),
            key.namespace.region.as_str(),
            key.key_id.as_str(),
            key.created.millis(),
            key.description,
            key.key_spec.as_str(),
            key.key_usage.as_str(),
            key.origin.as_str(),
            key.key_manager.as_str(),
            key.state.as_str(),
            key.deletion.map(|deletion| deletion.date.millis()),
            key.deletion.map(|deletion| deletion.window_days),
            key.policy,
            rotation.enabled,
            rotation.period_days,
            rotation.next.map(Timestamp::millis),
            rotation.on_demand_started.map(Timestamp::millis),
            key.multi_region,
        ])
        .map_err(backend)
}

/// Writes the materials and tags with their positions, which keep their order when read back.
fn insert_children(connection: &Connection, key: &KeyRecord) -> Result<(), StoreError> {
    let account = key.namespace.account.as_str();
    let region = key.namespace.region.as_str();
    let key_id = key.key_id.as_str();

    let mut statement = connection
        .prepare_cached(INSERT_MATERIAL)
        .map_err(backend)?;
    for (position, material) in key.materials.iter().enumerate() {
        let import = material.import.as_ref();
        statement
            .execute(params![
                account,
                region,
                key_id,
                position,
                material.id.0.as_slice(),
                material.wrapped,
                material.created.millis(),
                material.rotation_type.map(RotationType::as_str),
                import.map(|import| import.state.as_str()),
                import
                    .and_then(|import| import.expiration_model)
                    .map(ExpirationModel::as_str),
                import
                    .and_then(|import| import.valid_to)
                    .map(Timestamp::millis),
                import.and_then(|import| import.description.as_deref()),
                import.map(|import| import.pending_rotation),
            ])
            .map_err(backend)?;
    }

    let mut statement = connection.prepare_cached(INSERT_TAG).map_err(backend)?;
    for (position, tag) in key.tags.iter().enumerate() {
        statement
            .execute(params![
                account, region, key_id, position, tag.key, tag.value
            ])
            .map_err(backend)?;
    }
    Ok(())
}

/// Decodes a row of [`SELECT_KEY`]; materials and tags are filled in by the caller.
fn decode_key(
    row: &Row<'_>,
    row_name: &str,
    namespace: &Namespace,
    key_id: &KeyId,
) -> Result<KeyRecord, StoreError> {
    let deletion_date: Option<i64> = column(row, row_name, "deletion_date")?;
    let deletion_window_days: Option<u32> = column(row, row_name, "deletion_window_days")?;
    let deletion = match (deletion_date, deletion_window_days) {
        (Some(date), Some(window_days)) => Some(Deletion {
            date: Timestamp::from_millis(date),
            window_days,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                row_name,
                "deletion_date and deletion_window_days must both be set or both be null",
            ));
        }
    };
    let rotation = Rotation {
        enabled: column(row, row_name, "rotation_enabled")?,
        period_days: column(row, row_name, "rotation_period_days")?,
        next: column::<Option<i64>>(row, row_name, "rotation_next")?.map(Timestamp::from_millis),
        on_demand_started: column::<Option<i64>>(row, row_name, "rotation_on_demand_started")?
            .map(Timestamp::from_millis),
    };
    Ok(KeyRecord {
        namespace: namespace.clone(),
        key_id: key_id.clone(),
        created: Timestamp::from_millis(column(row, row_name, "created")?),
        description: column(row, row_name, "description")?,
        key_spec: parse_column(row, row_name, "key_spec")?,
        key_usage: parse_column(row, row_name, "key_usage")?,
        origin: parse_column(row, row_name, "origin")?,
        key_manager: parse_column(row, row_name, "key_manager")?,
        state: parse_column(row, row_name, "state")?,
        deletion,
        policy: column(row, row_name, "policy")?,
        rotation,
        materials: Vec::new(),
        tags: Vec::new(),
        multi_region: column(row, row_name, "multi_region")?,
    })
}

/// Decodes a row of [`SELECT_MATERIALS`].
fn decode_material(row: &Row<'_>, row_name: &str) -> Result<KeyMaterial, StoreError> {
    let id: Vec<u8> = column(row, row_name, "material_id")?;
    let id = match <[u8; 32]>::try_from(id.as_slice()) {
        Ok(id) => KeyMaterialId(id),
        Err(_) => {
            return Err(corrupt(
                row_name,
                format!("material_id is {} bytes long, not 32", id.len()),
            ));
        }
    };
    let rotation_type: Option<String> = column(row, row_name, "rotation_type")?;
    let rotation_type = match rotation_type {
        Some(text) => Some(parse(row_name, "rotation_type", &text)?),
        None => None,
    };
    Ok(KeyMaterial {
        id,
        wrapped: column(row, row_name, "wrapped")?,
        created: Timestamp::from_millis(column(row, row_name, "created")?),
        rotation_type,
        import: decode_import(row, row_name)?,
    })
}

/// Decodes the import columns of a [`SELECT_MATERIALS`] row: all NULL for generated material.
fn decode_import(row: &Row<'_>, row_name: &str) -> Result<Option<MaterialImport>, StoreError> {
    let state: Option<String> = column(row, row_name, "import_state")?;
    let expiration_model: Option<String> = column(row, row_name, "expiration_model")?;
    let valid_to: Option<i64> = column(row, row_name, "valid_to")?;
    let description: Option<String> = column(row, row_name, "import_description")?;
    let pending_rotation: Option<bool> = column(row, row_name, "pending_rotation")?;
    let Some(state) = state else {
        if expiration_model.is_some()
            || valid_to.is_some()
            || description.is_some()
            || pending_rotation.is_some()
        {
            return Err(corrupt(
                row_name,
                "import columns are set, but import_state is null",
            ));
        }
        return Ok(None);
    };
    let state: ImportState = parse(row_name, "import_state", &state)?;
    let expiration_model: Option<ExpirationModel> = match expiration_model {
        Some(text) => Some(parse(row_name, "expiration_model", &text)?),
        None => None,
    };
    Ok(Some(MaterialImport {
        state,
        expiration_model,
        valid_to: valid_to.map(Timestamp::from_millis),
        description,
        pending_rotation: pending_rotation.unwrap_or(false),
    }))
}

/// Names a row of `table` the way an operator would look it up with the sqlite3 shell.
fn row_name(
    table: &str,
    account: &str,
    region: &str,
    key_id: &str,
    position: Option<i64>,
) -> String {
    match position {
        Some(position) => {
            format!(
                "in {table} (account '{account}', region '{region}', key_id '{key_id}', position {position})"
            )
        }
        None => format!("in {table} (account '{account}', region '{region}', key_id '{key_id}')"),
    }
}

/// Names a key for `AlreadyExists` and `NotFound`, in the words AWS uses.
fn describe(namespace: &Namespace, key_id: &KeyId) -> String {
    format!("Key '{}'", namespace.key_arn(key_id))
}
