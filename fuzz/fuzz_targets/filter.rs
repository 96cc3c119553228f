//! ListSecrets / BatchGetSecretValue `Filters`: decoding and model checks of the request
//! (crates/rotary-wire), then matching secrets (crates/rotary-core/src/filter.rs).
//!
//! Input, either:
//! - a JSON object: a ListSecrets request body plus `"Secrets": [{"Name", "Description",
//!   "Tags": [{"Key", "Value"}], "PrimaryRegion", "OwningService"}]` to match against; or
//! - text lines: a filter value, then a secret's name, description, primary region, owning
//!   service and `key=value` tags; the value is tried with every filter key.
//!
//! Properties:
//! - decoding, checking and matching never panic; every filter key the wire layer accepts is
//!   one the matcher knows;
//! - words from `split_words` are non-empty runs of letters and digits that spell, joined,
//!   exactly the letters and digits of the text;
//! - no filters match everything; filters AND; a filter's values OR;
//! - `name`, `tag-key`, `tag-value`, `primary-region` are case-sensitive prefix matches and
//!   `!` negates them; a non-empty name always matches itself;
//! - dropping words from a word-match (`description`, `all`) value never loses a match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotary_fuzz::filter::{matches, split_words, Candidate, Filter, FilterKey};
use rotary_wire::dto::ListSecretsRequest;
use rotary_wire::validate::Validate;
use serde::Deserialize;

/// A secret to match, as the input names it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Secret {
    name: String,
    description: Option<String>,
    tags: Vec<Tag>,
    primary_region: Option<String>,
    owning_service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Tag {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Secrets {
    secrets: Vec<Secret>,
}

/// Borrowed form of a [`Secret`] with tags as pairs, as the service builds it.
struct Owned {
    secret: Secret,
    tags: Vec<(String, String)>,
}

impl Owned {
    fn new(secret: Secret) -> Self {
        let tags = secret
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Owned { secret, tags }
    }

    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            name: &self.secret.name,
            description: self.secret.description.as_deref(),
            tags: &self.tags,
            primary_region: self.secret.primary_region.as_deref(),
            owning_service: self.secret.owning_service.as_deref(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((filters, secrets)) = from_json(data) {
        for s in &secrets {
            check(&filters, &s.candidate());
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let value = lines.next().unwrap_or_default().to_owned();
    let mut field = || lines.next().map(str::to_owned);
    let secret = Secret {
        name: field().unwrap_or_default(),
        description: field(),
        primary_region: field(),
        owning_service: field(),
        tags: Vec::new(),
    };
    let mut owned = Owned::new(secret);
    owned.tags = lines
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let filters: Vec<Filter> = FilterKey::ALL_NAMES
        .iter()
        .filter_map(|k| FilterKey::parse(k))
        .map(|key| Filter {
            key,
            values: vec![value.clone()],
        })
        .collect();
    check(&filters, &owned.candidate());
    for f in &filters {
        check(std::slice::from_ref(f), &owned.candidate());
    }
});

/// The request's filters as the service turns them into checked filters (unknown keys and
/// missing values are refused there), and the secrets to match.
fn from_json(data: &[u8]) -> Option<(Vec<Filter>, Vec<Owned>)> {
    let req: ListSecretsRequest = rotary_wire::decode_request(data).ok()?;
    if req.check().is_ok() {
        // The wire layer's key list and the matcher's agree: a request that passes the model
        // checks never fails later on a key the matcher does not know.
        for key in req
            .filters
            .iter()
            .flatten()
            .filter_map(|f| f.key.as_deref())
        {
            assert!(FilterKey::parse(key).is_some(), "wire accepts key {key:?}");
        }
    }
    let secrets: Secrets = serde_json::from_slice(data).ok()?;
    let filters = req
        .filters
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| {
            Some(Filter {
                key: FilterKey::parse(f.key.as_deref()?)?,
                values: f.values?,
            })
        })
        .collect();
    Some((
        filters,
        secrets.secrets.into_iter().map(Owned::new).collect(),
    ))
}

fn check(filters: &[Filter], c: &Candidate<'_>) {
    let all = matches(filters, c);
    assert!(matches(&[], c), "no filters must match everything");
    let each: Vec<bool> = filters
        .iter()
        .map(|f| matches(std::slice::from_ref(f), c))
        .collect();
    assert_eq!(all, each.iter().all(|&m| m), "filters must AND");

    for (f, &matched) in filters.iter().zip(&each) {
        let one = |v: &str| {
            matches(
                &[Filter {
                    key: f.key,
                    values: vec![v.to_owned()],
                }],
                c,
            )
        };
        assert_eq!(matched, f.values.iter().any(|v| one(v)), "values must OR");
        for v in &f.values {
            words_are_letters_and_digits(v);
            let got = one(v);
            if let Some(expected) = prefix_rule(f.key, v, c) {
                assert_eq!(got, expected, "{:?} {v:?} on {c:?}", f.key);
            }
            if matches!(f.key, FilterKey::Description | FilterKey::All)
                && got
                && !v.starts_with('!')
            {
                for w in split_words(v) {
                    assert!(one(&w), "dropping words lost a match: {v:?} -> {w:?}");
                }
            }
        }
    }
    if !c.name.is_empty() && !c.name.starts_with('!') {
        let name = Filter {
            key: FilterKey::Name,
            values: vec![c.name.to_owned()],
        };
        assert!(matches(&[name], c), "a name must match itself");
    }
    for text in [Some(c.name), c.description].into_iter().flatten() {
        words_are_letters_and_digits(text);
    }
}

/// What a case-sensitive prefix key must answer for `value`, straight from its definition.
fn prefix_rule(key: FilterKey, value: &str, c: &Candidate<'_>) -> Option<bool> {
    let strings: Vec<&str> = match key {
        FilterKey::Name => vec![c.name],
        FilterKey::TagKey => c.tags.iter().map(|(k, _)| k.as_str()).collect(),
        FilterKey::TagValue => c.tags.iter().map(|(_, v)| v.as_str()).collect(),
        FilterKey::PrimaryRegion => c
            .primary_region
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
        _ => return None,
    };
    Some(match value.strip_prefix('!') {
        Some(negated) => strings.iter().any(|s| !s.starts_with(negated)),
        None => strings.iter().any(|s| s.starts_with(value)),
    })
}

fn words_are_letters_and_digits(text: &str) {
    let words = split_words(text);
    for w in &words {
        assert!(!w.is_empty(), "empty word in {text:?}");
        assert!(w.chars().all(char::is_alphanumeric), "{w:?} from {text:?}");
    }
    let joined: String = words.concat();
    let expected: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
    assert_eq!(joined, expected, "words of {text:?}");
}
