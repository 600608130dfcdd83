//! The SigV4 canonical request, streamed into a hash instead of built as a string.
//!
//! The layout is
//! `METHOD \n PATH \n QUERY \n (name:value \n)* \n signed;headers \n payload-hash`,
//! with the path and query canonicalised as AWS does for services other than S3.
//! Tests write the same bytes into a `Vec<u8>` to compare them with the AWS test suite.

use aws_lc_rs::digest;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::Sigv4Error;

/// A SHA-256 digest or HMAC tag as 64 lowercase hexadecimal digits.
pub(crate) type HexDigest = [u8; 64];

/// Where canonical bytes go: a hash context in production, a buffer in tests.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A SHA-256 context behind a small stack buffer.
///
/// Canonicalisation emits many short pieces, and each `update` crosses into aws-lc,
/// so pieces are gathered first.
struct BufferedHash {
    ctx: digest::Context,
    buf: [u8; 256],
    len: usize,
}

impl BufferedHash {
    fn new() -> BufferedHash {
        BufferedHash {
            ctx: digest::Context::new(&digest::SHA256),
            buf: [0; 256],
            len: 0,
        }
    }

    fn finish(mut self) -> HexDigest {
        self.ctx.update(&self.buf[..self.len]);
        hex(self.ctx.finish().as_ref())
    }
}

impl Sink for BufferedHash {
    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() > self.buf.len() - self.len {
            self.ctx.update(&self.buf[..self.len]);
            self.len = 0;
        }
        if bytes.len() >= self.buf.len() {
            self.ctx.update(bytes);
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// Hashes the canonical request and returns the digest in hex, as the string to sign needs it.
pub(crate) fn hash_request<S: AsRef<str>>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[S],
    payload_hash: &HexDigest,
) -> Result<HexDigest, Sigv4Error> {
    let mut sink = BufferedHash::new();
    write_request(
        &mut sink,
        method,
        uri,
        headers,
        signed_headers,
        payload_hash,
    )?;
    Ok(sink.finish())
}

/// Writes the canonical request into `sink`.
pub(crate) fn write_request<K: Sink, S: AsRef<str>>(
    sink: &mut K,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[S],
    payload_hash: &HexDigest,
) -> Result<(), Sigv4Error> {
    sink.put(method.as_str().as_bytes());
    sink.put(b"\n");
    write_path(sink, uri.path());
    sink.put(b"\n");
    write_query(sink, uri.query().unwrap_or(""));
    sink.put(b"\n");
    for name in signed_headers {
        let name = name.as_ref();
        sink.put(name.as_bytes());
        sink.put(b":");
        write_header_values(sink, name, headers, uri)?;
        sink.put(b"\n");
    }
    sink.put(b"\n");
    for (index, name) in signed_headers.iter().enumerate() {
        if index > 0 {
            sink.put(b";");
        }
        sink.put(name.as_ref().as_bytes());
    }
    sink.put(b"\n");
    sink.put(payload_hash);
    Ok(())
}

/// The hex SHA-256 of the body, the last line of the canonical request.
pub(crate) fn payload_hash(body: &[u8]) -> HexDigest {
    hex(&crate::sha256(body))
}

/// The `Host` value a client derives from an absolute URI: the authority, without a default port.
pub(crate) fn host_from_uri(uri: &Uri) -> Option<HeaderValue> {
    let host = host_text(uri)?;
    HeaderValue::from_str(host).ok()
}

/// Encodes bytes as lowercase hexadecimal into a stack buffer; the input is a 32-byte digest.
pub(crate) fn hex(bytes: &[u8]) -> HexDigest {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    debug_assert_eq!(bytes.len(), 32, "only SHA-256 digests are hex-encoded");
    let mut out = [b'0'; 64];
    for (index, byte) in bytes.iter().take(32).enumerate() {
        out[2 * index] = DIGITS[usize::from(byte >> 4)];
        out[2 * index + 1] = DIGITS[usize::from(byte & 0x0f)];
    }
    out
}

/// Views a hex digest as text.
pub(crate) fn hex_str(digest: &HexDigest) -> &str {
    std::str::from_utf8(digest).expect("hex digits are ASCII")
}

fn host_text(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?;
    match (uri.scheme_str(), authority.port_u16()) {
        (Some("http"), Some(80)) | (Some("https"), Some(443)) => Some(authority.host()),
        _ => Some(authority.as_str()),
    }
}

/// Writes the trimmed values of one signed header, joined with commas.
fn write_header_values<K: Sink>(
    sink: &mut K,
    name: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), Sigv4Error> {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        // HTTP/2 carries the host in the `:authority` pseudo-header, which ends up in the URI.
        if name == HOST.as_str()
            && let Some(host) = host_text(uri)
        {
            write_trimmed(sink, host.as_bytes());
            return Ok(());
        }
        return Err(Sigv4Error::IncompleteSignature(format!(
            "The request does not contain the header '{name}', which is listed in SignedHeaders."
        )));
    }
    for (index, value) in values.enumerate() {
        if index > 0 {
            sink.put(b",");
        }
        write_trimmed(sink, value.as_bytes());
    }
    Ok(())
}

/// Writes a header value without leading or trailing spaces and with runs of spaces collapsed.
///
/// Only the space character counts, as in the AWS SDKs; tabs are kept.
fn write_trimmed<K: Sink>(sink: &mut K, value: &[u8]) {
    let mut rest = trim_spaces(value);
    while let Some(space) = rest.iter().position(|&byte| byte == b' ') {
        sink.put(&rest[..=space]);
        rest = trim_spaces(&rest[space..]);
    }
    sink.put(rest);
}

fn trim_spaces(mut value: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' '] = value {
        value = rest;
    }
    value
}

/// Writes the canonical URI: dot and empty segments removed, then every byte except
/// unreserved characters and `/` percent-encoded.
///
/// The path on the wire is already percent-encoded, so encoding it again turns `%` into `%25`:
/// this is the "double encoding" AWS uses for every service except S3.
fn write_path<K: Sink>(sink: &mut K, path: &str) {
    // A path with no empty, `.` or `..` segment is already normalised.
    if path.starts_with('/') && !path.contains("//") && !path.contains("/.") {
        write_encoded(sink, path.as_bytes(), true);
        return;
    }
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    sink.put(b"/");
    for (index, segment) in segments.iter().enumerate() {
        if index > 0 {
            sink.put(b"/");
        }
        write_encoded(sink, segment.as_bytes(), true);
    }
    let ends_with_slash = ["/", "/.", "/.."]
        .iter()
        .any(|suffix| path.ends_with(suffix));
    if ends_with_slash && !segments.is_empty() {
        sink.put(b"/");
    }
}

/// Writes the canonical query string: parameters decoded, re-encoded with the SigV4 rules,
/// sorted by key and then value, and joined with `&`.
///
/// Decoding follows `application/x-www-form-urlencoded`, so `+` is a space,
/// as in the official Rust and Go SDKs.
/// A parameter without `=` gets an empty value.
fn write_query<K: Sink>(sink: &mut K, query: &str) {
    if query.is_empty() {
        return;
    }
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for param in query.split('&') {
        if param.is_empty() {
            continue;
        }
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key, value),
            None => (param, ""),
        };
        params.push((reencode(key), reencode(value)));
    }
    params.sort_unstable();
    for (index, (key, value)) in params.iter().enumerate() {
        if index > 0 {
            sink.put(b"&");
        }
        sink.put(key);
        sink.put(b"=");
        sink.put(value);
    }
}

/// Decodes one form-encoded query component and encodes it again with the SigV4 rules.
fn reencode(component: &str) -> Vec<u8> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = match bytes[index] {
            b'+' => b' ',
            b'%' => match (
                bytes.get(index + 1).and_then(|&byte| hex_value(byte)),
                bytes.get(index + 2).and_then(|&byte| hex_value(byte)),
            ) {
                (Some(high), Some(low)) => {
                    index += 2;
                    high << 4 | low
                }
                // A stray `%` stands for itself, as in form decoding.
                _ => b'%',
            },
            byte => byte,
        };
        index += 1;
        write_encoded(&mut out, &[decoded], false);
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes every byte except unreserved characters (and `/` when `keep_slash`),
/// writing runs of safe bytes in one piece.
fn write_encoded<K: Sink>(sink: &mut K, bytes: &[u8], keep_slash: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let is_safe = |byte: u8| {
        byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && byte == b'/')
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        let safe = rest
            .iter()
            .position(|&byte| !is_safe(byte))
            .unwrap_or(rest.len());
        sink.put(&rest[..safe]);
        match rest.get(safe) {
            Some(&byte) => {
                sink.put(&[
                    b'%',
                    DIGITS[usize::from(byte >> 4)],
                    DIGITS[usize::from(byte & 0x0f)],
                ]);
                rest = &rest[safe + 1..];
            }
            None => rest = &[],
        }
    }
}
