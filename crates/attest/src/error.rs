//! Why a token was refused.

use std::fmt;

/// A verification failure, naming what failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not well-formed CBOR (or are cut short, or too deeply nested).
    Cbor(String),
    /// The input is larger than any token.
    TooLarge(usize),
    /// The top level is not a CCA collection.
    Collection(String),
    /// A COSE_Sign1 message is malformed or uses what this verifier does not accept.
    Cose(&'static str, String),
    /// A mandatory claim is missing.
    MissingClaim(&'static str, u64),
    /// A claim has the wrong CBOR type or size, or a value the profile forbids.
    BadClaim {
        /// Which token.
        token: &'static str,
        /// The claim key.
        key: u64,
        /// What is wrong.
        why: String,
    },
    /// A claim appears twice.
    DuplicateClaim(&'static str, u64),
    /// The profile is not one this verifier knows.
    UnknownProfile(&'static str, String),
    /// No trust anchor for the platform instance ID (hex).
    UnknownPlatform(String),
    /// A signature does not verify.
    Signature(&'static str),
    /// The RAK's key is not a P-384 public key.
    BadKey(String),
    /// The platform challenge is not the hash of the RAK.
    Binding {
        /// The hash of the RAK.
        expected: String,
        /// The platform challenge.
        found: String,
    },
    /// A value differs from its reference or predicted value.
    Mismatch {
        /// What was compared.
        what: &'static str,
        /// The reference or predicted value.
        expected: String,
        /// The token's value.
        found: String,
    },
    /// An endorsement or reference-value file is malformed.
    Endorsement(String),
    /// Wrong use of the tool.
    Usage(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cbor(e) => write!(f, "not well-formed CBOR: {e}"),
            Self::TooLarge(n) => write!(f, "{n} bytes is larger than any token"),
            Self::Collection(e) => write!(f, "not a CCA token collection: {e}"),
            Self::Cose(which, e) => write!(f, "the {which} token's COSE_Sign1: {e}"),
            Self::MissingClaim(which, k) => write!(f, "the {which} token has no claim {k}"),
            Self::BadClaim { token, key, why } => {
                write!(f, "the {token} token's claim {key}: {why}")
            }
            Self::DuplicateClaim(which, k) => write!(f, "the {which} token has claim {k} twice"),
            Self::UnknownProfile(which, p) => write!(f, "unknown {which} profile {p:?}"),
            Self::UnknownPlatform(id) => {
                write!(f, "no trust anchor for the platform instance ID {id}")
            }
            Self::Signature(which) => write!(f, "the {which} token's signature does not verify"),
            Self::BadKey(e) => write!(f, "the realm public key (claim 44237): {e}"),
            Self::Binding { expected, found } => write!(
                f,
                "binding: the platform challenge {found} is not the hash of the RAK {expected}"
            ),
            Self::Mismatch {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected}, the token has {found}"),
            Self::Endorsement(e) => write!(f, "endorsements: {e}"),
            Self::Usage(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}
