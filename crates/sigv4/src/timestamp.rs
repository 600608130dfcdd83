//! The fixed `yyyymmddThhmmssZ` timestamp format of `X-Amz-Date`, parsed and formatted by hand.
//!
//! The format never varies, so a few lines of calendar arithmetic replace a date library
//! and keep formatting on the stack.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of `yyyymmddThhmmssZ`.
pub(crate) const LEN: usize = 16;

/// Seconds since the Unix epoch, negative for times before it.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Parses `yyyymmddThhmmssZ` into seconds since the Unix epoch, rejecting impossible dates.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != LEN || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut acc = 0;
        for &byte in &bytes[range] {
            if !byte.is_ascii_digit() {
                return None;
            }
            acc = acc * 10 + i64::from(byte - b'0');
        }
        Some(acc)
    };
    let year = number(0..4)?;
    let month = number(4..6)?;
    let day = number(6..8)?;
    let hour = number(9..11)?;
    let minute = number(11..13)?;
    let second = number(13..15)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Formats seconds since the Unix epoch as `yyyymmddThhmmssZ`, into a stack buffer.
///
/// Years outside 0000..=9999 cannot be written in four digits and are clamped to that range.
pub(crate) fn format(seconds: i64) -> [u8; LEN] {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z.
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z.
    let seconds = seconds.clamp(MIN, MAX);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"00000000T000000Z";
    write_digits(&mut out[0..4], year);
    write_digits(&mut out[4..6], month);
    write_digits(&mut out[6..8], day);
    write_digits(&mut out[9..11], second_of_day / 3_600);
    write_digits(&mut out[11..13], second_of_day / 60 % 60);
    write_digits(&mut out[13..15], second_of_day % 60);
    out
}

/// Views a formatted timestamp as text.
pub(crate) fn as_str(formatted: &[u8; LEN]) -> &str {
    std::str::from_utf8(formatted).expect("a formatted timestamp is ASCII")
}

fn write_digits(out: &mut [u8], mut value: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + u8::try_from(value % 10).expect("a decimal digit fits in a byte");
        value /= 10;
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
