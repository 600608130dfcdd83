//! Tests of the typed value parsers: numbers, dates, CIDR ranges and base64.

use std::net::IpAddr;

use crate::scalar::{Cidr, base64_equals, decode_base64, parse_address, parse_date, parse_number};

#[test]
fn numbers_are_plain_decimals() {
    let accepted = [
        ("7", 7.0),
        ("-7", -7.0),
        ("+7", 7.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("007", 7.0),
        ("1000.0", 1000.0),
    ];
    for (text, expected) in accepted {
        assert_eq!(parse_number(text), Some(expected), "{text}");
    }
    for text in [
        "", "-", ".", "1e3", "inf", "NaN", "1,5", " 1", "0x10", "1.2.3", "+-1",
    ] {
        assert_eq!(parse_number(text), None, "{text}");
    }
}

#[test]
fn dates_accept_iso_8601_and_epoch_seconds() {
    let midnight = parse_date("2026-01-31T00:00:00Z").expect("ISO 8601");
    let same = [
        "2026-01-31",
        "2026-01-31T00:00Z",
        "2026-01-31T00:00:00",
        "2026-01-31T00:00:00.000Z",
        "2026-01-31T01:00:00+01:00",
        "2026-01-31T01:00:00+0100",
        "2026-01-31T01:00:00+01",
        "2026-01-30T23:00:00-01:00",
        "2026-01-31t00:00:00z",
        "1769817600",
    ];
    for text in same {
        assert_eq!(parse_date(text), Some(midnight), "{text}");
    }
    assert!(parse_date("2026-01-31T00:00:00.001Z") > Some(midnight));
    assert!(parse_date("1769817599") < Some(midnight));
    assert_eq!(parse_date("0"), parse_date("1970-01-01T00:00:00Z"));
    assert_eq!(parse_date("-86400"), parse_date("1969-12-31"));
    assert_eq!(parse_date("2024-02-29"), parse_date("1709164800"));
    assert_eq!(parse_date("2000-03-01"), parse_date("951868800"));
}

#[test]
fn malformed_dates_are_refused() {
    let refused = [
        "",
        "yesterday",
        "2026-13-01",
        "2026-00-10",
        "2026-02-30",
        "2025-02-29",
        "2026-01-32",
        "2026-1-31",
        "2026-01-31T24:00:00Z",
        "2026-01-31T12:60:00Z",
        "2026-01-31T12",
        "2026-01-31T12:00:00.Z",
        "2026-01-31T12:00:00+25:00",
        "2026-01-31T12:00:00Zjunk",
        "2026-01-31 12:00:00",
        "1e9",
    ];
    for text in refused {
        assert_eq!(parse_date(text), None, "{text}");
    }
}

#[test]
fn cidr_ranges_contain_their_addresses() {
    let address = |text: &str| text.parse::<IpAddr>().expect("an address");
    let cases = [
        ("203.0.113.0/24", "203.0.113.7", true),
        ("203.0.113.0/24", "203.0.114.7", false),
        ("203.0.113.77/24", "203.0.113.1", true),
        ("203.0.113.7", "203.0.113.7", true),
        ("203.0.113.7", "203.0.113.8", false),
        ("0.0.0.0/0", "198.51.100.1", true),
        ("0.0.0.0/0", "2001:db8::1", false),
        ("2001:db8::/32", "2001:db8:1234::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("::/0", "2001:db9::1", true),
        (
            "2001:DB8:1234:5678::/64",
            "2001:db8:1234:5678:abcd::1",
            true,
        ),
        ("10.0.0.0/8", "2001:db8::1", false),
    ];
    for (range, candidate, expected) in cases {
        let cidr = Cidr::parse(range).expect("a range");
        assert_eq!(
            cidr.contains(address(candidate)),
            expected,
            "{range} ∋ {candidate}"
        );
    }
    for text in [
        "",
        "203.0.113.0/33",
        "2001:db8::/129",
        "203.0.113/24",
        "203.0.113.0/",
        "a.b.c.d",
        "203.0.113.0/+8",
    ] {
        assert_eq!(Cidr::parse(text), None, "{text}");
    }
}

#[test]
fn request_addresses_map_ipv4_in_ipv6() {
    assert_eq!(
        parse_address("203.0.113.5"),
        Some(IpAddr::from([203, 0, 113, 5]))
    );
    assert_eq!(
        parse_address("::ffff:203.0.113.5"),
        Some(IpAddr::from([203, 0, 113, 5]))
    );
    assert_eq!(
        parse_address("203.0.113.5/32"),
        Some(IpAddr::from([203, 0, 113, 5]))
    );
    assert_eq!(parse_address("localhost"), None);
}

#[test]
fn base64_decodes_and_compares_without_allocating() {
    assert_eq!(decode_base64("AAEC"), Some(vec![0, 1, 2]));
    assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
    assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
    assert_eq!(decode_base64(""), Some(Vec::new()));
    for text in ["a", "a===", "aGVsbG8!", "aGVs=bG8", "aGk=="] {
        assert_eq!(decode_base64(text), None, "{text}");
    }
    assert!(base64_equals("aGVsbG8=", b"hello"));
    assert!(!base64_equals("aGVsbG8=", b"hell"));
    assert!(!base64_equals("aGVsbA==", b"hello"));
    assert!(!base64_equals("not base64!", b"hello"));
}
