//! Unit tests of the Query protocol's form parsing and XML rendering.

use crate::query::{Params, Xml, escape, form_decode, url_encode};

#[test]
fn forms_decode_plus_and_percent_escapes() {
    assert_eq!(form_decode(b"a+b%2Fc%3D").ok().as_deref(), Some("a b/c="));
    assert!(form_decode(b"%zz").is_err());
    assert!(form_decode(b"%e2%28").is_err(), "not UTF-8");
}

#[test]
fn lists_and_tags_come_back_in_index_order() {
    let params = Params::parse(
        b"Action=TagUser&Tags.member.2.Key=b&Tags.member.1.Value=one&Tags.member.1.Key=a\
          &Tags.member.2.Value=&TagKeys.member.10=z&TagKeys.member.2=y&PolicyArns.member.1.arn=arn%3Ax",
    )
    .ok()
    .expect("a form");
    let tags: Vec<(String, String)> = params
        .tags("Tags")
        .into_iter()
        .map(|tag| (tag.key, tag.value))
        .collect();
    assert_eq!(
        tags,
        [
            ("a".to_owned(), "one".to_owned()),
            ("b".to_owned(), String::new())
        ]
    );
    assert_eq!(params.list("TagKeys"), ["y", "z"]);
    assert_eq!(params.list_of("PolicyArns", "arn"), ["arn:x"]);
    assert_eq!(params.optional("Action"), Some("TagUser"));
    assert!(params.required("UserName").is_err());
}

#[test]
fn text_is_escaped_and_documents_are_url_encoded() {
    let mut xml = Xml::new();
    xml.wrap("A", |xml| xml.field("B", "<&'\">"));
    assert_eq!(xml.0, "<A><B>&lt;&amp;&apos;&quot;&gt;</B></A>");
    assert_eq!(escape("plain"), "plain");
    assert_eq!(
        url_encode(r#"{"Version": "2012-10-17"}"#),
        "%7B%22Version%22%3A%20%222012-10-17%22%7D"
    );
}
