//! Typed condition values: numbers, dates, IP ranges and base64 blobs.
//!
//! Policy values are parsed once, when a policy is compiled, so a malformed one is refused with the policy.
//! Request values are parsed on every comparison, so these parsers do not allocate.

use std::net::IpAddr;

/// A point in time, in whole seconds since the Unix epoch plus nanoseconds, ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant {
    seconds: i64,
    nanos: u32,
}

/// An IPv4 or IPv6 network in CIDR form, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4 { network: u32, prefix: u32 },
    V6 { network: u128, prefix: u32 },
}

/// Parses a decimal number the way the numeric operators accept it: an optional sign, digits and an
/// optional fraction, but no exponent, no infinity and no NaN.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (unsigned, ""),
    };
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    match text.parse::<f64>() {
        Ok(number) if number.is_finite() => Some(number),
        _ => None,
    }
}

/// Parses a date as the date operators accept it: ISO 8601 (`2026-01-31`, `2026-01-31T12:00:00Z`,
/// `2026-01-31T12:00:00.250+01:00`) or whole seconds since the Unix epoch (`1769860800`).
pub(crate) fn parse_date(text: &str) -> Option<Instant> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let is_epoch = !unsigned.is_empty()
        && unsigned.len() <= 15
        && unsigned.bytes().all(|byte| byte.is_ascii_digit());
    if is_epoch {
        return match text.parse::<i64>() {
            Ok(seconds) => Some(Instant { seconds, nanos: 0 }),
            Err(_) => None,
        };
    }
    parse_iso8601(text.as_bytes())
}

fn parse_iso8601(bytes: &[u8]) -> Option<Instant> {
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut rest = &bytes[10..];
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
    let mut offset_seconds: i64 = 0;
    if !rest.is_empty() {
        if rest[0] != b'T' && rest[0] != b't' {
            return None;
        }
        rest = &rest[1..];
        if rest.len() < 5 || rest[2] != b':' {
            return None;
        }
        hour = digits(&rest[0..2])?;
        minute = digits(&rest[3..5])?;
        rest = &rest[5..];
        if rest.first() == Some(&b':') {
            if rest.len() < 3 {
                return None;
            }
            second = digits(&rest[1..3])?;
            rest = &rest[3..];
            if matches!(rest.first(), Some(b'.' | b',')) {
                let fraction_length = rest[1..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_digit())
                    .count();
                if fraction_length == 0 {
                    return None;
                }
                let mut scale = 100_000_000;
                for byte in &rest[1..1 + fraction_length.min(9)] {
                    nanos += u32::from(byte - b'0') * scale;
                    scale /= 10;
                }
                rest = &rest[1 + fraction_length..];
            }
        }
        offset_seconds = parse_zone(rest)?;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second)
            - offset_seconds;
    Some(Instant { seconds, nanos })
}

/// Parses the zone designator at the end of an ISO 8601 time: nothing (UTC), `Z`, `+hh`, `+hhmm` or `+hh:mm`.
fn parse_zone(rest: &[u8]) -> Option<i64> {
    let sign = match rest.first() {
        None => return Some(0),
        Some(b'Z' | b'z') if rest.len() == 1 => return Some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return None,
    };
    let zone = &rest[1..];
    let (hours, minutes) = match zone.len() {
        2 => (digits(zone)?, 0),
        4 => (digits(&zone[0..2])?, digits(&zone[2..4])?),
        5 if zone[2] == b':' => (digits(&zone[0..2])?, digits(&zone[3..5])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (i64::from(hours) * 3_600 + i64::from(minutes) * 60))
}

fn digits(bytes: &[u8]) -> Option<u32> {
    let mut value: u32 = 0;
    for byte in bytes {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(byte - b'0');
    }
    Some(value)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl Cidr {
    /// Parses `203.0.113.0/24`, `2001:db8::/32`, or a bare address, which stands for a single host.
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                let valid = !prefix.is_empty()
                    && prefix.len() <= 3
                    && prefix.bytes().all(|byte| byte.is_ascii_digit());
                if !valid {
                    return None;
                }
                (address, Some(digits(prefix.as_bytes())?))
            }
            None => (text, None),
        };
        match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(address) => {
                let prefix = prefix.unwrap_or(32);
                if prefix > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                Some(Cidr::V4 {
                    network: u32::from(address) & mask,
                    prefix,
                })
            }
            IpAddr::V6(address) => {
                let prefix = prefix.unwrap_or(128);
                if prefix > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                Some(Cidr::V6 {
                    network: u128::from(address) & mask,
                    prefix,
                })
            }
        }
    }

    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        match (*self, address) {
            (Cidr::V4 { network, prefix }, IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                u32::from(address) & mask == network
            }
            (Cidr::V6 { network, prefix }, IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                u128::from(address) & mask == network
            }
            _ => false,
        }
    }
}

/// Parses a request's IP address; a value in CIDR form counts as its address, and an IPv4-mapped IPv6
/// address counts as the IPv4 address it maps, so `::ffff:203.0.113.5` is inside `203.0.113.0/24`.
pub(crate) fn parse_address(text: &str) -> Option<IpAddr> {
    let address = match text.split_once('/') {
        Some((address, _)) => address,
        None => text,
    };
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => Some(IpAddr::V6(v6)),
        },
        v4 => Some(v4),
    }
}

/// Decodes standard base64 (padding optional) into bytes.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let complete = decode_base64_each(text, |byte| {
        bytes.push(byte);
        true
    });
    match complete {
        true => Some(bytes),
        false => None,
    }
}

/// Whether `text` is valid base64 for exactly `expected`, decoded without allocating.
pub(crate) fn base64_equals(text: &str, expected: &[u8]) -> bool {
    let mut position = 0;
    let complete = decode_base64_each(text, |byte| {
        let same = expected.get(position) == Some(&byte);
        position += 1;
        same
    });
    complete && position == expected.len()
}

/// Decodes `text`, handing each byte to `sink`; false when the text is not base64 or `sink` says stop.
fn decode_base64_each(text: &str, mut sink: impl FnMut(u8) -> bool) -> bool {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) || body.len() % 4 == 1 {
        return false;
    }
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in body.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            let decoded = (buffer >> bits) as u8;
            buffer &= (1 << bits) - 1;
            if !sink(decoded) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests;
