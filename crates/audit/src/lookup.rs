//! LookupEvents: the newest events of one account, filtered by at most one attribute, in pages.
//!
//! Pages are cut with keyset pagination on (event time, insertion order), so a page is stable
//! while new events arrive.
//! A next token names the last event returned and is bound to the account and the query that
//! produced it; CloudTrail requires the same parameters with a token, and rejects others.

use std::path::Path;
use std::str::FromStr;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use time::OffsetDateTime;

use crate::error::Error;
use crate::index::ResourcePart;
use crate::signing::{sha256, to_hex};
use crate::{index, journal};

/// The page size when the request names none, and the largest allowed.
pub const MAX_LOOKUP_RESULTS: u32 = 50;

/// The longest lookup attribute value CloudTrail accepts.
const MAX_ATTRIBUTE_VALUE_LEN: usize = 2000;

/// The attribute a lookup filters on, spelled as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupAttributeKey {
    /// The `eventID`.
    EventId,
    /// The operation, such as `Encrypt`.
    EventName,
    /// `true` or `false`.
    ReadOnly,
    /// The user, role session or service name.
    Username,
    /// Such as `AWS::KMS::Key`.
    ResourceType,
    /// For KMS, a key ARN.
    ResourceName,
    /// Such as `kms.amazonaws.com`.
    EventSource,
    /// The access key that signed the request.
    AccessKeyId,
}

/// A LookupEvents request, already parsed from the wire.
#[derive(Clone, Debug, Default)]
pub struct LookupQuery {
    /// At most one attribute; CloudTrail rejects more.
    pub attributes: Vec<(LookupAttributeKey, String)>,
    /// Only events at or after this time.
    pub start_time: Option<OffsetDateTime>,
    /// Only events at or before this time.
    pub end_time: Option<OffsetDateTime>,
    /// Page size, 1 to 50; 50 when absent.
    pub max_results: Option<u32>,
    /// The token from the previous page.
    pub next_token: Option<String>,
    /// The Region the request went to; LookupEvents is regional. `None` looks across Regions.
    pub region: Option<String>,
}

/// One page of LookupEvents results, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupPage {
    /// The events of this page.
    pub events: Vec<LookupEventEntry>,
    /// Present when there are more events.
    pub next_token: Option<String>,
}

/// One event as LookupEvents returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupEventEntry {
    /// The `eventID`.
    pub event_id: String,
    /// The operation.
    pub event_name: String,
    /// `"true"` or `"false"`: a string on the wire.
    pub read_only: String,
    /// The access key that signed the request.
    pub access_key_id: Option<String>,
    /// When it happened.
    pub event_time: OffsetDateTime,
    /// Such as `kms.amazonaws.com`.
    pub event_source: String,
    /// The user, role session or service name.
    pub username: Option<String>,
    /// The resources it touched.
    pub resources: Vec<LookupResource>,
    /// The whole CloudTrail record as JSON.
    pub cloud_trail_event: String,
}

/// A resource as LookupEvents returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResource {
    /// Such as `AWS::KMS::Key`.
    pub resource_type: Option<String>,
    /// For KMS, the key ARN.
    pub resource_name: Option<String>,
}

impl LookupAttributeKey {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupAttributeKey::EventId => "EventId",
            LookupAttributeKey::EventName => "EventName",
            LookupAttributeKey::ReadOnly => "ReadOnly",
            LookupAttributeKey::Username => "Username",
            LookupAttributeKey::ResourceType => "ResourceType",
            LookupAttributeKey::ResourceName => "ResourceName",
            LookupAttributeKey::EventSource => "EventSource",
            LookupAttributeKey::AccessKeyId => "AccessKeyId",
        }
    }

    /// The SQL condition for this attribute, with its value bound to `?`.
    fn condition(self) -> &'static str {
        match self {
            LookupAttributeKey::EventId => "event_key = ? AND event_id = ?",
            LookupAttributeKey::EventName => "event_name = ?",
            LookupAttributeKey::ReadOnly => "read_only = ?",
            LookupAttributeKey::Username => "username = ?",
            LookupAttributeKey::EventSource => "event_source = ?",
            LookupAttributeKey::AccessKeyId => "access_key_id = ?",
            LookupAttributeKey::ResourceType | LookupAttributeKey::ResourceName => {
                "instr(resources, ?) > 0"
            }
        }
    }

    /// The value bound to this attribute's condition for `value`.
    fn bound_value(self, value: &str) -> SqlValue {
        match self {
            LookupAttributeKey::ResourceType => {
                SqlValue::Text(index::resource_pattern(ResourcePart::Type, value))
            }
            LookupAttributeKey::ResourceName => {
                SqlValue::Text(index::resource_pattern(ResourcePart::Arn, value))
            }
            LookupAttributeKey::EventId
            | LookupAttributeKey::EventName
            | LookupAttributeKey::ReadOnly
            | LookupAttributeKey::Username
            | LookupAttributeKey::EventSource
            | LookupAttributeKey::AccessKeyId => SqlValue::Text(value.to_owned()),
        }
    }
}

impl FromStr for LookupAttributeKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<LookupAttributeKey, Error> {
        let all = [
            LookupAttributeKey::EventId,
            LookupAttributeKey::EventName,
            LookupAttributeKey::ReadOnly,
            LookupAttributeKey::Username,
            LookupAttributeKey::ResourceType,
            LookupAttributeKey::ResourceName,
            LookupAttributeKey::EventSource,
            LookupAttributeKey::AccessKeyId,
        ];
        match all.into_iter().find(|key| key.as_str() == s) {
            Some(key) => Ok(key),
            None => Err(Error::InvalidLookupAttributes("unknown attribute key")),
        }
    }
}

/// Where the previous page stopped.
struct Position {
    event_time: i64,
    seq: i64,
}

/// Runs a lookup for `account` against the index.
pub(crate) fn lookup(
    connection: &Connection,
    journal_dir: &Path,
    account: &str,
    query: &LookupQuery,
) -> Result<LookupPage, Error> {
    if query.attributes.len() > 1 {
        return Err(Error::InvalidLookupAttributes(
            "only one lookup attribute is allowed",
        ));
    }
    let attribute = query.attributes.first();
    if let Some((_, value)) = attribute
        && (value.is_empty() || value.len() > MAX_ATTRIBUTE_VALUE_LEN)
    {
        return Err(Error::InvalidLookupAttributes(
            "the attribute value must be 1 to 2000 characters",
        ));
    }
    let start = query
        .start_time
        .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
    let end = query
        .end_time
        .map_or(i64::MAX, OffsetDateTime::unix_timestamp);
    if start > end {
        return Err(Error::InvalidTimeRange);
    }
    let limit = query.max_results.unwrap_or(MAX_LOOKUP_RESULTS);
    if !(1..=MAX_LOOKUP_RESULTS).contains(&limit) {
        return Err(Error::InvalidMaxResults(limit));
    }
    let binding = token_binding(account, query);
    let position = match &query.next_token {
        Some(token) => Some(parse_token(token, &binding)?),
        None => None,
    };

    let mut sql = String::from(
        "SELECT seq, event_id, event_name, read_only, access_key_id, event_time, event_source,
                username, record, record_len, resources
         FROM events WHERE account = ? AND event_time >= ? AND event_time <= ?",
    );
    let mut values: Vec<SqlValue> = vec![
        SqlValue::Text(account.to_owned()),
        SqlValue::Integer(start),
        SqlValue::Integer(end),
    ];
    if let Some(region) = &query.region {
        sql.push_str(" AND region = ?");
        values.push(SqlValue::Text(region.clone()));
    }
    if let Some((key, value)) = attribute {
        sql.push_str(" AND ");
        sql.push_str(key.condition());
        if *key == LookupAttributeKey::EventId {
            values.push(SqlValue::Integer(index::event_key(value)));
        }
        values.push(key.bound_value(value));
    }
    if let Some(position) = &position {
        sql.push_str(" AND (event_time < ? OR (event_time = ? AND seq < ?))");
        values.push(SqlValue::Integer(position.event_time));
        values.push(SqlValue::Integer(position.event_time));
        values.push(SqlValue::Integer(position.seq));
    }
    sql.push_str(" ORDER BY event_time DESC, seq DESC LIMIT ?");
    values.push(SqlValue::Integer(i64::from(limit) + 1));

    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let event_time: i64 = row.get(5)?;
        // Rows indexed before schema version 2 carry their record; newer ones point into the
        // journal.
        let record = match row.get::<_, Option<String>>(8)? {
            Some(record) => Some(record),
            None => journal::read_line(journal_dir, index::location_of(seq, row.get(9)?))?,
        };
        // A record can vanish only when its segment expired between the query and the read.
        let Some(cloud_trail_event) = record else {
            continue;
        };
        let entry = LookupEventEntry {
            event_id: row.get(1)?,
            event_name: row.get(2)?,
            read_only: row.get(3)?,
            access_key_id: row.get(4)?,
            event_time: OffsetDateTime::from_unix_timestamp(event_time)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            event_source: row.get(6)?,
            username: row.get(7)?,
            resources: row
                .get::<_, Option<String>>(10)?
                .as_deref()
                .map(index::decode_resources)
                .unwrap_or_default()
                .into_iter()
                .map(|(resource_type, arn)| LookupResource {
                    resource_type: nonempty(resource_type),
                    resource_name: nonempty(arn),
                })
                .collect(),
            cloud_trail_event,
        };
        found.push((seq, event_time, entry));
    }
    drop(rows);

    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next_token = match (more, found.last()) {
        (true, Some((seq, event_time, _))) => Some(format_token(*event_time, *seq, &binding)),
        _ => None,
    };
    let events = found.into_iter().map(|(_, _, entry)| entry).collect();
    Ok(LookupPage { events, next_token })
}

/// An empty type or ARN is absent.
fn nonempty(text: String) -> Option<String> {
    match text.is_empty() {
        true => None,
        false => Some(text),
    }
}

/// A short hash of everything a token must be used with: the account and the query's filters.
fn token_binding(account: &str, query: &LookupQuery) -> String {
    let mut text = String::new();
    for part in [
        account,
        query.region.as_deref().unwrap_or(""),
        query.attributes.first().map_or("", |(key, _)| key.as_str()),
        query.attributes.first().map_or("", |(_, value)| value),
    ] {
        text.push_str(part);
        text.push('\0');
    }
    text.push_str(&format!(
        "{:?}\0{:?}",
        query.start_time.map(OffsetDateTime::unix_timestamp),
        query.end_time.map(OffsetDateTime::unix_timestamp)
    ));
    to_hex(&sha256(text.as_bytes())[..8])
}

fn format_token(event_time: i64, seq: i64, binding: &str) -> String {
    format!("{event_time}.{seq}.{binding}")
}

fn parse_token(token: &str, binding: &str) -> Result<Position, Error> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(time), Some(seq), Some(bound), None) if bound == binding => {
            match (time.parse(), seq.parse()) {
                (Ok(event_time), Ok(seq)) => Ok(Position { event_time, seq }),
                _ => Err(Error::InvalidNextToken),
            }
        }
        _ => Err(Error::InvalidNextToken),
    }
}
