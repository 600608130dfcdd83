//! Tests of wildcard patterns, ARN segment matching and policy variables.

use crate::context::MapContext;
use crate::pattern::{ArnPattern, Fold, Pattern, Syntax};

const LIKE: Syntax = Syntax {
    wildcards: true,
    variables: true,
};

fn glob(pattern: &str, text: &str) -> bool {
    Pattern::compile(pattern, LIKE, Fold::Exact)
        .expect("a valid pattern")
        .matches(text, &MapContext::new())
}

#[test]
fn wildcards_match_like_a_shell_glob() {
    let cases = [
        ("*", "", true),
        ("*", "anything at all", true),
        ("", "", true),
        ("", "x", false),
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("a*", "a", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("a?c", "abbc", false),
        ("??", "é!", true),
        ("*b*b*", "abcbd", true),
        ("*b*b*", "abcd", false),
        ("*.txt", "notes.txt.bak", false),
        ("*.txt*", "notes.txt.bak", true),
        ("a**b", "ab", true),
        ("*?", "", false),
        ("*?", "x", true),
        ("aaa*aaa", "aaaaa", false),
        ("aaa*aaa", "aaaaaa", true),
        ("Key/*", "key/1", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob(pattern, text), expected, "{pattern:?} vs {text:?}");
    }
}

#[test]
fn folding_compares_without_case() {
    let action = Pattern::compile(
        "KMS:Generate*",
        Syntax {
            wildcards: true,
            variables: false,
        },
        Fold::Ascii,
    )
    .expect("valid");
    let context = MapContext::new();
    assert!(action.matches("kms:GenerateDataKey", &context));
    assert!(action.matches("Kms:GENERATEMAC", &context));
    assert!(!action.matches("kms:Encrypt", &context));
    let unicode = Pattern::compile("ÉTÉ", LIKE, Fold::Unicode).expect("valid");
    assert!(unicode.matches("été", &context));
    assert!(!unicode.matches("ete", &context));
}

#[test]
fn variables_substitute_literally_with_defaults_and_escapes() {
    let context = MapContext::new()
        .with("aws:username", "alice")
        .with("aws:PrincipalTag/team", "b*")
        .with("aws:TagKeys", "a")
        .with("aws:TagKeys", "b");
    let matches = |pattern: &str, text: &str| {
        Pattern::compile(pattern, LIKE, Fold::Exact)
            .expect("valid")
            .matches(text, &context)
    };
    assert!(matches("home/${aws:username}/*", "home/alice/notes"));
    assert!(matches("home/${AWS:UserName}/*", "home/alice/notes"));
    assert!(!matches("home/${aws:username}/*", "home/bob/notes"));
    // Substituted text is literal: the tag's `*` is not a wildcard.
    assert!(matches("${aws:PrincipalTag/team}", "b*"));
    assert!(!matches("${aws:PrincipalTag/team}", "blue"));
    // An absent key without a default matches nothing; with one, the default stands in.
    assert!(!matches("${aws:userid}", ""));
    assert!(matches("${aws:userid, 'nobody'}", "nobody"));
    assert!(matches("${aws:userid,'no, body'}", "no, body"));
    assert!(matches("${aws:username, 'nobody'}", "alice"));
    // A multi-valued key is not a variable.
    assert!(!matches("${aws:TagKeys}", "a"));
    assert!(matches("${aws:TagKeys, 'x'}", "x"));
    // Escapes stand for literal characters.
    assert!(matches("a${*}b", "a*b"));
    assert!(!matches("a${*}b", "axb"));
    assert!(matches("a${?}b", "a?b"));
    assert!(!matches("a${?}b", "axb"));
    assert!(matches("${$}{x}", "${x}"));
    // Many variables, past the inline buffer.
    let many = "${aws:username}${aws:username}${aws:username}${aws:username}${aws:username}";
    assert!(matches(many, "alicealicealicealicealice"));
    assert!(!matches(
        &format!("{many}${{aws:userid}}"),
        "alicealicealicealicealice"
    ));
}

#[test]
fn without_variables_dollar_braces_are_text() {
    let pattern = Pattern::compile(
        "${aws:username}",
        Syntax {
            wildcards: true,
            variables: false,
        },
        Fold::Exact,
    )
    .expect("valid");
    assert!(pattern.matches(
        "${aws:username}",
        &MapContext::new().with("aws:username", "alice")
    ));
}

#[test]
fn malformed_variables_are_refused() {
    let refused = [
        ("${aws:username", "not closed"),
        ("${}", "no valid key"),
        ("${ }", "no valid key"),
        ("${a b}", "no valid key"),
        ("${aws:username, default}", "single quotes"),
        ("${aws:username, 'a'b'}", "not closed"),
        ("${aws:username, '}", "not closed"),
    ];
    for (text, fragment) in refused {
        match Pattern::compile(text, LIKE, Fold::Exact) {
            Err(message) => assert!(message.contains(fragment), "{text}: {message}"),
            Ok(_) => panic!("{text} should be refused"),
        }
    }
}

#[test]
fn arn_wildcards_stay_inside_their_segment() {
    let context = MapContext::new().with("aws:username", "alice");
    let cases = [
        ("*", "arn:aws:kms:us-east-1:111122223333:key/k", true),
        ("*", "not an arn", true),
        (
            "arn:aws:kms:*:111122223333:key/*",
            "arn:aws:kms:eu-west-1:111122223333:key/k",
            true,
        ),
        (
            "arn:aws:kms:*:111122223333:key/*",
            "arn:aws:kms:eu-west-1:444455556666:key/k",
            false,
        ),
        (
            "arn:aws:kms:*:111122223333:*",
            "arn:aws:kms:us-east-1:111122223333:alias/a",
            true,
        ),
        // A `*` in the region segment cannot swallow the account.
        (
            "arn:aws:kms:*:key/k",
            "arn:aws:kms:us-east-1:111122223333:key/k",
            false,
        ),
        (
            "arn:aws:kms:us-east-?:*:*",
            "arn:aws:kms:us-east-2:111122223333:key/k",
            true,
        ),
        (
            "arn:aws:kms:us-east-?:*:*",
            "arn:aws:kms:us-east-10:111122223333:key/k",
            false,
        ),
        // The resource segment may contain colons.
        (
            "arn:aws:logs:*:*:log-group:app:*",
            "arn:aws:logs:us-east-1:1:log-group:app:stream",
            true,
        ),
        (
            "arn:aws:s3:::bucket/${aws:username}/*",
            "arn:aws:s3:::bucket/alice/x",
            true,
        ),
        (
            "arn:aws:s3:::bucket/${aws:username}/*",
            "arn:aws:s3:::bucket/bob/x",
            false,
        ),
        (
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::111122223333:user/Path/Alice",
            true,
        ),
        (
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::111122223333",
            false,
        ),
        // ARNs are case-sensitive.
        (
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:user/Alice",
            false,
        ),
        ("arn:*", "arn:aws:iam::111122223333:user/alice", true),
    ];
    for (pattern, text, expected) in cases {
        let compiled = ArnPattern::compile(pattern, LIKE).expect("valid");
        assert_eq!(
            compiled.matches(text, &context),
            expected,
            "{pattern} vs {text}"
        );
    }
}
