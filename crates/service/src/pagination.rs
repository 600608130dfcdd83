//! Pagination as AWS does it: `Limit` and `Marker` in, `NextMarker` and `Truncated` out.
//!
//! Markers are opaque to clients: the hex encoding of the last item returned, prefixed with a version
//! letter, so that a marker this server did not issue is recognised and refused with
//! `InvalidMarkerException`.

use crate::Error;

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The marker for the next page, present exactly when `truncated`.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// Whether more items follow.
    pub fn truncated(&self) -> bool {
        self.next_marker.is_some()
    }
}

/// Checks `limit` against the operation's range, applying its default when absent.
pub(crate) fn limit(limit: Option<i64>, default: usize, max: usize) -> Result<usize, Error> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(Error::Validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: \
             Member must have value between 1 and {max}"
        ))),
    }
}

/// Encodes the last item of a page as a marker.
pub(crate) fn encode(last: &str) -> String {
    let mut out = String::with_capacity(1 + last.len() * 2);
    out.push('m');
    for byte in last.bytes() {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Decodes a marker made by [`encode`].
pub(crate) fn decode(marker: &str) -> Result<String, Error> {
    let invalid = || {
        Error::InvalidMarker(format!(
            "Marker '{marker}' is not valid: pass the NextMarker of a previous response"
        ))
    };
    let Some(hex) = marker.strip_prefix('m') else {
        return Err(invalid());
    };
    if !hex.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
        bytes.push(u8::from_str_radix(text, 16).map_err(|_| invalid())?);
    }
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Builds a page from up to `limit + 1` items fetched after the marker.
pub(crate) fn page<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    if items.len() <= limit {
        return Page {
            items,
            next_marker: None,
        };
    }
    items.truncate(limit);
    let next_marker = items.last().map(|last| encode(&key(last)));
    Page { items, next_marker }
}
