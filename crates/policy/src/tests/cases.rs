//! The evaluation table: policies, requests and the outcomes they must produce.
//!
//! `CONDITIONS` checks one Condition element at a time, inside an identity policy's Allow statement and
//! again inside a Deny statement, so each row tests both effects.
//! `STATEMENTS` checks whole policies: principals, actions, resources, variables, kinds and deny precedence.

use crate::{MapContext, Outcome, Policy, PolicyKind, Principal, Request};

type Entries = &'static [(&'static str, &'static [&'static str])];

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const EU_KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const SECRET_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/secret-1";
const FOREIGN_KEY: &str = "arn:aws:kms:us-east-1:444455556666:key/1234abcd";
const ROLE: &str = "arn:aws:iam::111122223333:role/admin";

const ROOT: Principal<'static> = iam("arn:aws:iam::111122223333:root", "111122223333");
const ALICE: Principal<'static> = iam("arn:aws:iam::111122223333:user/alice", "111122223333");
const BOB: Principal<'static> = iam("arn:aws:iam::111122223333:user/bob", "111122223333");
const ROLE_ITSELF: Principal<'static> = iam(ROLE, "111122223333");
const SESSION: Principal<'static> = Principal {
    arn: "arn:aws:sts::111122223333:assumed-role/admin/alice-session",
    account: "111122223333",
    role_arn: Some(ROLE),
    service: None,
};
const OTHER_SESSION: Principal<'static> = Principal {
    arn: "arn:aws:sts::111122223333:assumed-role/admin/bob-session",
    account: "111122223333",
    role_arn: Some(ROLE),
    service: None,
};
const PATH_SESSION: Principal<'static> = Principal {
    arn: "arn:aws:sts::111122223333:assumed-role/deployer/ci",
    account: "111122223333",
    role_arn: Some("arn:aws:iam::111122223333:role/ops/deployer"),
    service: None,
};
const OUTSIDER: Principal<'static> = iam("arn:aws:iam::444455556666:user/mallory", "444455556666");
const OUTSIDE_ROOT: Principal<'static> = iam("arn:aws:iam::444455556666:root", "444455556666");
const S3: Principal<'static> = service("s3.amazonaws.com");
const S3_SHOUTING: Principal<'static> = service("S3.AMAZONAWS.COM");
const LOGS: Principal<'static> = service("logs.amazonaws.com");
const EC2: Principal<'static> = service("ec2.amazonaws.com");
const WEB_IDENTITY: Principal<'static> = iam("cognito-identity.amazonaws.com", "");

const fn iam(arn: &'static str, account: &'static str) -> Principal<'static> {
    Principal {
        arn,
        account,
        role_arn: None,
        service: None,
    }
}

const fn service(name: &'static str) -> Principal<'static> {
    Principal {
        arn: "",
        account: "",
        role_arn: None,
        service: Some(name),
    }
}

/// One Condition element, a request context, and whether the condition holds.
#[rustfmt::skip]
const CONDITIONS: &[(&str, Entries, bool)] = &[
    // StringEquals: exact and case-sensitive; several policy values are alternatives.
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["Backup"])], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Other", &["backup"])], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":["restore","backup"]}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":["restore","archive"]}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringEquals":{"KMS:ENCRYPTIONCONTEXT:PURPOSE":"backup"}}"#, &[("kms:EncryptionContext:purpose", &["backup"])], true),
    (r#"{"StringEquals":{"kms:encryptioncontext:purpose":"backup"}}"#, &[("KMS:EncryptionContext:PURPOSE", &["backup"])], true),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["back*"])], true),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"b?ckup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":""}}"#, &[("kms:EncryptionContext:Purpose", &[""])], true),
    (r#"{"StringEquals":{"kms:CallerAccount":111122223333}}"#, &[("kms:CallerAccount", &["111122223333"])], true),
    (r#"{"StringEquals":{"kms:CallerAccount":"111122223333"}}"#, &[("kms:CallerAccount", &["444455556666"])], false),
    (r#"{"StringEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"StringEquals":{"aws:TagKeys":"c"}}"#, &[("aws:TagKeys", &["a", "b"])], false),
    (r#"{"StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &[])], false),
    (r#"{"StringEquals":{"aws:PrincipalTag/team":"été"}}"#, &[("aws:PrincipalTag/team", &["été"])], true),
    (r#"{"StringEquals":{"aws:PrincipalTag/team":"été"}}"#, &[("aws:PrincipalTag/team", &["ÉTÉ"])], false),
    // StringNotEquals: true when absent, and when no request value is listed.
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["Backup"])], true),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &[])], true),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":["a","b"]}}"#, &[("kms:EncryptionContext:Purpose", &["b"])], false),
    (r#"{"StringNotEquals":{"kms:EncryptionContext:Purpose":["a","b"]}}"#, &[("kms:EncryptionContext:Purpose", &["c"])], true),
    (r#"{"StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], false),
    (r#"{"StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "c"])], true),
    // StringEqualsIgnoreCase and StringNotEqualsIgnoreCase.
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[("kms:EncryptionContext:Purpose", &["BackUp"])], true),
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[("kms:EncryptionContext:Purpose", &["backups"])], false),
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[], false),
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACK*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"ÉTÉ"}}"#, &[("aws:PrincipalTag/team", &["été"])], true),
    (r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[("kms:EncryptionContext:Purpose", &["Backup"])], false),
    (r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Purpose":"BACKUP"}}"#, &[], true),
    // StringLike and StringNotLike: case-sensitive wildcards.
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["back"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"b?ckup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"b?ckup"}}"#, &[("kms:EncryptionContext:Purpose", &["bckup"])], false),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"Back*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"*up"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"*"}}"#, &[("kms:EncryptionContext:Purpose", &[""])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":"*"}}"#, &[], false),
    (r#"{"StringLike":{"kms:EncryptionContext:Purpose":["x*","*kup"]}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringLike":{"kms:ViaService":"ec2.*.amazonaws.com"}}"#, &[("kms:ViaService", &["ec2.us-west-2.amazonaws.com"])], true),
    (r#"{"StringLike":{"kms:ViaService":"ec2.*.amazonaws.com"}}"#, &[("kms:ViaService", &["s3.us-west-2.amazonaws.com"])], false),
    (r#"{"StringNotLike":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringNotLike":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"StringNotLike":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[], true),
    (r#"{"StringNotLike":{"kms:EncryptionContext:Purpose":["a*","b*"]}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    // Policy variables, substituted literally; defaults; escapes.
    (r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#, &[("aws:username", &["alice"]), ("aws:PrincipalTag/owner", &["alice"])], true),
    (r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#, &[("aws:username", &["alice"]), ("aws:PrincipalTag/owner", &["bob"])], false),
    (r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#, &[("aws:PrincipalTag/owner", &["alice"])], false),
    (r#"{"StringEquals":{"aws:PrincipalTag/owner":"${AWS:UserName}"}}"#, &[("aws:username", &["alice"]), ("aws:PrincipalTag/owner", &["alice"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team, 'none'}"}}"#, &[("aws:RequestTag/team", &["none"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team, 'none'}"}}"#, &[("aws:RequestTag/team", &["blue"]), ("aws:PrincipalTag/team", &["blue"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team, 'none'}"}}"#, &[("aws:RequestTag/team", &["none"]), ("aws:PrincipalTag/team", &["blue"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team,''}"}}"#, &[("aws:RequestTag/team", &[""])], true),
    (r#"{"StringLike":{"aws:RequestTag/name":"${aws:username}-*"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/name", &["alice-1"])], true),
    (r#"{"StringLike":{"aws:RequestTag/name":"${aws:username}-*"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/name", &["bob-1"])], false),
    (r#"{"StringLike":{"aws:RequestTag/name":"${aws:username}"}}"#, &[("aws:username", &["a*"]), ("aws:RequestTag/name", &["abc"])], false),
    (r#"{"StringLike":{"aws:RequestTag/name":"${aws:username}"}}"#, &[("aws:username", &["a*"]), ("aws:RequestTag/name", &["a*"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/name":"${*}"}}"#, &[("aws:RequestTag/name", &["*"])], true),
    (r#"{"StringLike":{"aws:RequestTag/name":"a${*}"}}"#, &[("aws:RequestTag/name", &["a*"])], true),
    (r#"{"StringLike":{"aws:RequestTag/name":"a${*}"}}"#, &[("aws:RequestTag/name", &["ab"])], false),
    (r#"{"StringLike":{"aws:RequestTag/name":"a${?}"}}"#, &[("aws:RequestTag/name", &["ab"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/name":"${$}x"}}"#, &[("aws:RequestTag/name", &["$x"])], true),
    (r#"{"StringEquals":{"aws:SourceIp":"${aws:SourceIp}"}}"#, &[("aws:SourceIp", &["203.0.113.7"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/id":"${aws:userid}"}}"#, &[("aws:userid", &["AIDAEXAMPLE"]), ("aws:RequestTag/id", &["AIDAEXAMPLE"])], true),
    (r#"{"StringNotEquals":{"aws:RequestTag/owner":"${aws:username}"}}"#, &[("aws:RequestTag/owner", &["x"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/owner":"${aws:TagKeys}"}}"#, &[("aws:TagKeys", &["a", "b"]), ("aws:RequestTag/owner", &["a"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/owner":"${kms:EncryptionContext:Owner}"}}"#, &[("kms:EncryptionContext:owner", &["alice"]), ("aws:RequestTag/owner", &["alice"])], true),
    // IfExists: absent keys pass whatever the operator.
    (r#"{"StringEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    (r#"{"StringEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], true),
    (r#"{"StringEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], false),
    (r#"{"StringNotEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    (r#"{"StringNotEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringLikeIfExists":{"kms:EncryptionContext:Purpose":"b*"}}"#, &[], true),
    (r#"{"StringLikeIfExists":{"kms:EncryptionContext:Purpose":"b*"}}"#, &[("kms:EncryptionContext:Purpose", &["x"])], false),
    (r#"{"StringEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"B"}}"#, &[("kms:EncryptionContext:Purpose", &["b"])], true),
    (r#"{"NumericLessThanIfExists":{"kms:ScheduleKeyDeletionPendingWindowInDays":"10"}}"#, &[], true),
    (r#"{"NumericLessThanIfExists":{"kms:ScheduleKeyDeletionPendingWindowInDays":"10"}}"#, &[("kms:ScheduleKeyDeletionPendingWindowInDays", &["5"])], true),
    (r#"{"NumericLessThanIfExists":{"kms:ScheduleKeyDeletionPendingWindowInDays":"10"}}"#, &[("kms:ScheduleKeyDeletionPendingWindowInDays", &["15"])], false),
    (r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[], true),
    (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#, &[], true),
    (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#, &[("aws:MultiFactorAuthPresent", &["false"])], false),
    (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[], true),
    (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["192.0.2.1"])], false),
    (r#"{"NotIpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.0.0.1"])], false),
    (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[], true),
    (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::other"])], false),
    (r#"{"BinaryEqualsIfExists":{"test:Blob":"AAEC"}}"#, &[], true),
    (r#"{"ForAllValues:StringEqualsIfExists":{"aws:TagKeys":"a"}}"#, &[], true),
    (r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}"#, &[], true),
    (r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b"])], false),
    (r#"{"stringequalsifexists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    (r#"{"StringEqualsIFEXISTS":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["x"])], false),
    // Null: only presence counts; an empty list is absent.
    (r#"{"Null":{"kms:EncryptionContext:Purpose":"true"}}"#, &[], true),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":"true"}}"#, &[("kms:EncryptionContext:Purpose", &["x"])], false),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":"false"}}"#, &[("kms:EncryptionContext:Purpose", &["x"])], true),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":"false"}}"#, &[], false),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":true}}"#, &[], true),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":"TRUE"}}"#, &[], true),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":[true,false]}}"#, &[], true),
    (r#"{"Null":{"kms:EncryptionContext:Purpose":[true,false]}}"#, &[("kms:EncryptionContext:Purpose", &["x"])], true),
    (r#"{"Null":{"aws:TagKeys":"true"}}"#, &[("aws:TagKeys", &[])], true),
    (r#"{"Null":{"aws:TokenIssueTime":"true","aws:SourceIp":"false"}}"#, &[("aws:SourceIp", &["10.0.0.1"])], true),
    (r#"{"Null":{"aws:TokenIssueTime":"true","aws:SourceIp":"false"}}"#, &[], false),
    (r#"{"null":{"aws:TokenIssueTime":"true"}}"#, &[], true),
    // ForAllValues: every request value must match; absent or empty counts as true.
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["a"])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["b", "a", "b"])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["a", "c"])], false),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &[])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["A"])], false),
    (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "c"])], true),
    (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], false),
    (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[], true),
    (r#"{"ForAllValues:StringLike":{"aws:TagKeys":"team*"}}"#, &[("aws:TagKeys", &["team-a", "team-b"])], true),
    (r#"{"ForAllValues:StringLike":{"aws:TagKeys":"team*"}}"#, &[("aws:TagKeys", &["team-a", "cost"])], false),
    (r#"{"ForAllValues:StringLike":{"aws:TagKeys":["team*","cost*"]}}"#, &[("aws:TagKeys", &["team-a", "cost"])], true),
    (r#"{"ForAllValues:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"ForAllValues:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[("aws:TagKeys", &["a", "secret-x"])], false),
    (r#"{"ForAllValues:StringEqualsIgnoreCase":{"aws:TagKeys":["A","B"]}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"ForAllValues:StringNotEqualsIgnoreCase":{"aws:TagKeys":["A"]}}"#, &[("aws:TagKeys", &["a", "b"])], false),
    (r#"{"ForAllValues:NumericLessThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["1", "5"])], true),
    (r#"{"ForAllValues:NumericLessThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["1", "50"])], false),
    (r#"{"ForAllValues:NumericLessThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["1", "many"])], false),
    (r#"{"ForAllValues:NumericNotEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["3", "4"])], true),
    (r#"{"ForAllValues:NumericNotEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["3", "2"])], false),
    (r#"{"ForAllValues:IpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["10.1.1.1", "10.2.2.2"])], true),
    (r#"{"ForAllValues:IpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["10.1.1.1", "11.0.0.1"])], false),
    (r#"{"ForAllValues:DateLessThan":{"test:Dates":"2026-06-01"}}"#, &[("test:Dates", &["2026-01-01", "2026-05-31T23:59:59Z"])], true),
    (r#"{"ForAllValues:DateLessThan":{"test:Dates":"2026-06-01"}}"#, &[("test:Dates", &["2026-01-01", "2026-06-01"])], false),
    (r#"{"ForAllValues:ArnLike":{"test:Arns":"arn:aws:iam::111122223333:*"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:user/a", "arn:aws:iam::111122223333:role/b"])], true),
    (r#"{"ForAllValues:ArnLike":{"test:Arns":"arn:aws:iam::111122223333:*"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:user/a", "arn:aws:iam::444455556666:role/b"])], false),
    (r#"{"ForAllValues:ArnNotLike":{"test:Arns":"arn:aws:iam::444455556666:*"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:user/a"])], true),
    (r#"{"ForAllValues:Bool":{"test:Flags":"true"}}"#, &[("test:Flags", &["true", "TRUE"])], true),
    (r#"{"ForAllValues:Bool":{"test:Flags":"true"}}"#, &[("test:Flags", &["true", "false"])], false),
    (r#"{"ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","Decrypt"]}}"#, &[("kms:GrantOperations", &["Encrypt"])], true),
    (r#"{"ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","Decrypt"]}}"#, &[("kms:GrantOperations", &["Encrypt", "ReEncryptFrom"])], false),
    (r#"{"forallvalues:stringequals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], true),
    (r#"{"ForAllValues:StringEquals":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    // ForAnyValue: at least one request value must match; absent or empty counts as false.
    (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["c", "a"])], true),
    (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["c"])], false),
    (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[], false),
    (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &[])], false),
    (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], false),
    (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[], false),
    (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"cost*"}}"#, &[("aws:TagKeys", &["team-a", "cost"])], true),
    (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"cost*"}}"#, &[("aws:TagKeys", &["team-a"])], false),
    (r#"{"ForAnyValue:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[("aws:TagKeys", &["secret-1", "a"])], true),
    (r#"{"ForAnyValue:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[("aws:TagKeys", &["secret-1"])], false),
    (r#"{"ForAnyValue:StringEqualsIgnoreCase":{"kms:EncryptionContextKeys":"PURPOSE"}}"#, &[("kms:EncryptionContextKeys", &["purpose", "owner"])], true),
    (r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Purpose"}}"#, &[("kms:EncryptionContextKeys", &["purpose"])], false),
    (r#"{"ForAnyValue:NumericGreaterThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["1", "50"])], true),
    (r#"{"ForAnyValue:NumericGreaterThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["1", "5"])], false),
    (r#"{"ForAnyValue:ArnLike":{"test:Arns":"arn:aws:iam::*:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::1:role/x", "arn:aws:iam::111122223333:role/admin"])], true),
    (r#"{"ForAnyValue:ArnEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::1:role/x"])], false),
    (r#"{"ForAnyValue:ArnNotEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:role/admin", "arn:aws:iam::1:role/x"])], true),
    (r#"{"ForAnyValue:Bool":{"test:Flags":"true"}}"#, &[("test:Flags", &["false", "true"])], true),
    (r#"{"ForAnyValue:Bool":{"test:Flags":"true"}}"#, &[("test:Flags", &["false"])], false),
    (r#"{"ForAnyValue:NotIpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["10.1.1.1", "11.0.0.1"])], true),
    (r#"{"ForAnyValue:NotIpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["10.1.1.1"])], false),
    (r#"{"ForAnyValue:DateGreaterThan":{"test:Dates":"2026-06-01"}}"#, &[("test:Dates", &["2026-01-01", "2027-01-01"])], true),
    (r#"{"ForAnyValue:BinaryEquals":{"test:Blobs":"AAEC"}}"#, &[("test:Blobs", &["AAED", "AAEC"])], true),
    (r#"{"foranyvalue:StringEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], true),
    // Numeric operators.
    (r#"{"NumericEquals":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericEquals":{"test:Size":7}}"#, &[("test:Size", &["7.0"])], true),
    (r#"{"NumericEquals":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], false),
    (r#"{"NumericEquals":{"test:Size":"7"}}"#, &[], false),
    (r#"{"NumericEquals":{"test:Size":"7"}}"#, &[("test:Size", &["seven"])], false),
    (r#"{"NumericEquals":{"test:Size":["1","7"]}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericEquals":{"test:Size":"-0.5"}}"#, &[("test:Size", &["-.5"])], true),
    (r#"{"NumericNotEquals":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], true),
    (r#"{"NumericNotEquals":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], false),
    (r#"{"NumericNotEquals":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericNotEquals":{"test:Size":"7"}}"#, &[("test:Size", &["seven"])], false),
    (r#"{"NumericNotEquals":{"test:Size":["7","8"]}}"#, &[("test:Size", &["8"])], false),
    (r#"{"NumericLessThan":{"test:Size":"7"}}"#, &[("test:Size", &["6"])], true),
    (r#"{"NumericLessThan":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], false),
    (r#"{"NumericLessThan":{"test:Size":"7"}}"#, &[], false),
    (r#"{"NumericLessThan":{"test:Size":["5","10"]}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericLessThan":{"test:Size":"7.5"}}"#, &[("test:Size", &["7.25"])], true),
    (r#"{"NumericLessThanEquals":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericLessThanEquals":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], false),
    (r#"{"NumericGreaterThan":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], true),
    (r#"{"NumericGreaterThan":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], false),
    (r#"{"NumericGreaterThan":{"test:Size":"-1"}}"#, &[("test:Size", &["0"])], true),
    (r#"{"NumericGreaterThanEquals":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericGreaterThanEquals":{"test:Size":"7"}}"#, &[("test:Size", &["6.99"])], false),
    (r#"{"NumericGreaterThanEquals":{"kms:ScheduleKeyDeletionPendingWindowInDays":30}}"#, &[("kms:ScheduleKeyDeletionPendingWindowInDays", &["7"])], false),
    (r#"{"NumericGreaterThanEquals":{"kms:ScheduleKeyDeletionPendingWindowInDays":30}}"#, &[("kms:ScheduleKeyDeletionPendingWindowInDays", &["30"])], true),
    (r#"{"NumericLessThanEquals":{"kms:RotationPeriodInDays":"365"}}"#, &[("kms:RotationPeriodInDays", &["90"])], true),
    // Date operators: ISO 8601 and epoch seconds on either side.
    (r#"{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-01-31T12:00:00Z"])], true),
    (r#"{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-07-01T00:00:00Z"])], false),
    (r#"{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-01T00:00:00Z"])], false),
    (r#"{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[], false),
    (r#"{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["soon"])], false),
    (r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-01T00:00:00Z"])], true),
    (r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-01T00:00:01Z"])], false),
    (r#"{"DateGreaterThan":{"aws:CurrentTime":1769817600}}"#, &[("aws:CurrentTime", &["2026-01-31T12:00:00Z"])], true),
    (r#"{"DateGreaterThan":{"aws:CurrentTime":"1769817600"}}"#, &[("aws:CurrentTime", &["2026-01-30T12:00:00Z"])], false),
    (r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00Z"])], true),
    (r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-30T23:59:59Z"])], false),
    (r#"{"DateEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00Z"])], true),
    (r#"{"DateEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["1769817600"])], true),
    (r#"{"DateEquals":{"aws:CurrentTime":"2026-01-31T01:00:00+01:00"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00Z"])], true),
    (r#"{"DateEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00.5Z"])], false),
    (r#"{"DateNotEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-02-01"])], true),
    (r#"{"DateNotEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31"])], false),
    (r#"{"DateNotEquals":{"aws:CurrentTime":"2026-01-31"}}"#, &[], true),
    (r#"{"DateLessThan":{"kms:ValidTo":"2027-01-01T00:00:00Z"}}"#, &[("kms:ValidTo", &["1769817600"])], true),
    (r#"{"DateLessThan":{"aws:EpochTime":"1769817600"}}"#, &[("aws:EpochTime", &["1769817599"])], true),
    (r#"{"DateLessThan":{"aws:CurrentTime":["2020-01-01","2030-01-01"]}}"#, &[("aws:CurrentTime", &["2026-01-31"])], true),
    (r#"{"DateGreaterThan":{"aws:TokenIssueTime":"2026-01-31T00:00:00Z"},"DateLessThan":{"aws:TokenIssueTime":"2026-02-01T00:00:00Z"}}"#, &[("aws:TokenIssueTime", &["2026-01-31T08:00:00Z"])], true),
    // Bool.
    (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["true"])], true),
    (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["false"])], false),
    (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["TRUE"])], true),
    (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[], false),
    (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["yes"])], false),
    (r#"{"Bool":{"aws:SecureTransport":"false"}}"#, &[("aws:SecureTransport", &["false"])], true),
    (r#"{"Bool":{"aws:SecureTransport":true}}"#, &[("aws:SecureTransport", &["true"])], true),
    (r#"{"Bool":{"aws:SecureTransport":"False"}}"#, &[("aws:SecureTransport", &["false"])], true),
    (r#"{"Bool":{"aws:SecureTransport":["true","false"]}}"#, &[("aws:SecureTransport", &["false"])], true),
    (r#"{"Bool":{"kms:GrantIsForAWSResource":true}}"#, &[("kms:GrantIsForAWSResource", &["true"])], true),
    (r#"{"Bool":{"kms:GrantIsForAWSResource":"${test:Expected}"}}"#, &[("kms:GrantIsForAWSResource", &["true"]), ("test:expected", &["true"])], true),
    (r#"{"Bool":{"kms:GrantIsForAWSResource":"${test:Expected}"}}"#, &[("kms:GrantIsForAWSResource", &["true"]), ("test:expected", &["false"])], false),
    (r#"{"Bool":{"kms:GrantIsForAWSResource":"${test:Expected}"}}"#, &[("kms:GrantIsForAWSResource", &["true"])], false),
    // BinaryEquals: compared as decoded bytes.
    (r#"{"BinaryEquals":{"test:Blob":"AAEC"}}"#, &[("test:Blob", &["AAEC"])], true),
    (r#"{"BinaryEquals":{"test:Blob":"AAEC"}}"#, &[("test:Blob", &["AAED"])], false),
    (r#"{"BinaryEquals":{"test:Blob":"aGVsbG8="}}"#, &[("test:Blob", &["aGVsbG8"])], true),
    (r#"{"BinaryEquals":{"test:Blob":"aGVsbG8="}}"#, &[("test:Blob", &["aGVsbA=="])], false),
    (r#"{"BinaryEquals":{"test:Blob":"AAEC"}}"#, &[("test:Blob", &["not base64!"])], false),
    (r#"{"BinaryEquals":{"test:Blob":"AAEC"}}"#, &[], false),
    (r#"{"BinaryEquals":{"test:Blob":["AAED","AAEC"]}}"#, &[("test:Blob", &["AAEC"])], true),
    // IpAddress and NotIpAddress: IPv4 and IPv6 CIDR ranges.
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.7"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["198.51.100.1"])], false),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[], false),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["garbage"])], false),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["::ffff:203.0.113.7"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#, &[("aws:SourceIp", &["203.0.113.7"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#, &[("aws:SourceIp", &["203.0.113.8"])], false),
    (r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}"#, &[("aws:SourceIp", &["2001:db8::5"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}"#, &[("aws:SourceIp", &["2001:db8:1234:5678:1::1"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}"#, &[("aws:SourceIp", &["2001:db8:1234:5679::1"])], false),
    (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &[("aws:SourceIp", &["192.0.2.1"])], true),
    (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &[("aws:SourceIp", &["2001:db8::1"])], false),
    (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["198.51.100.1"])], true),
    (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.7"])], false),
    (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[], true),
    (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["garbage"])], false),
    (r#"{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","10.0.0.0/8"]}}"#, &[("aws:SourceIp", &["10.9.9.9"])], false),
    // ARN operators: per-segment wildcards for both Equals and Like; case-sensitive.
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin"])], true),
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/other"])], false),
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[], false),
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin"])], true),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin"])], true),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"])], false),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::444455556666:role/admin"])], true),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin"}}"#, &[("aws:PrincipalArn", &["not-an-arn"])], false),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/Admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin"])], false),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::1:2:role/admin"])], false),
    (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket-*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket-1"])], true),
    (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket-*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::other"])], false),
    (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:logs:*:*:log-group:app:*"}}"#, &[("aws:SourceArn", &["arn:aws:logs:us-east-1:111122223333:log-group:app:log-stream:x"])], true),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/${aws:username}"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"]), ("aws:username", &["alice"])], true),
    (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/${aws:username}"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"]), ("aws:username", &["bob"])], false),
    (r#"{"ArnLike":{"aws:PrincipalArn":"*"}}"#, &[("aws:PrincipalArn", &["anything"])], true),
    (r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin"])], false),
    (r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/other"])], true),
    (r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}}"#, &[], true),
    (r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:user/alice"])], true),
    (r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/admin-2"])], false),
    (r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin"}}"#, &[("aws:PrincipalArn", &["not-an-arn"])], true),
    // Several keys and several operators must all hold.
    (r#"{"StringEquals":{"test:A":"1","test:B":"2"}}"#, &[("test:A", &["1"]), ("test:B", &["2"])], true),
    (r#"{"StringEquals":{"test:A":"1","test:B":"2"}}"#, &[("test:A", &["1"])], false),
    (r#"{"StringEquals":{"test:A":"1","test:B":"2"}}"#, &[("test:A", &["1"]), ("test:B", &["3"])], false),
    (r#"{"StringEquals":{"test:A":"1"},"NumericLessThan":{"test:N":"5"}}"#, &[("test:A", &["1"]), ("test:N", &["4"])], true),
    (r#"{"StringEquals":{"test:A":"1"},"NumericLessThan":{"test:N":"5"}}"#, &[("test:A", &["1"]), ("test:N", &["6"])], false),
    (r#"{"StringEquals":{"test:A":"1"},"NumericLessThan":{"test:N":"5"}}"#, &[("test:A", &["2"]), ("test:N", &["4"])], false),
    (r#"{"StringEquals":{"test:A":"1"},"StringEqualsIfExists":{"test:B":"2"},"Null":{"test:C":"true"}}"#, &[("test:A", &["1"])], true),
    (r#"{"StringEquals":{"test:A":"1"},"StringEqualsIfExists":{"test:B":"2"},"Null":{"test:C":"true"}}"#, &[("test:A", &["1"]), ("test:C", &["x"])], false),
    (r#"{"StringEquals":{"test:A":"1","TEST:a":"1"}}"#, &[("test:a", &["1"])], true),
    (r#"{"StringEquals":{"test:A":"1","TEST:a":"2"}}"#, &[("test:a", &["1"])], false),
    (r#"{}"#, &[], true),
    // KMS condition keys as key policies use them.
    (r#"{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":"ec2.us-east-1.amazonaws.com"}}"#, &[("kms:CallerAccount", &["111122223333"]), ("kms:ViaService", &["ec2.us-east-1.amazonaws.com"])], true),
    (r#"{"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#, &[("kms:EncryptionAlgorithm", &["RSAES_OAEP_SHA_256"])], false),
    (r#"{"StringEquals":{"kms:KeySpec":["RSA_2048","RSA_4096"]}}"#, &[("kms:KeySpec", &["RSA_4096"])], true),
    (r#"{"StringEquals":{"kms:MultiRegionKeyType":"PRIMARY"}}"#, &[("kms:MultiRegionKeyType", &["REPLICA"])], false),
    (r#"{"Bool":{"kms:MultiRegion":false}}"#, &[("kms:MultiRegion", &["false"])], true),
    (r#"{"Bool":{"kms:ReEncryptOnSameKey":"true"}}"#, &[("kms:ReEncryptOnSameKey", &["false"])], false),
    (r#"{"StringEquals":{"kms:GrantConstraintType":"EncryptionContextEquals"}}"#, &[("kms:GrantConstraintType", &["EncryptionContextSubset"])], false),
    (r#"{"StringLike":{"kms:RequestAlias":"alias/app-*"}}"#, &[("kms:RequestAlias", &["alias/app-prod"])], true),
    (r#"{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/finance-*"}}"#, &[("kms:ResourceAliases", &["alias/a", "alias/finance-key"])], true),
    (r#"{"StringEquals":{"kms:GranteePrincipal":"arn:aws:iam::111122223333:role/app"}}"#, &[("kms:GranteePrincipal", &["arn:aws:iam::111122223333:role/app"])], true),
    (r#"{"StringEquals":{"kms:RecipientAttestation:ImageSha384":"abc"}}"#, &[("kms:RecipientAttestation:imagesha384", &["abc"])], true),
    (r#"{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}"#, &[("kms:BypassPolicyLockoutSafetyCheck", &["false"])], false),
    (r#"{"StringEquals":{"kms:ReplicaRegion":["eu-west-1","ap-south-1"]}}"#, &[("kms:ReplicaRegion", &["ap-south-1"])], true),
    (r#"{"StringEquals":{"kms:PrimaryRegion":"us-west-2"}}"#, &[("kms:PrimaryRegion", &["eu-west-1"])], false),
    // Every operator with IfExists: an absent key passes; a present one is compared as without IfExists.
    (r#"{"StringLikeIfExists":{"kms:EncryptionContext:Purpose":"b*"}}"#, &[("kms:EncryptionContext:Purpose", &["bx"])], true),
    (r#"{"StringNotEqualsIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"StringEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"B"}}"#, &[], true),
    (r#"{"StringEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"B"}}"#, &[("kms:EncryptionContext:Purpose", &["c"])], false),
    (r#"{"StringNotEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[], true),
    (r#"{"StringNotEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["BACKUP"])], false),
    (r#"{"StringNotEqualsIgnoreCaseIfExists":{"kms:EncryptionContext:Purpose":"backup"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"StringNotLikeIfExists":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[], true),
    (r#"{"StringNotLikeIfExists":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["backup"])], false),
    (r#"{"StringNotLikeIfExists":{"kms:EncryptionContext:Purpose":"back*"}}"#, &[("kms:EncryptionContext:Purpose", &["restore"])], true),
    (r#"{"NumericEqualsIfExists":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], false),
    (r#"{"NumericEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["seven"])], false),
    (r#"{"NumericNotEqualsIfExists":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericNotEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], false),
    (r#"{"NumericNotEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], true),
    (r#"{"NumericLessThanEqualsIfExists":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericLessThanEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericLessThanEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], false),
    (r#"{"NumericGreaterThanIfExists":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericGreaterThanIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["8"])], true),
    (r#"{"NumericGreaterThanIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], false),
    (r#"{"NumericGreaterThanEqualsIfExists":{"test:Size":"7"}}"#, &[], true),
    (r#"{"NumericGreaterThanEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["7"])], true),
    (r#"{"NumericGreaterThanEqualsIfExists":{"test:Size":"7"}}"#, &[("test:Size", &["6"])], false),
    (r#"{"DateEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[], true),
    (r#"{"DateEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00Z"])], true),
    (r#"{"DateEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-02-01T00:00:00Z"])], false),
    (r#"{"DateNotEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[], true),
    (r#"{"DateNotEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-01-31T00:00:00Z"])], false),
    (r#"{"DateNotEqualsIfExists":{"aws:CurrentTime":"2026-01-31"}}"#, &[("aws:CurrentTime", &["2026-02-01T00:00:00Z"])], true),
    (r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-05-01T00:00:00Z"])], true),
    (r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-07-01T00:00:00Z"])], false),
    (r#"{"DateLessThanEqualsIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[], true),
    (r#"{"DateLessThanEqualsIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-01T00:00:00Z"])], true),
    (r#"{"DateLessThanEqualsIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-02T00:00:00Z"])], false),
    (r#"{"DateGreaterThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[], true),
    (r#"{"DateGreaterThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-06-02T00:00:00Z"])], true),
    (r#"{"DateGreaterThanIfExists":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-05-31T00:00:00Z"])], false),
    (r#"{"DateGreaterThanEqualsIfExists":{"aws:EpochTime":"1769817600"}}"#, &[], true),
    (r#"{"DateGreaterThanEqualsIfExists":{"aws:EpochTime":"1769817600"}}"#, &[("aws:EpochTime", &["1769817600"])], true),
    (r#"{"DateGreaterThanEqualsIfExists":{"aws:EpochTime":"1769817600"}}"#, &[("aws:EpochTime", &["1769817599"])], false),
    (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#, &[("aws:MultiFactorAuthPresent", &["true"])], true),
    (r#"{"BinaryEqualsIfExists":{"test:Blob":"AAEC"}}"#, &[("test:Blob", &["AAEC"])], true),
    (r#"{"BinaryEqualsIfExists":{"test:Blob":"AAEC"}}"#, &[("test:Blob", &["AAED"])], false),
    (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.20.30.40"])], true),
    (r#"{"NotIpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[], true),
    (r#"{"NotIpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["192.0.2.1"])], true),
    (r#"{"ArnEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[], true),
    (r#"{"ArnEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], true),
    (r#"{"ArnEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::other"])], false),
    (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], true),
    (r#"{"ArnNotEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[], true),
    (r#"{"ArnNotEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], false),
    (r#"{"ArnNotEqualsIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::other"])], true),
    (r#"{"ArnNotLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[], true),
    (r#"{"ArnNotLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::bucket"])], false),
    (r#"{"ArnNotLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::b*"}}"#, &[("aws:SourceArn", &["arn:aws:s3:::other"])], true),
    // Set operators over every operator family: ForAllValues holds when every request value matches (and
    // when there are none); ForAnyValue when at least one does (never when there are none).
    (r#"{"ForAllValues:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["1", "2", "2.0"])], true),
    (r#"{"ForAllValues:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["1", "3"])], false),
    (r#"{"ForAllValues:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[], true),
    (r#"{"ForAnyValue:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["3", "2"])], true),
    (r#"{"ForAnyValue:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[("test:Sizes", &["3", "4"])], false),
    (r#"{"ForAnyValue:NumericEquals":{"test:Sizes":["1","2"]}}"#, &[], false),
    (r#"{"ForAnyValue:NumericNotEquals":{"test:Sizes":"1"}}"#, &[("test:Sizes", &["1", "5"])], true),
    (r#"{"ForAnyValue:NumericNotEquals":{"test:Sizes":"1"}}"#, &[("test:Sizes", &["1"])], false),
    (r#"{"ForAnyValue:NumericLessThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["50", "5"])], true),
    (r#"{"ForAnyValue:NumericLessThan":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["50"])], false),
    (r#"{"ForAllValues:NumericLessThanEquals":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["10", "3"])], true),
    (r#"{"ForAllValues:NumericLessThanEquals":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["10", "11"])], false),
    (r#"{"ForAnyValue:NumericLessThanEquals":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["11", "10"])], true),
    (r#"{"ForAllValues:NumericGreaterThan":{"test:Sizes":"0"}}"#, &[("test:Sizes", &["1", "2"])], true),
    (r#"{"ForAllValues:NumericGreaterThan":{"test:Sizes":"0"}}"#, &[("test:Sizes", &["1", "0"])], false),
    (r#"{"ForAllValues:NumericGreaterThanEquals":{"test:Sizes":"5"}}"#, &[("test:Sizes", &["5", "6"])], true),
    (r#"{"ForAllValues:NumericGreaterThanEquals":{"test:Sizes":"5"}}"#, &[("test:Sizes", &["4", "6"])], false),
    (r#"{"ForAnyValue:NumericGreaterThanEquals":{"test:Sizes":"5"}}"#, &[("test:Sizes", &["4", "5"])], true),
    (r#"{"ForAnyValue:NumericLessThanIfExists":{"test:Sizes":"10"}}"#, &[], true),
    (r#"{"ForAnyValue:NumericLessThanIfExists":{"test:Sizes":"10"}}"#, &[("test:Sizes", &["50"])], false),
    (r#"{"ForAllValues:DateGreaterThan":{"test:Dates":"2026-01-01"}}"#, &[("test:Dates", &["2026-02-01", "2026-03-01"])], true),
    (r#"{"ForAllValues:DateGreaterThan":{"test:Dates":"2026-01-01"}}"#, &[("test:Dates", &["2025-12-31", "2026-03-01"])], false),
    (r#"{"ForAllValues:DateGreaterThan":{"test:Dates":"2026-01-01"}}"#, &[], true),
    (r#"{"ForAnyValue:DateLessThan":{"test:Dates":"2026-01-01"}}"#, &[("test:Dates", &["2025-06-01", "2027-01-01"])], true),
    (r#"{"ForAnyValue:DateLessThan":{"test:Dates":"2026-01-01"}}"#, &[("test:Dates", &["2027-01-01"])], false),
    (r#"{"ForAnyValue:DateLessThan":{"test:Dates":"2026-01-01"}}"#, &[], false),
    (r#"{"ForAnyValue:DateEquals":{"test:Dates":"2026-01-31"}}"#, &[("test:Dates", &["2026-01-30", "1769817600"])], true),
    (r#"{"ForAllValues:DateNotEquals":{"test:Dates":"2026-01-31"}}"#, &[("test:Dates", &["2026-01-30", "2026-02-01"])], true),
    (r#"{"ForAllValues:DateNotEquals":{"test:Dates":"2026-01-31"}}"#, &[("test:Dates", &["2026-01-30", "2026-01-31"])], false),
    (r#"{"ForAllValues:DateLessThanEquals":{"test:Dates":"2026-01-31"}}"#, &[("test:Dates", &["2026-01-31", "2026-01-01"])], true),
    (r#"{"ForAnyValue:DateGreaterThanEquals":{"test:Dates":"2026-01-31"}}"#, &[("test:Dates", &["2026-01-01"])], false),
    (r#"{"ForAnyValue:IpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["11.0.0.1", "10.0.0.1"])], true),
    (r#"{"ForAnyValue:IpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["11.0.0.1"])], false),
    (r#"{"ForAnyValue:IpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[], false),
    (r#"{"ForAllValues:IpAddress":{"test:Addresses":["10.0.0.0/8","2001:db8::/32"]}}"#, &[("test:Addresses", &["10.0.0.1", "2001:db8::1"])], true),
    (r#"{"ForAllValues:NotIpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["11.0.0.1", "12.0.0.1"])], true),
    (r#"{"ForAllValues:NotIpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[("test:Addresses", &["11.0.0.1", "10.0.0.1"])], false),
    (r#"{"ForAllValues:NotIpAddress":{"test:Addresses":"10.0.0.0/8"}}"#, &[], true),
    (r#"{"ForAllValues:ArnEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:role/admin"])], true),
    (r#"{"ForAllValues:ArnEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:role/admin", "arn:aws:iam::111122223333:role/ops"])], false),
    (r#"{"ForAllValues:ArnNotEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:role/ops", "arn:aws:iam::111122223333:user/a"])], true),
    (r#"{"ForAllValues:ArnNotEquals":{"test:Arns":"arn:aws:iam::111122223333:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::111122223333:role/admin"])], false),
    (r#"{"ForAnyValue:ArnNotLike":{"test:Arns":"arn:aws:iam::*:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::1:role/admin", "arn:aws:iam::1:user/x"])], true),
    (r#"{"ForAnyValue:ArnNotLike":{"test:Arns":"arn:aws:iam::*:role/admin"}}"#, &[("test:Arns", &["arn:aws:iam::1:role/admin"])], false),
    (r#"{"ForAnyValue:ArnLike":{"test:Arns":"arn:aws:iam::*:role/admin"}}"#, &[], false),
    (r#"{"ForAllValues:ArnLike":{"test:Arns":"arn:aws:iam::*:role/*"}}"#, &[], true),
    (r#"{"ForAllValues:BinaryEquals":{"test:Blobs":["AAEC","AAED"]}}"#, &[("test:Blobs", &["AAEC", "AAED"])], true),
    (r#"{"ForAllValues:BinaryEquals":{"test:Blobs":["AAEC","AAED"]}}"#, &[("test:Blobs", &["AAEC", "AAEE"])], false),
    (r#"{"ForAnyValue:BinaryEquals":{"test:Blobs":"AAEC"}}"#, &[("test:Blobs", &["AAEE"])], false),
    (r#"{"ForAnyValue:Bool":{"test:Flags":"true"}}"#, &[], false),
    (r#"{"ForAllValues:Bool":{"test:Flags":"true"}}"#, &[], true),
    (r#"{"ForAnyValue:StringNotEqualsIgnoreCase":{"aws:TagKeys":"A"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
    (r#"{"ForAnyValue:StringNotEqualsIgnoreCase":{"aws:TagKeys":"A"}}"#, &[("aws:TagKeys", &["a"])], false),
    (r#"{"ForAllValues:StringEqualsIgnoreCase":{"aws:TagKeys":["A","B"]}}"#, &[("aws:TagKeys", &["a", "c"])], false),
    (r#"{"ForAnyValue:StringEqualsIgnoreCase":{"aws:TagKeys":"A"}}"#, &[], false),
    (r#"{"ForAllValues:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[], true),
    (r#"{"ForAnyValue:StringNotLike":{"aws:TagKeys":"secret*"}}"#, &[], false),
    (r#"{"ForAllValues:StringLikeIfExists":{"aws:TagKeys":"team*"}}"#, &[], true),
    (r#"{"ForAllValues:StringLikeIfExists":{"aws:TagKeys":"team*"}}"#, &[("aws:TagKeys", &["team-a", "cost"])], false),
    (r#"{"ForAnyValue:StringLikeIfExists":{"aws:TagKeys":"team*"}}"#, &[], true),
    (r#"{"ForAnyValue:StringLikeIfExists":{"aws:TagKeys":"team*"}}"#, &[("aws:TagKeys", &["cost", "team-a"])], true),
    (r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]},"Null":{"kms:EncryptionContextKeys":"false"}}"#, &[], false),
    (r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]},"Null":{"kms:EncryptionContextKeys":"false"}}"#, &[("kms:EncryptionContextKeys", &["Project"])], true),
    (r#"{"ForAnyValue:StringEquals":{"kms:GrantOperations":["ReEncryptFrom","ReEncryptTo"]}}"#, &[("kms:GrantOperations", &["Decrypt", "ReEncryptTo"])], true),
    (r#"{"ForAnyValue:StringEquals":{"kms:GrantOperations":["ReEncryptFrom","ReEncryptTo"]}}"#, &[("kms:GrantOperations", &["Decrypt"])], false),
    // Policy variables in more places: several in one value, in ARN operators, in set operators, defaults.
    (r#"{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}"#, &[("aws:PrincipalAccount", &["111122223333"]), ("kms:CallerAccount", &["111122223333"])], true),
    (r#"{"StringEquals":{"kms:CallerAccount":"${aws:PrincipalAccount}"}}"#, &[("aws:PrincipalAccount", &["111122223333"]), ("kms:CallerAccount", &["444455556666"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/name":"${aws:username}-${aws:PrincipalTag/team}"}}"#, &[("aws:username", &["alice"]), ("aws:PrincipalTag/team", &["blue"]), ("aws:RequestTag/name", &["alice-blue"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/name":"${aws:username}-${aws:PrincipalTag/team}"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/name", &["alice-"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/name":"${aws:username}-${aws:PrincipalTag/team, 'none'}"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/name", &["alice-none"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/team":"${AWS:PRINCIPALTAG/TEAM}"}}"#, &[("aws:PrincipalTag/team", &["blue"]), ("aws:RequestTag/team", &["blue"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Owner":"${aws:PrincipalTag/dept}/*"}}"#, &[("aws:PrincipalTag/dept", &["finance"]), ("kms:EncryptionContext:Owner", &["finance/alice"])], true),
    (r#"{"StringLike":{"kms:EncryptionContext:Owner":"${aws:PrincipalTag/dept}/*"}}"#, &[("aws:PrincipalTag/dept", &["finance"]), ("kms:EncryptionContext:Owner", &["hr/alice"])], false),
    (r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Owner":"${aws:username}"}}"#, &[("aws:username", &["Alice"]), ("kms:EncryptionContext:Owner", &["ALICE"])], true),
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:root"}}"#, &[("aws:PrincipalAccount", &["111122223333"]), ("aws:PrincipalArn", &["arn:aws:iam::111122223333:root"])], true),
    (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:root"}}"#, &[("aws:PrincipalAccount", &["444455556666"]), ("aws:PrincipalArn", &["arn:aws:iam::111122223333:root"])], false),
    (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:s3:::${aws:username}-*"}}"#, &[("aws:username", &["alice"]), ("aws:SourceArn", &["arn:aws:s3:::alice-logs"])], false),
    (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:s3:::${aws:username}-*"}}"#, &[("aws:username", &["alice"]), ("aws:SourceArn", &["arn:aws:s3:::bob-logs"])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["${aws:username}","common"]}}"#, &[("aws:username", &["alice"]), ("aws:TagKeys", &["alice", "common"])], true),
    (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["${aws:username}","common"]}}"#, &[("aws:username", &["alice"]), ("aws:TagKeys", &["bob"])], false),
    (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"${aws:PrincipalTag/team}-*"}}"#, &[("aws:PrincipalTag/team", &["blue"]), ("aws:TagKeys", &["red-1", "blue-2"])], true),
    (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"${aws:PrincipalTag/team}-*"}}"#, &[("aws:TagKeys", &["red-1", "blue-2"])], false),
    (r#"{"StringEqualsIfExists":{"aws:RequestTag/owner":"${aws:username}"}}"#, &[("aws:username", &["alice"])], true),
    (r#"{"StringEqualsIfExists":{"aws:RequestTag/owner":"${aws:username}"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/owner", &["bob"])], false),
    (r#"{"StringEquals":{"aws:RequestTag/owner":["${aws:username}","admin"]}}"#, &[("aws:RequestTag/owner", &["admin"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/owner":"${aws:username, 'nobody'}"}}"#, &[("aws:RequestTag/owner", &["nobody"])], true),
    (r#"{"StringEquals":{"aws:RequestTag/owner":"${aws:username, 'nobody'}"}}"#, &[("aws:username", &["alice"]), ("aws:RequestTag/owner", &["nobody"])], false),
];

/// Who the expected outcome is for; `deny` carries the Sid the outcome must report.
#[derive(Debug, Clone, Copy)]
struct Expect {
    deny: Option<Option<&'static str>>,
    allow: bool,
    account: bool,
}

const NOTHING: Expect = Expect {
    deny: None,
    allow: false,
    account: false,
};
const ALLOW: Expect = Expect {
    deny: None,
    allow: true,
    account: false,
};
const ACCOUNT: Expect = Expect {
    deny: None,
    allow: false,
    account: true,
};
const ALLOW_AND_ACCOUNT: Expect = Expect {
    deny: None,
    allow: true,
    account: true,
};

const fn deny(sid: Option<&'static str>, allowed: Expect) -> Expect {
    Expect {
        deny: Some(sid),
        allow: allowed.allow,
        account: allowed.account,
    }
}

impl Expect {
    fn outcome(self) -> Outcome {
        Outcome {
            explicit_deny: self.deny.is_some(),
            allow: self.allow,
            allow_account: self.account,
            denying_sid: self.deny.flatten().map(str::to_owned),
        }
    }
}

const DEFAULT_KEY_POLICY: &str = r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
const ACCOUNT_ID_POLICY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}}"#;
const USERS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/alice"]},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}"#;
const ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}]}"#;
const SESSION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/admin/alice-session"},"Action":"kms:*","Resource":"*"}]}"#;
const PATH_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/ops/deployer"},"Action":"kms:*","Resource":"*"}]}"#;
const EVERYONE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}"#;
const AWS_EVERYONE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
const SERVICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"kms:GenerateDataKey*","Resource":"*"}]}"#;
const CROSS_ACCOUNT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
const MIXED_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/alice","444455556666"],"Service":["logs.amazonaws.com"]},"Action":"kms:*","Resource":"*"}]}"#;
const DENY_DELETION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Sid":"NoDelete","Effect":"Deny","Principal":"*","Action":"kms:ScheduleKeyDeletion","Resource":"*"}]}"#;
const DENY_ACCOUNT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Block","Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}"#;
const DENY_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoAdmin","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}]}"#;
const DENY_INSECURE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"TLS only","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
const DENY_WITHOUT_SID_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
const TWO_DENIES_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"First","Effect":"Deny","Principal":"*","Action":"kms:Encrypt","Resource":"*"},{"Sid":"Second","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
const NOT_PRINCIPAL_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Sid":"OnlyAlice","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:root"]},"Action":"kms:*","Resource":"*"}]}"#;
const NOT_PRINCIPAL_USER_ONLY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyAlice","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}]}"#;
const NOT_PRINCIPAL_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyAdmin","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:role/admin","111122223333"]},"Action":"kms:*","Resource":"*"}]}"#;
const NOT_PRINCIPAL_SERVICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyS3","Effect":"Deny","NotPrincipal":{"Service":"s3.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}"#;
const NOT_PRINCIPAL_EVERYONE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Nobody","Effect":"Deny","NotPrincipal":"*","Action":"kms:*","Resource":"*"}]}"#;
const NOT_ACTION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","NotAction":["kms:ScheduleKeyDeletion","kms:Delete*"],"Resource":"*"}]}"#;
const DENY_NOT_ACTION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Sid":"ReadOnly","Effect":"Deny","Principal":"*","NotAction":"kms:Describe*","Resource":"*"}]}"#;
const NO_RESOURCE_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"}]}"#;
const NO_ACTION_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Resource":"*"}]}"#;
const GRANTS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}"#;
const CONTEXT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:Department":"IT"}}}]}"#;
const CONTEXT_KEYS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]},"Null":{"kms:EncryptionContextKeys":"false"}}}]}"#;
const VIA_SERVICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"},"StringLike":{"kms:ViaService":"ec2.*.amazonaws.com"}}}]}"#;
const TWO_ALLOWS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":"*"}]}"#;
const KEY_RESOURCE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}]}"#;

const ID_KEYS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:us-east-1:111122223333:key/*"}]}"#;
const ID_ANY_REGION: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":["arn:aws:kms:*:111122223333:key/*"]}]}"#;
const ID_ONE_CHAR_REGION: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:us-east-?:111122223333:key/*"}]}"#;
const ID_UPPERCASE_KEY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:us-east-1:111122223333:key/1234ABCD-*"}]}"#;
const ID_NOT_RESOURCE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","NotResource":"arn:aws:kms:*:111122223333:key/secret-*"}]}"#;
const ID_ALIAS_VARIABLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:alias/${aws:username}-*"}]}"#;
const ID_ALIAS_DEFAULT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:alias/${aws:PrincipalTag/team, 'shared'}/*"}]}"#;
const ID_ALIAS_2008: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:alias/${aws:username}-*"}]}"#;
const ID_ALIAS_NO_VERSION: &str = r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:alias/${aws:username}-*"}]}"#;
const ID_ESCAPED_STAR: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/${*}"}]}"#;
const ID_ACTIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Generate*","kms:?ecrypt","KMS:DESCRIBE*"],"Resource":"*"}]}"#;
const ID_EVERYTHING: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const ID_NETWORK: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"DenyOutsideNetwork","Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
const ID_DENY_NOT_ACTION: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"KmsOnly","Effect":"Deny","NotAction":"kms:*","Resource":"*"}]}"#;
const ID_DENY_NOT_RESOURCE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"ThisRegionOnly","Effect":"Deny","Action":"kms:*","NotResource":"arn:aws:kms:us-east-1:*:*"}]}"#;
const ID_TAGS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:TagResource","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","cost-center"]},"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team}"}}}]}"#;
const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#;
const TRUST_SERVICE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}}"#;
const TRUST_WEB_IDENTITY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"cognito-identity.amazonaws.com:aud":"us-east-1:pool"}}}]}"#;
const TRUST_DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["sts:AssumeRole","sts:TagSession"]},{"Sid":"NoTags","Effect":"Deny","Principal":{"AWS":"*"},"Action":"sts:TagSession"}]}"#;
const NOT_RESOURCE_KEY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","NotResource":"arn:aws:kms:*:*:alias/*"}]}"#;
const NOT_PRINCIPAL_SESSION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"OnlyThisSession","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:sts::111122223333:assumed-role/admin/alice-session","111122223333"]},"NotAction":"kms:Describe*","Resource":"*"}]}"#;
const ID_DENY_NOT_BOTH: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"WriteProtect","Effect":"Deny","NotAction":"kms:Describe*","NotResource":"arn:aws:kms:*:*:key/public-*"}]}"#;
const ID_ACCOUNT_VARIABLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}]}"#;
const ID_TWO_VARIABLES: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:${aws:RequestedRegion}:${aws:PrincipalAccount}:key/*"}]}"#;
const ID_NOT_RESOURCE_VARIABLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","NotResource":"arn:aws:kms:*:*:key/${aws:PrincipalTag/forbidden}"}]}"#;
const SESSION_SCOPE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Decrypt"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}"#;

/// A whole-policy case: kind, policy, principal, action, resource, context, expected outcome.
type Row = (
    PolicyKind,
    &'static str,
    Principal<'static>,
    &'static str,
    &'static str,
    Entries,
    Expect,
);

const KEY_POLICY: PolicyKind = PolicyKind::KeyPolicy;
const IDENTITY: PolicyKind = PolicyKind::Identity;
const TRUST: PolicyKind = PolicyKind::Trust;
const SESSION_KIND: PolicyKind = PolicyKind::Session;

#[rustfmt::skip]
const STATEMENTS: &[Row] = &[
    // The default key policy: the root is named exactly; everyone else in the account is delegated to IAM.
    (KEY_POLICY, DEFAULT_KEY_POLICY, ROOT, "kms:Encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, DEFAULT_KEY_POLICY, ALICE, "kms:Encrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, DEFAULT_KEY_POLICY, SESSION, "kms:PutKeyPolicy", KEY, &[], ACCOUNT),
    (KEY_POLICY, DEFAULT_KEY_POLICY, OUTSIDER, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, DEFAULT_KEY_POLICY, OUTSIDE_ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, DEFAULT_KEY_POLICY, S3, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, DEFAULT_KEY_POLICY, ALICE, "sts:AssumeRole", KEY, &[], NOTHING),
    (KEY_POLICY, DEFAULT_KEY_POLICY, ROOT, "KMS:ENCRYPT", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, DEFAULT_KEY_POLICY, ROOT, "kms:encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, ACCOUNT_ID_POLICY, ALICE, "kms:Decrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, ACCOUNT_ID_POLICY, ROOT, "kms:Decrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, ACCOUNT_ID_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], NOTHING),
    // Users named exactly.
    (KEY_POLICY, USERS_POLICY, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, USERS_POLICY, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, USERS_POLICY, ALICE, "kms:decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, USERS_POLICY, ALICE, "kms:GenerateDataKey", KEY, &[], NOTHING),
    (KEY_POLICY, USERS_POLICY, BOB, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, USERS_POLICY, ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    // Roles, role sessions and role paths.
    (KEY_POLICY, ROLE_POLICY, SESSION, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, ROLE_POLICY, OTHER_SESSION, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, ROLE_POLICY, ROLE_ITSELF, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, ROLE_POLICY, PATH_SESSION, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, ROLE_POLICY, ALICE, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, SESSION_POLICY, SESSION, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, SESSION_POLICY, OTHER_SESSION, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, SESSION_POLICY, ROLE_ITSELF, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, PATH_ROLE_POLICY, PATH_SESSION, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, PATH_ROLE_POLICY, SESSION, "kms:Encrypt", KEY, &[], NOTHING),
    // Everyone.
    (KEY_POLICY, EVERYONE_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, EVERYONE_POLICY, S3, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, EVERYONE_POLICY, ROOT, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, EVERYONE_POLICY, ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, AWS_EVERYONE_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, AWS_EVERYONE_POLICY, LOGS, "kms:Decrypt", KEY, &[], ALLOW),
    // Service principals, named without regard to case.
    (KEY_POLICY, SERVICE_POLICY, S3, "kms:GenerateDataKey", KEY, &[], ALLOW),
    (KEY_POLICY, SERVICE_POLICY, S3, "kms:GenerateDataKeyWithoutPlaintext", KEY, &[], ALLOW),
    (KEY_POLICY, SERVICE_POLICY, S3_SHOUTING, "kms:GenerateDataKey", KEY, &[], ALLOW),
    (KEY_POLICY, SERVICE_POLICY, S3, "kms:Decrypt", KEY, &[], NOTHING),
    (KEY_POLICY, SERVICE_POLICY, LOGS, "kms:GenerateDataKey", KEY, &[], NOTHING),
    (KEY_POLICY, SERVICE_POLICY, ALICE, "kms:GenerateDataKey", KEY, &[], NOTHING),
    // Cross-account.
    (KEY_POLICY, CROSS_ACCOUNT_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, CROSS_ACCOUNT_POLICY, OUTSIDE_ROOT, "kms:Decrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, CROSS_ACCOUNT_POLICY, ALICE, "kms:Decrypt", KEY, &[], NOTHING),
    (KEY_POLICY, CROSS_ACCOUNT_POLICY, ROOT, "kms:Decrypt", KEY, &[], NOTHING),
    // Several principal types in one element.
    (KEY_POLICY, MIXED_POLICY, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, MIXED_POLICY, OUTSIDER, "kms:Encrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, MIXED_POLICY, LOGS, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, MIXED_POLICY, BOB, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, MIXED_POLICY, S3, "kms:Encrypt", KEY, &[], NOTHING),
    // Explicit deny wins, and names its statement.
    (KEY_POLICY, DENY_DELETION_POLICY, ROOT, "kms:ScheduleKeyDeletion", KEY, &[], deny(Some("NoDelete"), ALLOW_AND_ACCOUNT)),
    (KEY_POLICY, DENY_DELETION_POLICY, ROOT, "kms:Encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, DENY_DELETION_POLICY, ALICE, "kms:ScheduleKeyDeletion", KEY, &[], deny(Some("NoDelete"), ACCOUNT)),
    (KEY_POLICY, DENY_DELETION_POLICY, OUTSIDER, "kms:ScheduleKeyDeletion", KEY, &[], deny(Some("NoDelete"), NOTHING)),
    (KEY_POLICY, DENY_ACCOUNT_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], deny(Some("Block"), ALLOW)),
    (KEY_POLICY, DENY_ACCOUNT_POLICY, OUTSIDE_ROOT, "kms:Decrypt", KEY, &[], deny(Some("Block"), ALLOW)),
    (KEY_POLICY, DENY_ACCOUNT_POLICY, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, DENY_ROLE_POLICY, SESSION, "kms:Decrypt", KEY, &[], deny(Some("NoAdmin"), ACCOUNT)),
    (KEY_POLICY, DENY_ROLE_POLICY, PATH_SESSION, "kms:Decrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, DENY_INSECURE_POLICY, ALICE, "kms:Decrypt", KEY, &[("aws:SecureTransport", &["false"])], deny(Some("TLS only"), ALLOW)),
    (KEY_POLICY, DENY_INSECURE_POLICY, ALICE, "kms:Decrypt", KEY, &[("aws:SecureTransport", &["true"])], ALLOW),
    (KEY_POLICY, DENY_INSECURE_POLICY, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (KEY_POLICY, DENY_WITHOUT_SID_POLICY, ROOT, "kms:Decrypt", KEY, &[], deny(None, NOTHING)),
    (KEY_POLICY, TWO_DENIES_POLICY, ROOT, "kms:Encrypt", KEY, &[], deny(Some("First"), NOTHING)),
    (KEY_POLICY, TWO_DENIES_POLICY, ROOT, "kms:Decrypt", KEY, &[], deny(Some("Second"), NOTHING)),
    // NotPrincipal spares a principal only when its account is listed too.
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, ALICE, "kms:Encrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, ROOT, "kms:Encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, BOB, "kms:Encrypt", KEY, &[], deny(Some("OnlyAlice"), ACCOUNT)),
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, SESSION, "kms:Encrypt", KEY, &[], deny(Some("OnlyAlice"), ACCOUNT)),
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, OUTSIDER, "kms:Encrypt", KEY, &[], deny(Some("OnlyAlice"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_POLICY, S3, "kms:Encrypt", KEY, &[], deny(Some("OnlyAlice"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_USER_ONLY_POLICY, ALICE, "kms:Encrypt", KEY, &[], deny(Some("OnlyAlice"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_ROLE_POLICY, SESSION, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_PRINCIPAL_ROLE_POLICY, OTHER_SESSION, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_PRINCIPAL_ROLE_POLICY, ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_PRINCIPAL_ROLE_POLICY, PATH_SESSION, "kms:Encrypt", KEY, &[], deny(Some("OnlyAdmin"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_ROLE_POLICY, ALICE, "kms:Encrypt", KEY, &[], deny(Some("OnlyAdmin"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_SERVICE_POLICY, S3, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_PRINCIPAL_SERVICE_POLICY, LOGS, "kms:Encrypt", KEY, &[], deny(Some("OnlyS3"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_SERVICE_POLICY, ROOT, "kms:Encrypt", KEY, &[], deny(Some("OnlyS3"), NOTHING)),
    (KEY_POLICY, NOT_PRINCIPAL_EVERYONE_POLICY, OUTSIDER, "kms:Encrypt", KEY, &[], NOTHING),
    // NotAction.
    (KEY_POLICY, NOT_ACTION_POLICY, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, NOT_ACTION_POLICY, ALICE, "kms:ScheduleKeyDeletion", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_ACTION_POLICY, ALICE, "kms:scheduleKEYdeletion", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_ACTION_POLICY, ALICE, "kms:DeleteAlias", KEY, &[], NOTHING),
    (KEY_POLICY, NOT_ACTION_POLICY, ALICE, "sts:AssumeRole", KEY, &[], ALLOW),
    (KEY_POLICY, DENY_NOT_ACTION_POLICY, ROOT, "kms:DescribeKey", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, DENY_NOT_ACTION_POLICY, ROOT, "kms:Encrypt", KEY, &[], deny(Some("ReadOnly"), ALLOW_AND_ACCOUNT)),
    // Key policy statements without Action or Resource never match.
    (KEY_POLICY, NO_RESOURCE_POLICY, ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, NO_ACTION_POLICY, ROOT, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, KEY_RESOURCE_POLICY, ROOT, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, KEY_RESOURCE_POLICY, ROOT, "kms:Encrypt", EU_KEY, &[], NOTHING),
    // Conditions with principals, as the console's default statements use them.
    (KEY_POLICY, GRANTS_POLICY, ALICE, "kms:CreateGrant", KEY, &[("kms:GrantIsForAWSResource", &["true"])], ALLOW),
    (KEY_POLICY, GRANTS_POLICY, ALICE, "kms:CreateGrant", KEY, &[("kms:GrantIsForAWSResource", &["false"])], NOTHING),
    (KEY_POLICY, GRANTS_POLICY, ALICE, "kms:CreateGrant", KEY, &[], NOTHING),
    (KEY_POLICY, GRANTS_POLICY, ALICE, "kms:Encrypt", KEY, &[("kms:GrantIsForAWSResource", &["true"])], NOTHING),
    (KEY_POLICY, GRANTS_POLICY, BOB, "kms:ListGrants", KEY, &[("kms:GrantIsForAWSResource", &["true"])], NOTHING),
    (KEY_POLICY, CONTEXT_POLICY, ALICE, "kms:Decrypt", KEY, &[("kms:EncryptionContext:department", &["IT"])], ALLOW),
    (KEY_POLICY, CONTEXT_POLICY, ALICE, "kms:Decrypt", KEY, &[("kms:EncryptionContext:Department", &["it"])], NOTHING),
    (KEY_POLICY, CONTEXT_POLICY, ALICE, "kms:Decrypt", KEY, &[], NOTHING),
    (KEY_POLICY, CONTEXT_KEYS_POLICY, ALICE, "kms:Encrypt", KEY, &[("kms:EncryptionContextKeys", &["Department"])], ALLOW),
    (KEY_POLICY, CONTEXT_KEYS_POLICY, ALICE, "kms:Encrypt", KEY, &[("kms:EncryptionContextKeys", &["Department", "Owner"])], NOTHING),
    (KEY_POLICY, CONTEXT_KEYS_POLICY, ALICE, "kms:Encrypt", KEY, &[], NOTHING),
    (KEY_POLICY, VIA_SERVICE_POLICY, ALICE, "kms:Decrypt", KEY, &[("kms:CallerAccount", &["111122223333"]), ("kms:ViaService", &["ec2.us-west-2.amazonaws.com"])], ALLOW),
    (KEY_POLICY, VIA_SERVICE_POLICY, ALICE, "kms:Decrypt", KEY, &[("kms:CallerAccount", &["111122223333"]), ("kms:ViaService", &["s3.us-west-2.amazonaws.com"])], NOTHING),
    (KEY_POLICY, VIA_SERVICE_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[("kms:CallerAccount", &["444455556666"]), ("kms:ViaService", &["ec2.us-west-2.amazonaws.com"])], NOTHING),
    (KEY_POLICY, TWO_ALLOWS_POLICY, ALICE, "kms:Encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, TWO_ALLOWS_POLICY, ALICE, "kms:Decrypt", KEY, &[], ACCOUNT),
    // Identity policies: Resource patterns, one ARN segment at a time.
    (IDENTITY, ID_KEYS, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_KEYS, OUTSIDER, "kms:Encrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_KEYS, ALICE, "kms:Encrypt", EU_KEY, &[], NOTHING),
    (IDENTITY, ID_KEYS, ALICE, "kms:Encrypt", "arn:aws:kms:us-east-1:111122223333:alias/app", &[], NOTHING),
    (IDENTITY, ID_KEYS, ALICE, "kms:Decrypt", KEY, &[], NOTHING),
    (IDENTITY, ID_ANY_REGION, ALICE, "kms:Encrypt", EU_KEY, &[], ALLOW),
    (IDENTITY, ID_ANY_REGION, ALICE, "kms:Encrypt", FOREIGN_KEY, &[], NOTHING),
    (IDENTITY, ID_ONE_CHAR_REGION, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_ONE_CHAR_REGION, ALICE, "kms:Encrypt", "arn:aws:kms:us-west-1:111122223333:key/k", &[], NOTHING),
    (IDENTITY, ID_UPPERCASE_KEY, ALICE, "kms:Encrypt", KEY, &[], NOTHING),
    (IDENTITY, ID_NOT_RESOURCE, ALICE, "kms:Encrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_NOT_RESOURCE, ALICE, "kms:Encrypt", SECRET_KEY, &[], NOTHING),
    // Policy variables in Resource, with defaults; none before version 2012-10-17.
    (IDENTITY, ID_ALIAS_VARIABLE, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/alice-1", &[("aws:username", &["alice"])], ALLOW),
    (IDENTITY, ID_ALIAS_VARIABLE, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/bob-1", &[("aws:username", &["alice"])], NOTHING),
    (IDENTITY, ID_ALIAS_VARIABLE, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/alice-1", &[], NOTHING),
    (IDENTITY, ID_ALIAS_DEFAULT, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/shared/x", &[], ALLOW),
    (IDENTITY, ID_ALIAS_DEFAULT, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/blue/x", &[("aws:PrincipalTag/team", &["blue"])], ALLOW),
    (IDENTITY, ID_ALIAS_DEFAULT, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/shared/x", &[("aws:PrincipalTag/team", &["blue"])], NOTHING),
    (IDENTITY, ID_ALIAS_2008, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/alice-1", &[("aws:username", &["alice"])], NOTHING),
    (IDENTITY, ID_ALIAS_2008, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/${aws:username}-1", &[("aws:username", &["alice"])], ALLOW),
    (IDENTITY, ID_ALIAS_NO_VERSION, ALICE, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/${aws:username}-1", &[("aws:username", &["alice"])], ALLOW),
    (IDENTITY, ID_ESCAPED_STAR, ALICE, "s3:GetObject", "arn:aws:s3:::bucket/*", &[], ALLOW),
    (IDENTITY, ID_ESCAPED_STAR, ALICE, "s3:GetObject", "arn:aws:s3:::bucket/x", &[], NOTHING),
    // Action wildcards, without regard to case.
    (IDENTITY, ID_ACTIONS, ALICE, "kms:GenerateDataKey", KEY, &[], ALLOW),
    (IDENTITY, ID_ACTIONS, ALICE, "kms:GenerateDataKeyPairWithoutPlaintext", KEY, &[], ALLOW),
    (IDENTITY, ID_ACTIONS, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_ACTIONS, ALICE, "kms:Encrypt", KEY, &[], NOTHING),
    (IDENTITY, ID_ACTIONS, ALICE, "kms:describekey", KEY, &[], ALLOW),
    (IDENTITY, ID_ACTIONS, ALICE, "kms:", KEY, &[], NOTHING),
    (IDENTITY, ID_ACTIONS, ALICE, "kmsx:GenerateDataKey", KEY, &[], NOTHING),
    (IDENTITY, ID_EVERYTHING, ALICE, "sts:AssumeRole", "arn:aws:iam::111122223333:role/admin", &[], ALLOW),
    (IDENTITY, ID_EVERYTHING, ALICE, "", "", &[], ALLOW),
    // Deny precedence in identity policies.
    (IDENTITY, ID_NETWORK, ALICE, "kms:Decrypt", KEY, &[("aws:SourceIp", &["10.1.2.3"])], ALLOW),
    (IDENTITY, ID_NETWORK, ALICE, "kms:Decrypt", KEY, &[("aws:SourceIp", &["8.8.8.8"])], deny(Some("DenyOutsideNetwork"), ALLOW)),
    (IDENTITY, ID_NETWORK, ALICE, "kms:Decrypt", KEY, &[], deny(Some("DenyOutsideNetwork"), ALLOW)),
    (IDENTITY, ID_DENY_NOT_ACTION, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_DENY_NOT_ACTION, ALICE, "s3:GetObject", "arn:aws:s3:::bucket/x", &[], deny(Some("KmsOnly"), ALLOW)),
    (IDENTITY, ID_DENY_NOT_RESOURCE, ALICE, "kms:Decrypt", KEY, &[], ALLOW),
    (IDENTITY, ID_DENY_NOT_RESOURCE, ALICE, "kms:Decrypt", EU_KEY, &[], deny(Some("ThisRegionOnly"), ALLOW)),
    (IDENTITY, ID_TAGS, ALICE, "kms:TagResource", KEY, &[("aws:TagKeys", &["team"]), ("aws:RequestTag/team", &["blue"]), ("aws:PrincipalTag/team", &["blue"])], ALLOW),
    (IDENTITY, ID_TAGS, ALICE, "kms:TagResource", KEY, &[("aws:TagKeys", &["team", "owner"]), ("aws:RequestTag/team", &["blue"]), ("aws:PrincipalTag/team", &["blue"])], NOTHING),
    (IDENTITY, ID_TAGS, ALICE, "kms:TagResource", KEY, &[("aws:TagKeys", &["team"]), ("aws:RequestTag/team", &["red"]), ("aws:PrincipalTag/team", &["blue"])], NOTHING),
    // NotResource in a key policy, NotPrincipal naming a role session with NotAction, NotAction with NotResource.
    (KEY_POLICY, NOT_RESOURCE_KEY_POLICY, ROOT, "kms:Encrypt", KEY, &[], ALLOW_AND_ACCOUNT),
    (KEY_POLICY, NOT_RESOURCE_KEY_POLICY, ALICE, "kms:Encrypt", KEY, &[], ACCOUNT),
    (KEY_POLICY, NOT_RESOURCE_KEY_POLICY, ROOT, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/x", &[], NOTHING),
    (KEY_POLICY, NOT_PRINCIPAL_SESSION_POLICY, SESSION, "kms:Encrypt", KEY, &[], ALLOW),
    (KEY_POLICY, NOT_PRINCIPAL_SESSION_POLICY, OTHER_SESSION, "kms:Encrypt", KEY, &[], deny(Some("OnlyThisSession"), ALLOW)),
    (KEY_POLICY, NOT_PRINCIPAL_SESSION_POLICY, OTHER_SESSION, "kms:DescribeKey", KEY, &[], ALLOW),
    (KEY_POLICY, NOT_PRINCIPAL_SESSION_POLICY, OUTSIDER, "kms:Decrypt", KEY, &[], deny(Some("OnlyThisSession"), ALLOW)),
    (IDENTITY, ID_DENY_NOT_BOTH, ALICE, "kms:Encrypt", KEY, &[], deny(Some("WriteProtect"), ALLOW)),
    (IDENTITY, ID_DENY_NOT_BOTH, ALICE, "kms:DescribeKey", KEY, &[], ALLOW),
    (IDENTITY, ID_DENY_NOT_BOTH, ALICE, "kms:Encrypt", "arn:aws:kms:us-east-1:111122223333:key/public-1", &[], ALLOW),
    // Policy variables naming the account and the Region in Resource and NotResource.
    (IDENTITY, ID_ACCOUNT_VARIABLE, ALICE, "kms:Encrypt", KEY, &[("aws:PrincipalAccount", &["111122223333"])], ALLOW),
    (IDENTITY, ID_ACCOUNT_VARIABLE, ALICE, "kms:Encrypt", FOREIGN_KEY, &[("aws:PrincipalAccount", &["111122223333"])], NOTHING),
    (IDENTITY, ID_ACCOUNT_VARIABLE, ALICE, "kms:Encrypt", KEY, &[], NOTHING),
    (IDENTITY, ID_TWO_VARIABLES, ALICE, "kms:Encrypt", KEY, &[("aws:RequestedRegion", &["us-east-1"]), ("aws:PrincipalAccount", &["111122223333"])], ALLOW),
    (IDENTITY, ID_TWO_VARIABLES, ALICE, "kms:Encrypt", EU_KEY, &[("aws:RequestedRegion", &["us-east-1"]), ("aws:PrincipalAccount", &["111122223333"])], NOTHING),
    (IDENTITY, ID_NOT_RESOURCE_VARIABLE, ALICE, "kms:Encrypt", SECRET_KEY, &[("aws:PrincipalTag/forbidden", &["secret-1"])], NOTHING),
    (IDENTITY, ID_NOT_RESOURCE_VARIABLE, ALICE, "kms:Encrypt", KEY, &[("aws:PrincipalTag/forbidden", &["secret-1"])], ALLOW),
    // Session policies read like identity policies.
    (SESSION_KIND, SESSION_SCOPE, SESSION, "kms:Decrypt", EU_KEY, &[], ALLOW),
    (SESSION_KIND, SESSION_SCOPE, SESSION, "kms:Encrypt", EU_KEY, &[], NOTHING),
    (SESSION_KIND, SESSION_SCOPE, SESSION, "kms:Decrypt", FOREIGN_KEY, &[], NOTHING),
    // Trust policies: the role is the resource.
    (TRUST, TRUST_ACCOUNT, OUTSIDER, "sts:AssumeRole", ROLE, &[("aws:MultiFactorAuthPresent", &["true"])], ACCOUNT),
    (TRUST, TRUST_ACCOUNT, OUTSIDER, "sts:AssumeRole", ROLE, &[], NOTHING),
    (TRUST, TRUST_ACCOUNT, OUTSIDE_ROOT, "sts:AssumeRole", ROLE, &[("aws:MultiFactorAuthPresent", &["true"])], ALLOW_AND_ACCOUNT),
    (TRUST, TRUST_ACCOUNT, ALICE, "sts:AssumeRole", ROLE, &[("aws:MultiFactorAuthPresent", &["true"])], NOTHING),
    (TRUST, TRUST_SERVICE, EC2, "sts:AssumeRole", ROLE, &[], ALLOW),
    (TRUST, TRUST_SERVICE, EC2, "sts:assumerole", "anything", &[], ALLOW),
    (TRUST, TRUST_SERVICE, EC2, "sts:TagSession", ROLE, &[], NOTHING),
    (TRUST, TRUST_SERVICE, S3, "sts:AssumeRole", ROLE, &[], NOTHING),
    (TRUST, TRUST_WEB_IDENTITY, WEB_IDENTITY, "sts:AssumeRoleWithWebIdentity", ROLE, &[("cognito-identity.amazonaws.com:aud", &["us-east-1:pool"])], ALLOW),
    (TRUST, TRUST_WEB_IDENTITY, WEB_IDENTITY, "sts:AssumeRoleWithWebIdentity", ROLE, &[("cognito-identity.amazonaws.com:aud", &["us-east-1:other"])], NOTHING),
    (TRUST, TRUST_WEB_IDENTITY, ALICE, "sts:AssumeRoleWithWebIdentity", ROLE, &[("cognito-identity.amazonaws.com:aud", &["us-east-1:pool"])], NOTHING),
    (TRUST, TRUST_DENY, ALICE, "sts:AssumeRole", ROLE, &[], ACCOUNT),
    (TRUST, TRUST_DENY, ALICE, "sts:TagSession", ROLE, &[], deny(Some("NoTags"), ACCOUNT)),
];

fn context_of(entries: Entries) -> MapContext {
    let mut context = MapContext::new();
    for (key, values) in entries {
        context.insert(key, values.iter().copied());
    }
    context
}

#[test]
fn every_condition_operator_behaves_as_documented() {
    let mut failures = Vec::new();
    for (index, (condition, entries, holds)) in CONDITIONS.iter().enumerate() {
        let context = context_of(entries);
        let request = Request {
            principal: ALICE,
            action: "kms:Encrypt",
            resource: KEY,
            context: &context,
        };
        for effect in ["Allow", "Deny"] {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Case{index}","Effect":"{effect}","Action":"kms:*","Resource":"*","Condition":{condition}}}]}}"#
            );
            let policy = match Policy::parse(&text, PolicyKind::Identity) {
                Ok(policy) => policy,
                Err(e) => {
                    failures.push(format!("#{index} {condition}: does not parse: {e}"));
                    break;
                }
            };
            let outcome = policy.evaluate(&request);
            let matched = match effect {
                "Allow" => outcome.allow,
                _ => outcome.explicit_deny,
            };
            if matched != *holds {
                failures.push(format!(
                    "#{index} {effect} {condition} with {entries:?}: expected {holds}, got {outcome:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} condition cases failed:\n{}",
        failures.len(),
        CONDITIONS.len(),
        failures.join("\n")
    );
}

#[test]
fn whole_policies_produce_the_expected_outcomes() {
    let mut failures = Vec::new();
    for (index, (kind, text, principal, action, resource, entries, expect)) in
        STATEMENTS.iter().enumerate()
    {
        let policy = match Policy::parse(text, *kind) {
            Ok(policy) => policy,
            Err(e) => {
                failures.push(format!("#{index} ({kind:?}) does not parse: {e}\n  {text}"));
                continue;
            }
        };
        let context = context_of(entries);
        let request = Request {
            principal: *principal,
            action,
            resource,
            context: &context,
        };
        let outcome = policy.evaluate(&request);
        if outcome != expect.outcome() {
            failures.push(format!(
                "#{index} ({kind:?}) {} {action} {resource} {entries:?}:\n  expected {:?}\n  got      {outcome:?}\n  {text}",
                principal.arn,
                expect.outcome()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} policy cases failed:\n{}",
        failures.len(),
        STATEMENTS.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_is_large_enough_to_mean_something() {
    assert!(
        CONDITIONS.len() >= 450,
        "{} condition cases",
        CONDITIONS.len()
    );
    assert!(STATEMENTS.len() >= 180, "{} policy cases", STATEMENTS.len());
}

#[test]
fn evaluation_is_repeatable_and_policies_are_reusable() {
    let policy = Policy::parse(DENY_DELETION_POLICY, PolicyKind::KeyPolicy).expect("parses");
    let context = MapContext::new();
    let request = Request {
        principal: ROOT,
        action: "kms:ScheduleKeyDeletion",
        resource: KEY,
        context: &context,
    };
    let first = policy.evaluate(&request);
    for _ in 0..100 {
        assert_eq!(policy.evaluate(&request), first);
    }
    assert_eq!(policy.kind(), PolicyKind::KeyPolicy);
    assert_eq!(policy.id(), None);
    let default = Policy::parse(DEFAULT_KEY_POLICY, PolicyKind::KeyPolicy).expect("parses");
    assert_eq!(default.id(), Some("key-default-1"));
}
