//! JSON request decoding: a body becomes the typed request of an operation, then its model
//! constraints are checked (crates/rotary-wire).
//!
//! Input: `<Operation>\n<body>` (e.g. `CreateSecret\n{"Name": "x"}`) decodes the body for that
//! operation; any other input is decoded as a body for every operation.
//!
//! Properties:
//! - decoding and checking never panic;
//! - decoding depends only on the JSON value: a body that decodes still decodes, with the
//!   same check result, once re-serialized (no whitespace or escape differences);
//! - secret values (`SecretString`, `SecretBinary`, `RotationToken`) never appear in the
//!   request's `Debug` text or in a validation message;
//! - members with an encoder round-trip: `SecretBinary` re-encodes to the same base64, and
//!   `Tags`, `Filters`, `RotationRules`, `AddReplicaRegions` decode back to what they encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotary_wire::dto::{Filter, ReplicaRegionType, RotationRulesType, Tag};
use rotary_wire::fuzzing::{decode_and_check, empty_debug};
use rotary_wire::{Blob, Operation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Members whose values must never be shown.
const SENSITIVE: [&str; 3] = ["SecretString", "SecretBinary", "RotationToken"];

fuzz_target!(|data: &[u8]| {
    let (ops, body): (Vec<Operation>, &[u8]) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match std::str::from_utf8(&data[..i]).ok().and_then(op_named) {
            Some(op) => (vec![op], &data[i + 1..]),
            None => (Operation::ALL.to_vec(), data),
        },
        None => (Operation::ALL.to_vec(), data),
    };
    let value: Option<Value> = serde_json::from_slice(body).ok();
    for op in ops {
        let Ok(decoded) = decode_and_check(op, body) else {
            continue;
        };
        let Some(value) = &value else {
            continue; // Only a whitespace body decodes without being JSON.
        };
        // The same JSON value, re-serialized, decodes to the same request and check result.
        let again = serde_json::to_vec(value).expect("a Value always serializes");
        match decode_and_check(op, &again) {
            Ok(d) => {
                assert_eq!(d.debug, decoded.debug, "{op:?}: re-serialized body differs");
                assert_eq!(
                    d.check, decoded.check,
                    "{op:?}: re-serialized check differs"
                );
            }
            Err(e) => panic!("{op:?}: decodes, but not once re-serialized: {e:?}"),
        }
        // Secret values stay out of Debug and validation messages.
        let message = decoded.check.as_ref().err().map(|e| e.message().to_owned());
        for secret in secrets_to_look_for(op, value) {
            assert!(
                !decoded.debug.contains(&secret),
                "{op:?}: Debug shows a secret value"
            );
            if let Some(m) = &message {
                assert!(
                    !m.contains(&secret),
                    "{op:?}: a message shows a secret value"
                );
            }
        }
        round_trips(value);
    }
});

fn op_named(name: &str) -> Option<Operation> {
    Operation::ALL.iter().copied().find(|op| op.name() == name)
}

/// The sensitive member values that can be looked for without false alarms: at least 12
/// ASCII letters and digits with both kinds present (so no fixed word of a message or of a
/// `Debug` text matches), and not inside any other text of the request.
fn secrets_to_look_for(op: Operation, value: &Value) -> Vec<String> {
    let Value::Object(top) = value else {
        return Vec::new();
    };
    let mut others = vec![empty_debug(op)];
    let mut secrets = Vec::new();
    for (key, member) in top {
        others.push(key.clone());
        match member {
            Value::String(s) if SENSITIVE.contains(&key.as_str()) => secrets.push(s.clone()),
            _ => collect_texts(member, &mut others),
        }
    }
    secrets.retain(|s| {
        s.len() >= 12
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes().any(|b| b.is_ascii_alphabetic())
            && !others.iter().any(|o| o.contains(s.as_str()))
    });
    secrets
}

/// Every key, string, number and boolean text inside `v`.
fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(b.to_string()),
        Value::Number(n) => out.push(n.to_string()),
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_texts(v, out);
            }
        }
    }
}

/// Members that have an encoder decode back to what they encode.
fn round_trips(value: &Value) {
    let Value::Object(top) = value else { return };
    if let Some(text @ Value::String(_)) = top.get("SecretBinary") {
        if let Ok(blob) = serde_json::from_value::<Blob>(text.clone()) {
            let encoded = serde_json::to_value(&blob).expect("a blob always encodes");
            assert_eq!(
                &encoded, text,
                "SecretBinary does not re-encode to its base64"
            );
        }
    }
    if let Some(tags) = top.get("Tags") {
        if let Ok(tags) = serde_json::from_value::<Vec<Tag>>(tags.clone()) {
            let encoded = serde_json::to_value(&tags).expect("tags always encode");
            let back: Vec<Tag> = serde_json::from_value(encoded).expect("encoded tags decode");
            assert_eq!(back, tags, "Tags do not round-trip");
        }
    }
    fixed_point::<Vec<Filter>>(top.get("Filters"));
    fixed_point::<RotationRulesType>(top.get("RotationRules"));
    fixed_point::<Vec<ReplicaRegionType>>(top.get("AddReplicaRegions"));
}

/// For shapes without `PartialEq`: encoding what decoding an encoding gives is the same
/// encoding.
fn fixed_point<T: Serialize + DeserializeOwned>(member: Option<&Value>) {
    let Some(Ok(decoded)) = member.map(|m| serde_json::from_value::<T>(m.clone())) else {
        return;
    };
    let encoded = serde_json::to_value(&decoded).expect("a shape always encodes");
    let back: T = serde_json::from_value(encoded.clone()).expect("an encoding decodes");
    let again = serde_json::to_value(&back).expect("a shape always encodes");
    assert_eq!(
        again,
        encoded,
        "{} does not round-trip",
        std::any::type_name::<T>()
    );
}
