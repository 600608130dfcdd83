//! Unit tests: vectors from the AWS SigV4 test suite, canonicalisation details,
//! timestamp arithmetic, and every way a request can be rejected.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::{
    ParsedAuthorization, SigningKey, Sigv4Error, canonical, parse_authorization, sign, timestamp,
    verify,
};

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. \
     Consult the service documentation for details.";

/// A request as the server sees it: origin-form URI, headers, body.
#[derive(Clone)]
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Request {
    fn verify_at(&self, secret: &str, now: SystemTime) -> Result<(), Sigv4Error> {
        let auth = parse_authorization(&self.headers)?;
        let key = SigningKey::derive(secret.as_bytes(), auth.date, auth.region, auth.service);
        verify(
            &self.method,
            &self.uri,
            &self.headers,
            &self.body,
            &auth,
            &key,
            now,
        )
    }

    fn verify(&self) -> Result<(), Sigv4Error> {
        self.verify_at(SECRET, at("20160517T210035Z"))
    }

    fn authorization(&self) -> String {
        self.headers[AUTHORIZATION].to_str().unwrap().to_owned()
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
}

fn at(amz_date: &str) -> SystemTime {
    let seconds = timestamp::parse(amz_date).unwrap();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
}

/// A KMS Encrypt request signed by our own signer at 20160517T210035Z.
fn kms_request() -> Request {
    let method = Method::POST;
    let uri = Uri::from_static("/");
    let body = br#"{"KeyId":"alias/test","Plaintext":"aGVsbG8="}"#.to_vec();
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_static("localhost:4566"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        HeaderName::from_static("x-amz-target"),
        HeaderValue::from_static("TrentService.Encrypt"),
    );
    sign(
        &method,
        &uri,
        &mut headers,
        &body,
        ACCESS_KEY_ID,
        SECRET,
        "us-east-1",
        "kms",
        at("20160517T210035Z"),
    );
    Request {
        method,
        uri,
        headers,
        body,
    }
}

fn expect_incomplete(res: Result<(), Sigv4Error>, needle: &str) {
    match res {
        Err(Sigv4Error::IncompleteSignature(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected IncompleteSignature containing {needle:?}, got {other:?}"),
    }
}

fn expect_mismatch(res: Result<(), Sigv4Error>) {
    match res {
        Err(Sigv4Error::InvalidSignature(message)) => assert_eq!(message, MISMATCH),
        other => panic!("expected InvalidSignature, got {other:?}"),
    }
}

// The AWS SigV4 test suite.

/// One directory of `tests/data`, copied from the AWS signing test suite.
struct Vector {
    name: String,
    request: Request,
    secret: String,
    now: SystemTime,
    canonical_request: String,
    string_to_sign: String,
    signature: String,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn load_vectors() -> Vec<Vector> {
    let mut vectors = Vec::new();
    let mut dirs: Vec<_> = fs::read_dir(data_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let read = |file: &str| fs::read_to_string(dir.join(file)).unwrap();
        let context: serde_json::Value = serde_json::from_str(&read("context.json")).unwrap();
        let iso = context["timestamp"]
            .as_str()
            .unwrap()
            .replace(['-', ':'], "");
        vectors.push(Vector {
            name: dir.file_name().unwrap().to_str().unwrap().to_owned(),
            request: parse_http(&read("header-signed-request.txt")),
            secret: context["credentials"]["secret_access_key"]
                .as_str()
                .unwrap()
                .to_owned(),
            now: at(&iso),
            canonical_request: read("header-canonical-request.txt"),
            string_to_sign: read("header-string-to-sign.txt"),
            signature: read("header-signature.txt").trim().to_owned(),
        });
    }
    vectors
}

/// Parses the suite's `header-signed-request.txt`: request line, `Name:value` lines, blank line, body.
fn parse_http(text: &str) -> Request {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut parts = request_line.split(' ');
    let method = Method::from_bytes(parts.next().unwrap().as_bytes()).unwrap();
    let uri: Uri = parts.next().unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Request {
        method,
        uri,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn aws_test_suite_vectors() {
    let vectors = load_vectors();
    assert!(vectors.len() >= 20, "only {} vectors found", vectors.len());
    for vector in vectors {
        let name = &vector.name;
        let request = &vector.request;
        let auth = parse_authorization(&request.headers)
            .unwrap_or_else(|err| panic!("{name}: parse failed: {err}"));
        assert_eq!(auth.access_key_id, ACCESS_KEY_ID, "{name}");
        assert_eq!(auth.signature, vector.signature, "{name}");

        let mut creq = Vec::new();
        canonical::write_request(
            &mut creq,
            &request.method,
            &request.uri,
            &request.headers,
            &auth.signed_headers,
            &canonical::payload_hash(&request.body),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(creq.clone()).unwrap(),
            vector.canonical_request,
            "{name}: canonical request"
        );

        let creq_hash = canonical::hex(&crate::sha256(&creq));
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{}",
            auth.amz_date,
            auth.date,
            auth.region,
            auth.service,
            canonical::hex_str(&creq_hash),
        );
        assert_eq!(
            string_to_sign, vector.string_to_sign,
            "{name}: string to sign"
        );

        let key = SigningKey::derive(
            vector.secret.as_bytes(),
            auth.date,
            auth.region,
            auth.service,
        );
        verify(
            &request.method,
            &request.uri,
            &request.headers,
            &request.body,
            &auth,
            &key,
            vector.now,
        )
        .unwrap_or_else(|err| panic!("{name}: verify failed: {err}"));

        let mut tampered = request.clone();
        tampered.body.push(b'!');
        expect_mismatch(tampered.verify_at(&vector.secret, vector.now));
    }
}

#[test]
fn session_token_is_parsed() {
    let vector = load_vectors()
        .into_iter()
        .find(|vector| vector.name == "get-vanilla-with-session-token")
        .unwrap();
    let auth = parse_authorization(&vector.request.headers).unwrap();
    assert_eq!(
        auth.security_token,
        Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")
    );
    let request = kms_request();
    assert_eq!(
        parse_authorization(&request.headers)
            .unwrap()
            .security_token,
        None
    );
}

// Canonicalisation details.

fn canonical_path(path: &str) -> String {
    let uri: Uri = path.parse().unwrap();
    let mut out = Vec::new();
    canonical::write_request(
        &mut out,
        &Method::GET,
        &uri,
        &HeaderMap::new(),
        &[] as &[&str],
        &[b'0'; 64],
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    text.lines().nth(1).unwrap().to_owned()
}

fn canonical_query(path_and_query: &str) -> String {
    let uri: Uri = path_and_query.parse().unwrap();
    let mut out = Vec::new();
    canonical::write_request(
        &mut out,
        &Method::GET,
        &uri,
        &HeaderMap::new(),
        &[] as &[&str],
        &[b'0'; 64],
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    text.lines().nth(2).unwrap().to_owned()
}

#[test]
fn path_is_normalised_and_double_encoded() {
    let cases = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("//example//", "/example/"),
        ("/example/..", "/"),
        ("/example1/example2/../..", "/"),
        ("/./", "/"),
        ("/a/./b/../c", "/a/c"),
        ("/a/.", "/a/"),
        ("/a/b/..", "/a/"),
        ("/../a", "/a"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a..b/c", "/a..b/c"),
        ("/-._~AZaz09", "/-._~AZaz09"),
        ("/example%20space/", "/example%2520space/"),
        (
            "/test/@connections/JBDvjfGEIAMCERw%3D",
            "/test/%40connections/JBDvjfGEIAMCERw%253D",
        ),
        (
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations",
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A892717189312%253Afunction%253Amy-rusty-fun/invocations",
        ),
        ("/a+b=c;d", "/a%2Bb%3Dc%3Bd"),
    ];
    for (path, expected) in cases {
        assert_eq!(canonical_path(path), expected, "path {path}");
    }
}

#[test]
fn query_is_decoded_sorted_and_reencoded() {
    let cases = [
        ("/", ""),
        ("/?", ""),
        (
            "/?Param2=value2&Param1=value1",
            "Param1=value1&Param2=value2",
        ),
        ("/?b=2&a=3&a=1", "a=1&a=3&b=2"),
        ("/?flag", "flag="),
        ("/?flag=", "flag="),
        ("/?&&a=1&&", "a=1"),
        ("/?a=b=c", "a=b%3Dc"),
        ("/?a+b=c+d", "a%20b=c%20d"),
        ("/?a=%2b%2B", "a=%2B%2B"),
        ("/?a=%7e%41", "a=~A"),
        ("/?a=%zz&b=%", "a=%25zz&b=%25"),
        (
            "/?%E1%88%B4=Value1&Param=Value2",
            "%E1%88%B4=Value1&Param=Value2",
        ),
        ("/?Z=1&a=1&_=1", "Z=1&_=1&a=1"),
        ("/?a=:@!$'()*,;", "a=%3A%40%21%24%27%28%29%2A%2C%3B"),
    ];
    for (uri, expected) in cases {
        assert_eq!(canonical_query(uri), expected, "query {uri}");
    }
}

#[test]
fn header_values_are_trimmed_and_joined() {
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_static("example.com"));
    headers.append("x-multi", HeaderValue::from_static("  a   b  "));
    headers.append("x-multi", HeaderValue::from_static("c"));
    headers.append("x-multi", HeaderValue::from_static(""));
    headers.insert("x-tab", HeaderValue::from_static("a\t\tb"));
    let mut out = Vec::new();
    canonical::write_request(
        &mut out,
        &Method::GET,
        &Uri::from_static("/"),
        &headers,
        &["host", "x-multi", "x-tab"],
        &[b'0'; 64],
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("\nhost:example.com\nx-multi:a b,c,\nx-tab:a\t\tb\n\nhost;x-multi;x-tab\n"),
        "{text:?}"
    );
}

#[test]
fn hashing_large_pieces_matches_the_plain_canonical_request() {
    let long_value = "v ".repeat(400);
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_static("example.com"));
    headers.insert("x-long", HeaderValue::from_str(&long_value).unwrap());
    let uri: Uri = format!("/{}?{}=1", "p".repeat(300), "q".repeat(300))
        .parse()
        .unwrap();
    let signed = ["host", "x-long"];
    let payload = canonical::payload_hash(b"body");
    let mut plain = Vec::new();
    canonical::write_request(&mut plain, &Method::PUT, &uri, &headers, &signed, &payload).unwrap();
    let streamed =
        canonical::hash_request(&Method::PUT, &uri, &headers, &signed, &payload).unwrap();
    assert_eq!(streamed, canonical::hex(&crate::sha256(&plain)));
}

#[test]
fn signing_key_matches_the_documented_example() {
    // The example from the AWS General Reference, "Deriving a signing key".
    let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let bytes = crate::derive_bytes(secret, "20120215", "us-east-1", "iam");
    assert_eq!(
        canonical::hex_str(&canonical::hex(bytes.as_ref())),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
    let key = SigningKey::derive(secret, "20120215", "us-east-1", "iam");
    assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
}

// Timestamps.

#[test]
fn timestamps_parse_and_format() {
    assert_eq!(timestamp::parse("19700101T000000Z"), Some(0));
    assert_eq!(timestamp::parse("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(timestamp::parse("20000229T235959Z"), Some(951_868_799));
    assert_eq!(timestamp::parse("19691231T235959Z"), Some(-1));
    for bad in [
        "",
        "20150830T123600",
        "20150830 123600Z",
        "2015-08-30T12:36:00Z",
        "20150830T123600z",
        "20150230T000000Z",
        "19000229T000000Z",
        "20151301T000000Z",
        "20150800T000000Z",
        "20150830T240000Z",
        "20150830T126000Z",
        "20150830T123660Z",
        "2015083aT123600Z",
        "+2015830T123600Z",
    ] {
        assert_eq!(timestamp::parse(bad), None, "{bad:?}");
    }
    assert_eq!(timestamp::as_str(&timestamp::format(0)), "19700101T000000Z");
    assert_eq!(
        timestamp::as_str(&timestamp::format(1_440_938_160)),
        "20150830T123600Z"
    );
    assert_eq!(
        timestamp::as_str(&timestamp::format(-1)),
        "19691231T235959Z"
    );
    assert_eq!(
        timestamp::as_str(&timestamp::format(i64::MAX)),
        "99991231T235959Z"
    );
    assert_eq!(
        timestamp::as_str(&timestamp::format(i64::MIN)),
        "00000101T000000Z"
    );

    // A deterministic walk over four centuries, including leap days.
    let mut seconds: i64 = -2_208_988_800; // 1900-01-01.
    while seconds < 10_413_792_000 {
        // 2300-01-01.
        let formatted = timestamp::format(seconds);
        assert_eq!(
            timestamp::parse(timestamp::as_str(&formatted)),
            Some(seconds)
        );
        seconds += 86_400 * 13 + 3_677;
    }
    assert_eq!(
        timestamp::unix_seconds(UNIX_EPOCH - Duration::from_secs(5)),
        -5
    );
}

// Round trips through our own signer.

#[test]
fn own_signature_verifies() {
    let request = kms_request();
    request.verify().unwrap();
    let auth = parse_authorization(&request.headers).unwrap();
    assert_eq!(
        auth.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-target"]
    );
    assert_eq!(auth.date, "20160517");
    assert_eq!(auth.amz_date, "20160517T210035Z");
    assert_eq!(auth.region, "us-east-1");
    assert_eq!(auth.service, "kms");
    assert!(
        request
            .authorization()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20160517/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=")
    );
}

#[test]
fn sign_adds_host_from_an_absolute_uri() {
    for (uri, host) in [
        ("http://localhost:4566/", "localhost:4566"),
        ("http://localhost:80/", "localhost"),
        ("https://kms.example.com:443/", "kms.example.com"),
        ("https://kms.example.com:8443/", "kms.example.com:8443"),
    ] {
        let uri: Uri = uri.parse().unwrap();
        let mut headers = HeaderMap::new();
        sign(
            &Method::GET,
            &uri,
            &mut headers,
            b"",
            ACCESS_KEY_ID,
            SECRET,
            "eu-west-1",
            "kms",
            at("20160517T210035Z"),
        );
        assert_eq!(headers[HOST], host);
        let request = Request {
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers,
            body: Vec::new(),
        };
        request.verify().unwrap();
        assert_eq!(
            parse_authorization(&request.headers)
                .unwrap()
                .signed_headers,
            ["host", "x-amz-date"]
        );
    }
}

#[test]
fn host_falls_back_to_the_uri_authority() {
    // HTTP/2 requests carry `:authority` instead of `Host`; hyper puts it in the URI.
    let mut request = kms_request();
    request.headers.remove(HOST);
    request.uri = Uri::from_static("http://localhost:4566/");
    request.verify().unwrap();
    request.uri = Uri::from_static("/");
    expect_incomplete(request.verify(), "'host'");
}

#[test]
fn header_names_are_case_insensitive() {
    let mut request = kms_request();
    let mut shouty = HeaderMap::new();
    for (name, value) in &request.headers {
        let upper = name.as_str().to_ascii_uppercase();
        shouty.append(
            HeaderName::from_bytes(upper.as_bytes()).unwrap(),
            value.clone(),
        );
    }
    request.headers = shouty;
    request.verify().unwrap();

    // Extra spaces in a value do not change its canonical form.
    request.set("Content-Type", "  application/x-amz-json-1.1  ");
    request.verify().unwrap();
}

#[test]
fn unsigned_headers_may_change() {
    let mut request = kms_request();
    request.set("user-agent", "aws-cli/2");
    request.set("x-amzn-trace-id", "Root=1-5759e988");
    request.verify().unwrap();
}

// Every way to be rejected.

#[test]
fn missing_authorization_is_a_missing_token() {
    let mut request = kms_request();
    request.headers.remove(AUTHORIZATION);
    assert!(matches!(
        request.verify(),
        Err(Sigv4Error::MissingAuthenticationToken)
    ));
    assert_eq!(
        Sigv4Error::MissingAuthenticationToken.to_string(),
        "Missing Authentication Token"
    );
}

#[test]
fn each_missing_component_is_named() {
    let request = kms_request();
    let authorization = request.authorization();
    let (algorithm, rest) = authorization.split_once(' ').unwrap();
    let components: Vec<&str> = rest.split(", ").collect();
    for (index, name) in ["Credential", "SignedHeaders", "Signature"]
        .iter()
        .enumerate()
    {
        let mut kept = components.clone();
        kept.remove(index);
        let header = format!("{algorithm} {}", kept.join(", "));
        let mut broken = request.clone();
        broken.set("authorization", &header);
        expect_incomplete(
            broken.verify(),
            &format!("Authorization header requires '{name}' parameter. Authorization={header}"),
        );
    }

    let mut bare = request.clone();
    bare.set("authorization", "AWS4-HMAC-SHA256");
    expect_incomplete(
        bare.verify(),
        "Authorization header requires 'Credential' parameter. \
         Authorization header requires 'SignedHeaders' parameter. \
         Authorization header requires 'Signature' parameter. \
         Authorization=AWS4-HMAC-SHA256",
    );
}

#[test]
fn malformed_authorization_headers_are_incomplete() {
    let request = kms_request();
    let authorization = request.authorization();
    let signature = authorization.rsplit_once('=').unwrap().1.to_owned();
    let good_credential = "Credential=AKIDEXAMPLE/20160517/us-east-1/kms/aws4_request";
    let signed = "SignedHeaders=content-type;host;x-amz-date;x-amz-target";
    let cases = [
        (
            format!("AWS4-HMAC-SHA512 {good_credential}, {signed}, Signature={signature}"),
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'",
        ),
        ("Bearer abc".to_owned(), "Unsupported AWS 'algorithm'"),
        (
            format!("AWS4-HMAC-SHA256 {good_credential}, {signed}, Signature"),
            "'Signature' not a valid key=value pair (missing equal-sign)",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {good_credential}, {good_credential}, {signed}, Signature={signature}"
            ),
            "more than one 'Credential' parameter",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20160517/us-east-1/kms, {signed}, Signature={signature}"
            ),
            "Credential must have exactly 5 slash-delimited elements",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20160517/us-east-1/kms/aws4_request/x, {signed}, Signature={signature}"
            ),
            "Credential must have exactly 5 slash-delimited elements",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20160517/us-east-1/kms/aws5_request, {signed}, Signature={signature}"
            ),
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=/20160517/us-east-1/kms/aws4_request, {signed}, Signature={signature}"
            ),
            "must not have empty elements",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2016051/us-east-1/kms/aws4_request, {signed}, Signature={signature}"
            ),
            "Credential date must be in the format yyyyMMdd",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {good_credential}, SignedHeaders=content-type;;host, Signature={signature}"
            ),
            "SignedHeaders must be a non-empty list",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {good_credential}, SignedHeaders=content-type;x-amz-date;x-amz-target, Signature={signature}"
            ),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {good_credential}, SignedHeaders=host;x-amz-date;x-missing, Signature={signature}"
            ),
            "The request does not contain the header 'x-missing', which is listed in SignedHeaders.",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {good_credential}, {signed}, Signature={}",
                signature.to_uppercase()
            ),
            "Signature must be 64 lowercase hexadecimal characters",
        ),
        (
            format!("AWS4-HMAC-SHA256 {good_credential}, {signed}, Signature=abc"),
            "Signature must be 64 lowercase hexadecimal characters",
        ),
    ];
    for (header, needle) in cases {
        let mut broken = request.clone();
        broken.set("authorization", &header);
        expect_incomplete(broken.verify(), needle);
    }

    // Components may be separated by a bare comma, as some clients do.
    let mut compact = request.clone();
    compact.set("authorization", &authorization.replace(", ", ","));
    compact.verify().unwrap();

    let mut twice = request.clone();
    twice.headers.append(
        AUTHORIZATION,
        HeaderValue::from_str(&authorization).unwrap(),
    );
    expect_incomplete(twice.verify(), "Only one Authorization header");
}

#[test]
fn amz_date_must_be_present_and_well_formed() {
    let mut request = kms_request();
    request.headers.remove("x-amz-date");
    expect_incomplete(
        request.verify(),
        "Authorization header requires existence of a 'X-Amz-Date' header. Authorization=AWS4-HMAC-SHA256 ",
    );

    let mut request = kms_request();
    request.set("X-Amz-Date", "2016-05-17T21:00:35Z");
    expect_incomplete(
        request.verify(),
        "X-Amz-Date must be in the ISO 8601 basic format",
    );

    let mut request = kms_request();
    request.set("X-Amz-Date", "20160532T210035Z");
    expect_incomplete(request.verify(), "got '20160532T210035Z'");

    let mut request = kms_request();
    request
        .headers
        .append("x-amz-date", HeaderValue::from_static("20160517T210035Z"));
    expect_incomplete(request.verify(), "Only one 'x-amz-date' header");
}

#[test]
fn scope_date_must_match_amz_date() {
    let mut request = kms_request();
    request.set("X-Amz-Date", "20160518T000000Z");
    match request.verify_at(SECRET, at("20160518T000000Z")) {
        Err(Sigv4Error::InvalidSignature(message)) => assert_eq!(
            message,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20160517' != '20160518', from '20160518T000000Z'."
        ),
        other => panic!("expected InvalidSignature, got {other:?}"),
    }
}

#[test]
fn tampering_is_detected() {
    let mut body = kms_request();
    body.body[10] ^= 1;
    expect_mismatch(body.verify());

    let mut empty_body = kms_request();
    empty_body.body.clear();
    expect_mismatch(empty_body.verify());

    let mut target = kms_request();
    target.set("X-Amz-Target", "TrentService.Decrypt");
    expect_mismatch(target.verify());

    let mut host = kms_request();
    host.set("Host", "localhost:4567");
    expect_mismatch(host.verify());

    let mut method = kms_request();
    method.method = Method::PUT;
    expect_mismatch(method.verify());

    let mut path = kms_request();
    path.uri = Uri::from_static("/x");
    expect_mismatch(path.verify());

    let mut query = kms_request();
    query.uri = Uri::from_static("/?a=1");
    expect_mismatch(query.verify());

    let mut duplicated = kms_request();
    duplicated.headers.append(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Encrypt"),
    );
    expect_mismatch(duplicated.verify());

    let mut signature = kms_request();
    let authorization = signature.authorization();
    let last = authorization.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let header = format!("{}{flipped}", &authorization[..authorization.len() - 1]);
    signature.set("authorization", &header);
    expect_mismatch(signature.verify());

    let mut region = kms_request();
    let header = region.authorization().replace("/us-east-1/", "/us-west-2/");
    region.set("authorization", &header);
    expect_mismatch(region.verify());

    let request = kms_request();
    expect_mismatch(request.verify_at("not-the-secret", at("20160517T210035Z")));
}

#[test]
fn expiry_is_five_minutes_either_way() {
    let request = kms_request(); // Signed at 20160517T210035Z.
    request.verify_at(SECRET, at("20160517T210535Z")).unwrap();
    request.verify_at(SECRET, at("20160517T205535Z")).unwrap();

    match request.verify_at(SECRET, at("20160517T210536Z")) {
        Err(Sigv4Error::SignatureExpired(message)) => assert_eq!(
            message,
            "Signature expired: 20160517T210035Z is now earlier than 20160517T210036Z \
             (20160517T210536Z - 5 min.)"
        ),
        other => panic!("expected SignatureExpired, got {other:?}"),
    }
    match request.verify_at(SECRET, at("20160517T205534Z")) {
        Err(Sigv4Error::SignatureExpired(message)) => assert_eq!(
            message,
            "Signature not yet current: 20160517T210035Z is still later than 20160517T210034Z \
             (20160517T205534Z + 5 min.)"
        ),
        other => panic!("expected SignatureExpired, got {other:?}"),
    }

    // The example from the AWS documentation.
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_static("localhost"));
    sign(
        &Method::GET,
        &Uri::from_static("/"),
        &mut headers,
        b"",
        ACCESS_KEY_ID,
        SECRET,
        "us-east-1",
        "kms",
        at("20160517T204035Z"),
    );
    let old = Request {
        method: Method::GET,
        uri: Uri::from_static("/"),
        headers,
        body: Vec::new(),
    };
    match old.verify_at(SECRET, at("20160517T210035Z")) {
        Err(Sigv4Error::SignatureExpired(message)) => assert_eq!(
            message,
            "Signature expired: 20160517T204035Z is now earlier than 20160517T205535Z \
             (20160517T210035Z - 5 min.)"
        ),
        other => panic!("expected SignatureExpired, got {other:?}"),
    }
}

#[test]
fn verify_repeats_the_parse_checks() {
    // `ParsedAuthorization` is public, so `verify` must not trust a hand-built one.
    let request = kms_request();
    let auth = parse_authorization(&request.headers).unwrap();
    let key = SigningKey::derive(SECRET.as_bytes(), auth.date, auth.region, auth.service);
    let now = at("20160517T210035Z");
    let run = |auth: &ParsedAuthorization| {
        verify(
            &request.method,
            &request.uri,
            &request.headers,
            &request.body,
            auth,
            &key,
            now,
        )
    };
    run(&auth).unwrap();

    let mut no_host = auth.clone();
    no_host.signed_headers.retain(|name| *name != "host");
    expect_incomplete(run(&no_host), "'Host' or ':authority'");

    let mut absent = auth.clone();
    absent.signed_headers.push("x-absent");
    expect_incomplete(run(&absent), "'x-absent'");

    let mut bad_date = auth.clone();
    bad_date.amz_date = "yesterday";
    expect_incomplete(run(&bad_date), "ISO 8601");

    let mut other_day = auth.clone();
    other_day.date = "20160516";
    assert!(matches!(
        run(&other_day),
        Err(Sigv4Error::InvalidSignature(_))
    ));

    let mut short = auth.clone();
    short.signature = &short.signature[..10];
    expect_mismatch(run(&short));
}
