//! Parser errors: every refusal says what is wrong and where, and close relatives of each refused
//! document are accepted.

use crate::{Policy, PolicyError, PolicyKind};

const KEY_POLICY: PolicyKind = PolicyKind::KeyPolicy;
const IDENTITY: PolicyKind = PolicyKind::Identity;
const TRUST: PolicyKind = PolicyKind::Trust;
const SESSION: PolicyKind = PolicyKind::Session;

/// Wraps one statement's extra elements into a key policy statement that is otherwise valid.
fn key_statement(extra: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"{extra}}}]}}"#
    )
}

/// A key policy statement with this Condition element.
fn key_condition(condition: &str) -> String {
    key_statement(&format!(r#","Condition":{condition}"#))
}

/// An identity policy statement with this Condition element.
fn identity_condition(condition: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{condition}}}]}}"#
    )
}

fn refused() -> Vec<(PolicyKind, String, &'static str)> {
    vec![
        // Documents.
        (KEY_POLICY, "not json".to_owned(), "The policy is not valid JSON: "),
        (KEY_POLICY, "[]".to_owned(), "The policy must be a JSON object."),
        (KEY_POLICY, r#"{"Version":"2012-10-17"}"#.to_owned(), "The policy has no Statement."),
        (KEY_POLICY, r#"{"Statement":"x"}"#.to_owned(), "The policy's Statement must be an object or an array of objects."),
        (KEY_POLICY, r#"{"Statement":[],"Bogus":1}"#.to_owned(), "The policy has an unknown element 'Bogus'."),
        (KEY_POLICY, r#"{"Version":"2011-01-01","Statement":[]}"#.to_owned(), "The policy's Version '2011-01-01' is not supported: use \"2012-10-17\"."),
        (KEY_POLICY, r#"{"Version":2012,"Statement":[]}"#.to_owned(), "The policy's Version must be a string"),
        (KEY_POLICY, r#"{"Id":7,"Statement":[]}"#.to_owned(), "The policy's Id must be a string."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow"},1]}"#.to_owned(), "Statement 0: a key policy statement needs exactly one of Principal or NotPrincipal."),
        (IDENTITY, r#"{"Statement":[1]}"#.to_owned(), "Statement 0: a statement must be a JSON object."),
        (KEY_POLICY, "{\"Statement\":[]}\u{4e00}".to_owned(), "The policy contains the character U+4E00; key policies allow only printable ASCII and Latin-1 characters"),
        (KEY_POLICY, "{\"Statement\":[]}\u{7}".to_owned(), "U+0007"),
        (KEY_POLICY, format!("{}{}", "[".repeat(200), "]".repeat(200)), "The policy is not valid JSON: recursion limit exceeded"),
        // Statement elements.
        (KEY_POLICY, key_statement(r#","Sid":5"#), "Statement 0: Sid must be a string."),
        (KEY_POLICY, key_statement(r#","Actions":"kms:*""#), "Statement 0: unknown element 'Actions'."),
        (KEY_POLICY, key_statement(r#","Sid":"Allow use of the key","Bogus":1"#), "Statement 0 (Sid \"Allow use of the key\"): unknown element 'Bogus'."),
        (KEY_POLICY, r#"{"Statement":[{"Principal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: the statement has no Effect."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Effect must be \"Allow\" or \"Deny\"."),
        (KEY_POLICY, key_statement(r#","NotAction":"kms:Decrypt""#), "Statement 0: a statement cannot have both Action and NotAction."),
        (KEY_POLICY, key_statement(r#","NotResource":"*""#), "Statement 0: a statement cannot have both Resource and NotResource."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":3,"Resource":"*"}]}"#.to_owned(), "Statement 0: Action must be a string or an array of strings."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"}]}"#.to_owned(), "Statement 0: Action must not be an empty list."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":["kms:*",1],"Resource":"*"}]}"#.to_owned(), "Statement 0: NotAction must be a string or an array of strings."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"Encrypt","Resource":"*"}]}"#.to_owned(), "Statement 0: Action 'Encrypt' must be \"*\" or a service prefix and an action, such as \"kms:Encrypt\"."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:","Resource":"*"}]}"#.to_owned(), "Action 'kms:' must be"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*:Encrypt","Resource":"*"}]}"#.to_owned(), "Action '*:Encrypt' must be"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"key/1"}]}"#.to_owned(), "Statement 0: Resource 'key/1' must be \"*\" or an ARN."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","NotResource":[]}]}"#.to_owned(), "Statement 0: NotResource must not be an empty list."),
        (IDENTITY, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:1:alias/${aws:username"}]}"#.to_owned(), "Statement 0: Resource 'arn:aws:kms:*:1:alias/${aws:username': a policy variable '${' is not closed with '}'."),
        (KEY_POLICY, key_statement(r#","Condition":[]"#), "Statement 0: Condition must be an object."),
        // Principals.
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"alice","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal names no principals."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal has an AWS entry that must not be an empty list."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":5},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal has an AWS entry that must be a string or an array of strings."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal names 'alice', which is neither an account ID nor a principal ARN."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"11112222333"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which is neither an account ID nor a principal ARN"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal names 'arn:aws:iam::111122223333:user/*': a principal cannot contain wildcards; use \"*\" alone, or a condition on aws:PrincipalArn."),
        (KEY_POLICY, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/${aws:username}"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal names 'arn:aws:iam::111122223333:user/${aws:username}': a principal cannot contain policy variables."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"Federated":"${aws:username}"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which must be a name without wildcards, variables or spaces"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:group/admins"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which is not an account, IAM user, IAM role, role session or federated user"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam:us-east-1:111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which is not an account, IAM user"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/admin"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which is not an account, IAM user"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "which is not an account, IAM user"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"CanonicalUser":"abc"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal has an unknown principal type 'CanonicalUser': use AWS, Service or Federated."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"*.amazonaws.com"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal has the Service principal '*.amazonaws.com', which must be a name without wildcards, variables or spaces."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: a key policy statement needs exactly one of Principal or NotPrincipal."),
        (KEY_POLICY, r#"{"Statement":[{"Sid":"Open","Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0 (Sid \"Open\"): NotPrincipal can only be used with \"Effect\": \"Deny\"."),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"bob"},"Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: NotPrincipal names 'bob'"),
        (IDENTITY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: Principal is not allowed in an identity or session policy, which applies to the identity it is attached to."),
        (SESSION, r#"{"Statement":[{"Effect":"Deny","NotPrincipal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0: NotPrincipal is not allowed in an identity or session policy"),
        (IDENTITY, r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#.to_owned(), "Statement 0: the statement has no Action or NotAction."),
        (SESSION, r#"{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}"#.to_owned(), "Statement 0: the statement has no Resource or NotResource."),
        (IDENTITY, r#"{"Statement":[{"Sid":"Allow all","Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 0 (Sid \"Allow all\"): an IAM policy's Sid may contain only letters and digits."),
        (IDENTITY, r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"kms:*","Resource":"*"}]}"#.to_owned(), "Statement 1 (Sid \"A\"): another statement already has this Sid."),
        // Trust policies.
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#.to_owned(), "Statement 0: a trust policy statement needs a Principal, and cannot have NotPrincipal."),
        (TRUST, r#"{"Statement":[{"Effect":"Deny","NotPrincipal":"*","Action":"sts:AssumeRole"}]}"#.to_owned(), "Statement 0: NotPrincipal is not allowed in a trust policy."),
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}]}"#.to_owned(), "Statement 0: a trust policy cannot have Resource."),
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","NotResource":"*"}]}"#.to_owned(), "Statement 0: a trust policy cannot have NotResource."),
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}]}"#.to_owned(), "Statement 0: Action 'kms:Decrypt' is not allowed in a trust policy, which is about sts actions such as sts:AssumeRole."),
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#.to_owned(), "Statement 0: the statement has no Action or NotAction."),
        // Conditions.
        (KEY_POLICY, key_condition(r#"{"StringEqualz":{"aws:username":"a"}}"#), "Statement 0: Condition: unknown condition operator 'StringEqualz'."),
        (KEY_POLICY, key_condition(r#"{"IfExists":{"aws:username":"a"}}"#), "unknown condition operator 'IfExists'"),
        (KEY_POLICY, key_condition(r#"{"StringEqualsIfExistsIfExists":{"aws:username":"a"}}"#), "unknown condition operator 'StringEqualsIfExistsIfExists'"),
        (KEY_POLICY, key_condition(r#"{"ForSomeValues:StringEquals":{"aws:TagKeys":"a"}}"#), "Statement 0: Condition: unknown set operator 'ForSomeValues' in 'ForSomeValues:StringEquals': use ForAnyValue or ForAllValues."),
        (KEY_POLICY, key_condition(r#"{"ForAnyValue:Bogus":{"aws:TagKeys":"a"}}"#), "unknown condition operator 'ForAnyValue:Bogus'"),
        (KEY_POLICY, key_condition(r#"{"NullIfExists":{"aws:TagKeys":"true"}}"#), "Statement 0: Condition: 'NullIfExists': the Null operator cannot be combined with IfExists."),
        (KEY_POLICY, key_condition(r#"{"ForAllValues:Null":{"aws:TagKeys":"true"}}"#), "'ForAllValues:Null': the Null operator cannot be combined with a set operator."),
        (KEY_POLICY, key_condition(r#"{"Null":{"aws:TagKeys":"maybe"}}"#), "Statement 0: Condition: 'Null' key 'aws:TagKeys': 'maybe' is not true or false."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":"aws:username"}"#), "Statement 0: Condition: the value of operator 'StringEquals' must be an object mapping condition keys to values."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{}}"#), "Statement 0: Condition: operator 'StringEquals' names no condition keys."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"username":"a"}}"#), "Statement 0: Condition: condition key 'username' under 'StringEquals' must be a service prefix and a name, such as 'aws:SourceIp' or 'kms:CallerAccount'."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:":"a"}}"#), "condition key 'aws:' under 'StringEquals' must be"),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:user name":"a"}}"#), "condition key 'aws:user name' under 'StringEquals' must be"),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:username":null}}"#), "Statement 0: Condition: 'StringEquals' key 'aws:username': a condition value cannot be null."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:username":{"a":1}}}"#), "'StringEquals' key 'aws:username': a condition value must be a string, number or boolean, or a list of them."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:username":[["a"]]}}"#), "a condition value must be a string, number or boolean"),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:username":[]}}"#), "'StringEquals' key 'aws:username': the list of values is empty."),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"aws:username":"${aws:userid"}}"#), "'StringEquals' key 'aws:username': a policy variable '${' is not closed with '}'."),
        (KEY_POLICY, key_condition(r#"{"StringLike":{"aws:username":"${aws:userid, default}"}}"#), "must be in single quotes"),
        (KEY_POLICY, key_condition(r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::${}"}}"#), "'ArnLike' key 'aws:SourceArn': the policy variable '${}' has no valid key name."),
        (KEY_POLICY, key_condition(r#"{"NumericLessThan":{"kms:ScheduleKeyDeletionPendingWindowInDays":"ten"}}"#), "Statement 0: Condition: 'NumericLessThan' key 'kms:ScheduleKeyDeletionPendingWindowInDays': 'ten' is not a number."),
        (KEY_POLICY, key_condition(r#"{"NumericEquals":{"test:N":"1e3"}}"#), "'1e3' is not a number"),
        (KEY_POLICY, key_condition(r#"{"NumericEquals":{"test:N":"${aws:username}"}}"#), "'${aws:username}' is not a number"),
        (KEY_POLICY, key_condition(r#"{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}"#), "Statement 0: Condition: 'DateLessThan' key 'aws:CurrentTime': 'tomorrow' is not a date: use ISO 8601 (2026-01-31T00:00:00Z) or seconds since the epoch."),
        (KEY_POLICY, key_condition(r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-02-30"}}"#), "'2026-02-30' is not a date"),
        (KEY_POLICY, key_condition(r#"{"DateEquals":{"aws:CurrentTime":true}}"#), "'true' is not a date"),
        (KEY_POLICY, key_condition(r#"{"Bool":{"aws:SecureTransport":"yes"}}"#), "Statement 0: Condition: 'Bool' key 'aws:SecureTransport': 'yes' is not true or false."),
        (KEY_POLICY, key_condition(r#"{"Bool":{"aws:SecureTransport":1}}"#), "'1' is not true or false"),
        (KEY_POLICY, key_condition(r#"{"BinaryEquals":{"test:Blob":"not base64!"}}"#), "Statement 0: Condition: 'BinaryEquals' key 'test:Blob': 'not base64!' is not base64."),
        (KEY_POLICY, key_condition(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#), "Statement 0: Condition: 'IpAddress' key 'aws:SourceIp': '10.0.0.0/33' is not an IP address or CIDR range such as 203.0.113.0/24 or 2001:db8::/32."),
        (KEY_POLICY, key_condition(r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","intranet"]}}"#), "'intranet' is not an IP address or CIDR range"),
        (KEY_POLICY, key_condition(r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/129"}}"#), "'2001:db8::/129' is not an IP address"),
        (KEY_POLICY, key_condition(r#"{"ForAllValues:StringEquals":{"kms:EncryptionContext:Department":"IT"}}"#), "Statement 0: Condition: OverlyPermissiveCondition: 'ForAllValues:StringEquals' uses the ForAllValues set operator with the single-valued condition key 'kms:EncryptionContext:Department', which makes the condition true for requests that omit the key; use the operator without ForAllValues."),
        (KEY_POLICY, key_condition(r#"{"ForAllValues:StringLike":{"KMS:ENCRYPTIONCONTEXT:Department":"I*"}}"#), "OverlyPermissiveCondition"),
        (KEY_POLICY, key_condition(r#"{"forallvalues:StringEquals":{"aws:RequestTag/team":"blue"}}"#), "OverlyPermissiveCondition: 'forallvalues:StringEquals' uses the ForAllValues set operator with the single-valued condition key 'aws:RequestTag/team'"),
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"Allow use of the key","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bogus":{"a:b":"c"}}}]}"#.to_owned(), "Statement 1 (Sid \"Allow use of the key\"): Condition: unknown condition operator 'Bogus'."),
        (IDENTITY, identity_condition(r#"{"IpAddress":{"aws:SourceIp":"nowhere"}}"#), "Statement 0: Condition: 'IpAddress' key 'aws:SourceIp': 'nowhere' is not an IP address"),
    ]
}

#[test]
fn refusals_say_what_is_wrong_and_where() {
    let mut failures = Vec::new();
    let cases = refused();
    for (kind, document, fragment) in &cases {
        match Policy::parse(document, *kind) {
            Err(PolicyError::Malformed(message)) if message.contains(fragment) => {}
            Err(other) => failures.push(format!(
                "{kind:?} {document}\n  expected …{fragment}…\n  got      {other}"
            )),
            Ok(_) => failures.push(format!("{kind:?} {document}\n  was accepted")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} refusals went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn accepted() -> Vec<(PolicyKind, String)> {
    vec![
        (KEY_POLICY, r#"{"Statement":[]}"#.to_owned()),
        (IDENTITY, r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned()),
        (KEY_POLICY, r#"{"Version":"2008-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}}"#.to_owned()),
        // Key policy statements without Action or Resource are accepted but never match.
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#.to_owned()),
        // Key policy Sids may have spaces and repeat.
        (KEY_POLICY, r#"{"Statement":[{"Sid":"Allow use","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"Allow use","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]}"#.to_owned()),
        (KEY_POLICY, key_statement(r#","Sid":"Key administrators (ops) - Latin-1: Ünïcödé""#)),
        (IDENTITY, r#"{"Statement":[{"Sid":"","Effect":"Allow","Action":"kms:*","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#.to_owned()),
        // Every principal form.
        (KEY_POLICY, r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*","111122223333","arn:aws:iam::111122223333:root","arn:aws-cn:iam::111122223333:user/path/alice","arn:aws:iam::111122223333:role/r","arn:aws:sts::111122223333:assumed-role/r/s","arn:aws:sts::111122223333:federated-user/f"],"Service":["s3.amazonaws.com"],"Federated":["arn:aws:iam::111122223333:saml-provider/idp","cognito-identity.amazonaws.com"]},"Action":"kms:*","Resource":"*"}]}"#.to_owned()),
        (TRUST, r#"{"Statement":[{"Effect":"Allow","Principal":{"Federated":"accounts.google.com"},"Action":["sts:AssumeRoleWithWebIdentity","sts:TagSession"]},{"Effect":"Allow","Principal":"*","Action":"*"}]}"#.to_owned()),
        // Every operator, with IfExists and set qualifiers, in any case.
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"a:b":"c"},"StringNotEquals":{"a:b":"c"},"StringEqualsIgnoreCase":{"a:b":"c"},"StringNotEqualsIgnoreCase":{"a:b":"c"},"StringLike":{"a:b":"c*"},"StringNotLike":{"a:b":"c?"},"NumericEquals":{"a:b":1},"NumericNotEquals":{"a:b":"1.5"},"NumericLessThan":{"a:b":"-1"},"NumericLessThanEquals":{"a:b":2},"NumericGreaterThan":{"a:b":3},"NumericGreaterThanEquals":{"a:b":4},"DateEquals":{"a:b":"2026-01-31"},"DateNotEquals":{"a:b":1769817600},"DateLessThan":{"a:b":"2026-01-31T00:00:00Z"},"DateLessThanEquals":{"a:b":"2026-01-31T00:00:00.123+05:30"},"DateGreaterThan":{"a:b":"1769817600"},"DateGreaterThanEquals":{"a:b":"2026-01-31T00:00Z"},"Bool":{"a:b":true},"BinaryEquals":{"a:b":"AAEC"},"IpAddress":{"a:b":"10.0.0.0/8"},"NotIpAddress":{"a:b":"2001:db8::/32"},"ArnEquals":{"a:b":"arn:aws:iam::1:role/r"},"ArnLike":{"a:b":"arn:aws:iam::*:role/*"},"ArnNotEquals":{"a:b":"*"},"ArnNotLike":{"a:b":"arn:*"},"Null":{"a:b":false}}"#)),
        (KEY_POLICY, key_condition(r#"{"StringEqualsIfExists":{"a:b":"c"},"ForAnyValue:StringLikeIfExists":{"a:b":"c"},"ForAllValues:NumericLessThanIfExists":{"a:b":"1"},"foranyvalue:dateequalsifexists":{"a:b":"2026-01-31"},"BOOLIFEXISTS":{"a:b":"TRUE"}}"#)),
        // ForAllValues is fine with multi-valued keys, and with any key outside key policies.
        (KEY_POLICY, key_condition(r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b"]}}"#)),
        (KEY_POLICY, key_condition(r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContext:Department":"IT"}}"#)),
        (IDENTITY, identity_condition(r#"{"ForAllValues:StringEquals":{"kms:EncryptionContext:Department":"IT","aws:RequestTag/team":"blue"}}"#)),
        // Variables only mean something in 2012-10-17 policies; elsewhere `${` is text.
        (KEY_POLICY, r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"a:b":"${unclosed"}}}]}"#.to_owned()),
        (IDENTITY, r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:1:alias/${"}]}"#.to_owned()),
        (KEY_POLICY, key_condition(r#"{"StringEquals":{"a:b":"${aws:username}${*}${?}${$}${aws:PrincipalTag/team, 'x, y'}"},"Bool":{"a:b":"${c:d}"}}"#)),
        // Identity policies have no size limit of their own here.
        (IDENTITY, format!(r#"{{"Statement":[]}}{}"#, " ".repeat(40_000))),
        (KEY_POLICY, format!(r#"{{"Statement":[]}}{}"#, " ".repeat(32_768 - 16))),
    ]
}

#[test]
fn close_relatives_are_accepted() {
    let mut failures = Vec::new();
    for (kind, document) in accepted() {
        if let Err(e) = Policy::parse(&document, kind) {
            failures.push(format!("{kind:?} {document}\n  refused: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn key_policies_have_a_size_limit_and_identity_policies_do_not() {
    let document = format!(r#"{{"Statement":[]}}{}"#, " ".repeat(32_768));
    assert_eq!(
        Policy::parse(&document, KEY_POLICY).map(|_| ()),
        Err(PolicyError::TooLarge(document.len()))
    );
    assert!(Policy::parse(&document, IDENTITY).is_ok());
    assert!(Policy::parse(&document, TRUST).is_ok());
    assert_eq!(
        PolicyError::TooLarge(40_000).to_string(),
        "The key policy is 40000 bytes; the limit is 32768 bytes."
    );
}
