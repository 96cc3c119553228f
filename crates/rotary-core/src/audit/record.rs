//! The audit record, its JSON line and the hash that chains it to the one before.
//!
//! # Invariants
//! - The record has no field that could hold a secret value, a password, an access-key
//!   secret or a request body: callers pass ids, names, ARNs and AWS error type names only.
//!   There is deliberately no "message" field, because AWS validation messages may echo input.
//! - A record's line is `{…,"PrevHash":"<hex>","Hash":"<hex>"}` with `Hash` last. The hash
//!   is SHA-256 over the exact bytes of the line before `,"Hash":"`, which include the
//!   sequence number and `PrevHash`; verification hashes the bytes as stored, so any edited
//!   byte is found, whatever a re-serialization would produce.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// `PrevHash` of the first record of a log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes that separate the hashed part of a line from its hash.
pub(crate) const HASH_MARKER: &[u8] = b",\"Hash\":\"";

/// One audited event: a request (allowed, denied, failed or unauthenticated) or a rotation
/// step. JSON field names are PascalCase, like the AWS API Rotary speaks; absent optional
/// fields are left out of the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditRecord {
    /// Position in the chain, 1 for the first record; set by the writer.
    #[serde(default)]
    pub sequence: u64,
    /// When the event happened, UTC, RFC 3339 with milliseconds.
    #[serde(with = "rfc3339_ms")]
    pub time: OffsetDateTime,
    /// The request id returned in `x-amzn-RequestId`, or the rotation's id for steps.
    pub request_id: String,
    /// The caller: `arn:aws:iam::<account>:user/<name>`, root, or a rotation session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_arn: Option<String>,
    /// The access key id the request was signed with (never its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The peer address, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The IAM action: `secretsmanager:GetSecretValue`, `rotary:CreateUser`, or
    /// `rotation:<step>` (`rotation:createSecret` …) for rotation steps.
    pub operation: String,
    /// The secret's full ARN, when the request named one that exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// The version id (or the rotation's ClientRequestToken), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Why a request was denied (with [`Outcome::Denied`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenialReason>,
    /// The rotation function, for rotation steps:
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    /// `Hash` of the record before, or [`GENESIS_HASH`]; set by the writer.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's line up to `,"Hash":"`; set by the writer.
    #[serde(default)]
    pub hash: String,
}

impl AuditRecord {
    /// A record of `operation` at `time_ms` (milliseconds since the Unix epoch, from the
    /// server's clock) with `outcome`; the other fields are set with the builder methods.
    pub fn new(
        time_ms: i64,
        request_id: impl Into<String>,
        operation: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self {
            sequence: 0,
            time,
            request_id: request_id.into(),
            principal_arn: None,
            access_key_id: None,
            source_address: None,
            user_agent: None,
            operation: operation.into(),
            secret_arn: None,
            version_id: None,
            outcome,
            reason: None,
            function_arn: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Sets the caller's ARN.
    pub fn principal(mut self, arn: impl Into<String>) -> Self {
        self.principal_arn = Some(arn.into());
        self
    }

    /// Sets the access key id.
    pub fn access_key(mut self, id: impl Into<String>) -> Self {
        self.access_key_id = Some(id.into());
        self
    }

    /// Sets the peer address.
    pub fn source(mut self, addr: impl Into<String>) -> Self {
        self.source_address = Some(addr.into());
        self
    }

    /// Sets the user agent.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Sets the secret's ARN.
    pub fn secret(mut self, arn: impl Into<String>) -> Self {
        self.secret_arn = Some(arn.into());
        self
    }

    /// Sets the version id.
    pub fn version(mut self, id: impl Into<String>) -> Self {
        self.version_id = Some(id.into());
        self
    }

    /// Sets the reason of a denial.
    pub fn denied_by(mut self, reason: DenialReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the rotation function's ARN.
    pub fn function(mut self, arn: impl Into<String>) -> Self {
        self.function_arn = Some(arn.into());
        self
    }

    /// Sets `sequence` and `prev_hash`, computes `hash`, and returns the JSON line
    /// (with its trailing newline).
    ///
    /// Written field by field (every request has a record): the bytes are serde's for this
    /// struct, which `Deserialize` reads back (a test compares the two).
    pub(crate) fn seal(&mut self, sequence: u64, prev_hash: &str) -> Result<Vec<u8>, String> {
        self.sequence = sequence;
        self.prev_hash = prev_hash.to_owned();
        let mut line = Vec::with_capacity(512);
        let mut o = rotary_wire::json::Object::new(&mut line);
        o.u64("Sequence", sequence);
        rfc3339_ms::with_text(&self.time, |t| o.str("Time", t))?;
        o.str("RequestId", &self.request_id);
        o.opt_str("PrincipalArn", self.principal_arn.as_deref());
        o.opt_str("AccessKeyId", self.access_key_id.as_deref());
        o.opt_str("SourceAddress", self.source_address.as_deref());
        o.opt_str("UserAgent", self.user_agent.as_deref());
        o.str("Operation", &self.operation);
        o.opt_str("SecretArn", self.secret_arn.as_deref());
        o.opt_str("VersionId", self.version_id.as_deref());
        o.str("Outcome", self.outcome.as_str());
        if let Some(r) = &self.reason {
            o.serde("Reason", r).map_err(|e| e.to_string())?;
        }
        o.opt_str("FunctionArn", self.function_arn.as_deref());
        o.str("PrevHash", prev_hash);
        // The object stays open: the hash covers the line up to here.
        self.hash = hash_hex(&line);
        line.extend_from_slice(HASH_MARKER);
        line.extend_from_slice(self.hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        Ok(line)
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    // A SHA-256 digest always fits 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(bytes), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a stored line (without its newline) into the hashed prefix and the stored hash,
/// and checks the hash. `Err` says what is wrong.
pub(crate) fn check_line_hash(line: &[u8]) -> Result<&str, &'static str> {
    let Some(at) = line
        .windows(HASH_MARKER.len())
        .rposition(|w| w == HASH_MARKER)
    else {
        return Err("no Hash field at the end of the record");
    };
    let tail = &line[at + HASH_MARKER.len()..];
    let Some(stored) = tail.strip_suffix(b"\"}") else {
        return Err("the record does not end with its Hash field");
    };
    let Ok(stored) = std::str::from_utf8(stored) else {
        return Err("Hash is not hex");
    };
    if stored.len() != 64 || !stored.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("Hash is not 64 hex digits");
    }
    if hash_hex(&line[..at]) != stored {
        return Err("Hash does not match the record's contents (the record was edited)");
    }
    Ok(stored)
}

/// The outcome of an audited event. Serialized as one string: `Allowed`, `Denied`,
/// `AuthenticationFailed`, or the AWS error type (`ResourceNotFoundException`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Authorized (and, for a request, answered without an error).
    Allowed,
    /// Refused by policy evaluation (AccessDeniedException).
    Denied,
    /// The signature or access key did not check out; the principal is unknown.
    AuthenticationFailed,
    /// Authorized but failed with this AWS error type (the `__type`), or a rotation step
    /// that failed (`StepFailed`).
    Error(String),
}

impl Outcome {
    /// The string in the record.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Allowed => "Allowed",
            Outcome::Denied => "Denied",
            Outcome::AuthenticationFailed => "AuthenticationFailed",
            Outcome::Error(code) => code,
        }
    }

    /// Parses the string in a record.
    pub fn parse(s: &str) -> Self {
        match s {
            "Allowed" => Outcome::Allowed,
            "Denied" => Outcome::Denied,
            "AuthenticationFailed" => Outcome::AuthenticationFailed,
            other => Outcome::Error(other.to_owned()),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Outcome::parse(&String::deserialize(d)?))
    }
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DenialReason {
    /// An explicit Deny statement, or no statement allowing the action.
    pub kind: DenialKind,
    /// The policy holding the deciding Deny statement, e.g. `user/alice/ReadOnly`,
    /// `group/ops/NoDelete`, `resource-policy`, `session-policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The statement's Sid, or its 1-based index in the policy as `#2` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

/// The two ways IAM denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DenialKind {
    /// A Deny statement matched.
    ExplicitDeny,
    /// No Allow statement matched.
    ImplicitDeny,
}

/// Serde for `OffsetDateTime` as `2026-11-30T16:45:01.123Z`.
mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, UtcOffset};

    /// `2026-12-01T14:13:24.123Z`: written digit by digit (every request's record has one),
    /// through `time`'s formatter for a year outside 0–9999.
    pub(super) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        with_text(t, |text| s.serialize_str(text)).map_err(serde::ser::Error::custom)?
    }

    /// Calls `f` with the time's text (without allocating for years 0–9999).
    pub(super) fn with_text<R>(t: &OffsetDateTime, f: impl FnOnce(&str) -> R) -> Result<R, String> {
        let t = t.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&t.year()) {
            let fmt = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            let text = t.format(&fmt).map_err(|e| e.to_string())?;
            return Ok(f(&text));
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, t.year().unsigned_abs());
        put(5, 2, u32::from(u8::from(t.month())));
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        put(20, 3, u32::from(t.millisecond()));
        Ok(f(std::str::from_utf8(&out).map_err(|e| e.to_string())?))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn times_are_written_as_rfc3339_with_milliseconds() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_764_598_404_123, "2025-12-01T14:13:24.123Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
        ] {
            let rec = AuditRecord::new(ms, "r", "op", Outcome::Allowed);
            let json = serde_json::to_value(&rec).expect("serializes");
            assert_eq!(json["Time"], text);
            let back: AuditRecord = serde_json::from_value(json).expect("parses");
            assert_eq!(back.time, rec.time);
        }
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    /// The line as serde writes the struct, cut and hashed the same way: what `seal` wrote
    /// before it was written by hand.
    fn serde_line(rec: &AuditRecord, sequence: u64, prev_hash: &str) -> Vec<u8> {
        let mut rec = rec.clone();
        rec.sequence = sequence;
        rec.prev_hash = prev_hash.to_owned();
        rec.hash = String::new();
        let mut line = serde_json::to_vec(&rec).expect("serializes");
        line.truncate(line.len() - HASH_MARKER.len() - 2);
        let hash = hash_hex(&line);
        line.extend_from_slice(HASH_MARKER);
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        line
    }

    #[test]
    fn sealed_lines_are_what_serde_writes() {
        let awkward = "a\"b\\c\nd\u{1}é€/𝄞";
        let full = AuditRecord::new(
            1_764_598_404_123,
            "req-1",
            "secretsmanager:GetSecretValue",
            Outcome::Denied,
        )
        .principal("arn:aws:iam::000000000000:user/alice")
        .access_key("AKIAEXAMPLE")
        .source("127.0.0.1")
        .user_agent(awkward)
        .secret("arn:aws:secretsmanager:us-east-1:000000000000:secret:x-AbCdEf")
        .version("v1")
        .denied_by(DenialReason {
            kind: DenialKind::ExplicitDeny,
            policy: Some(awkward.into()),
            statement: Some("#2".into()),
        })
        .function("arn:aws:lambda:us-east-1:000000000000:function:f");
        let cases = [
            full,
            AuditRecord::new(0, "", "", Outcome::Allowed),
            AuditRecord::new(-1, awkward, awkward, Outcome::Error(awkward.into())),
            AuditRecord::new(
                253_402_300_800_000,
                "r",
                "op",
                Outcome::AuthenticationFailed,
            ),
        ];
        for (i, rec) in cases.iter().enumerate() {
            for sequence in [1, 9, u64::MAX] {
                let mut sealed = rec.clone();
                let line = sealed.seal(sequence, GENESIS_HASH).expect("seals");
                assert_eq!(
                    String::from_utf8(line.clone()).unwrap(),
                    String::from_utf8(serde_line(rec, sequence, GENESIS_HASH)).unwrap(),
                    "case {i}"
                );
                assert_eq!(
                    check_line_hash(&line[..line.len() - 1]),
                    Ok(sealed.hash.as_str())
                );
                let back: AuditRecord = serde_json::from_slice(&line).expect("parses");
                assert_eq!(back, sealed);
            }
        }
    }
}
