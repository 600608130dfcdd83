//! Attribute templates: what every object this crate creates or looks for looks like.
//!
//! Keeping them together makes the security properties of each kind of object reviewable in one
//! place; the crate documentation explains why they are what they are.

use cryptoki::object::{Attribute, KeyType, ObjectClass};

/// Label of the cluster wrapping key; labels with this prefix are reserved.
pub(crate) const RESERVED_PREFIX: &str = "strongroom:";
pub(crate) const WRAPPING_KEY_LABEL: &str = "strongroom:cluster-wrapping-key";
/// Label of every working copy of a backing key (see [`working_copy`]), so that searches by a
/// key's label find its token object only.
pub(crate) const WORKING_COPY_LABEL: &str = "strongroom:working-copy";
/// `CKA_APPLICATION` of the data objects (certificates) this crate stores.
pub(crate) const APPLICATION: &[u8] = b"strongroom";

/// DER encoding of the OID of the NIST P-256 curve, as `CKA_EC_PARAMS` wants it.
pub(crate) const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The kinds of object the handle cache and the lookups know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ObjectKind {
    BackingKey,
    WrappingKey,
    PrivateKey,
    PublicKey,
    Data,
}

/// The search template for an object of `kind` labelled `label`.
pub(crate) fn find_template(kind: ObjectKind, label: &str) -> Vec<Attribute> {
    let label = Attribute::Label(label.as_bytes().to_vec());
    match kind {
        ObjectKind::BackingKey | ObjectKind::WrappingKey => vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            label,
        ],
        ObjectKind::PrivateKey => vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Token(true),
            label,
        ],
        ObjectKind::PublicKey => vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Token(true),
            label,
        ],
        ObjectKind::Data => vec![
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Application(APPLICATION.to_vec()),
            label,
        ],
    }
}

/// Every backing key on a token, whatever its label.
pub(crate) fn all_backing_keys() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::WrapWithTrusted(true),
    ]
}

/// Every data object this crate stored on a token.
pub(crate) fn all_data_objects() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Application(APPLICATION.to_vec()),
    ]
}

/// Attributes of a backing key, shared by generation and unwrapping so that copies are identical.
fn backing_key_attributes(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        // Extractable only under a trusted key, that is only under the cluster wrapping key.
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Modifiable(false),
    ]
}

/// Template for `C_GenerateKey` of a backing key: AES-256.
pub(crate) fn generate_backing_key(label: &str) -> Vec<Attribute> {
    let mut template = backing_key_attributes(label);
    template.push(Attribute::ValueLen(32.into()));
    template
}

/// Template for `C_UnwrapKey` of a backing key copied from another HSM.
pub(crate) fn unwrap_backing_key(label: &str) -> Vec<Attribute> {
    // No CKA_VALUE_LEN: the length comes from the wrapped key, and SoftHSM refuses it here.
    backing_key_attributes(label)
}

/// Template for `C_UnwrapKey` of a backing key's working copy, the session object that encryption
/// and decryption use: as protected as the key itself, gone with the session that made it, and not
/// extractable at all, not even wrapped. All copies share one label: the handle cache knows which
/// key each one is.
pub(crate) fn working_copy() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(WORKING_COPY_LABEL.as_bytes().to_vec()),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Modifiable(false),
    ]
}

/// Attributes of the cluster wrapping key; created by the Security Officer, hence public.
fn wrapping_key_attributes(id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(WRAPPING_KEY_LABEL.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Sensitive(true),
        Attribute::Trusted(true),
        // Extractable only under another trusted key: the ECDH transport key, when a HSM joins.
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Modifiable(false),
    ]
}

/// Template for `C_GenerateKey` of the cluster wrapping key on the founding HSM.
pub(crate) fn generate_wrapping_key(id: &[u8]) -> Vec<Attribute> {
    let mut template = wrapping_key_attributes(id);
    template.push(Attribute::ValueLen(32.into()));
    template
}

/// Template for `C_UnwrapKey` of the cluster wrapping key on a joining HSM.
pub(crate) fn unwrap_wrapping_key(id: &[u8]) -> Vec<Attribute> {
    wrapping_key_attributes(id)
}

/// Public half of an ephemeral ECDH key pair: a session object, gone with the session.
pub(crate) fn ecdh_public() -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::EcParams(P256_PARAMS.to_vec()),
    ]
}

/// Private half of an ephemeral ECDH key pair; it can only derive.
pub(crate) fn ecdh_private() -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Derive(true),
        Attribute::Sign(false),
    ]
}

/// The transport key both HSMs derive by ECDH; the sender's copy wraps, the receiver's unwraps.
pub(crate) fn transport_key(sender: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        // Only a trusted key may wrap the cluster key, which is wrap-with-trusted.
        Attribute::Trusted(sender),
        Attribute::Wrap(sender),
        Attribute::Unwrap(!sender),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
    ]
}

/// A data object holding `value`, readable by anyone who can open a session (it is public).
pub(crate) fn data_object(label: &str, value: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value.to_vec()),
    ]
}

/// Key pair templates for the cluster's own signing key (public key, private key).
pub(crate) fn signing_key_pair(
    label: &str,
    rsa_bits: Option<u64>,
) -> (Vec<Attribute>, Vec<Attribute>) {
    let label = Attribute::Label(label.as_bytes().to_vec());
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        label.clone(),
    ];
    match rsa_bits {
        Some(bits) => {
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
        }
        None => public.push(Attribute::EcParams(P256_PARAMS.to_vec())),
    }
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        label,
    ];
    (public, private)
}
