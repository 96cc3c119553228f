//! `ListSecrets` / `BatchGetSecretValue` `Filters` matching (spec §4.8).
//!
//! Pure functions over a borrowed view of one secret ([`Candidate`]); the caller parses and
//! validates the request (key names, 1..=10 values) and applies deletion and pagination.
//!
//! # Semantics
//! - Filters combine with AND, even when they repeat a key; a filter's values combine with OR.
//! - A value starting with `!` is negated. As in moto (`moto/secretsmanager/list_secrets/
//!   filters.py`, `_matcher`), a negated value matches when *some* attribute string of the key
//!   does not match the rest of the value, and a key whose attribute is absent (no
//!   description, no tags, ...) matches nothing, negated or not. For single-valued keys
//!   (`name`, `description`) that is plain "does not match"; for `tag-key`, `tag-value` and
//!   `all` it means "some tag key / some attribute does not match".
//! - `name`, `tag-key`, `tag-value` and `primary-region` are case-sensitive prefix matches on
//!   the whole string; `owning-service` is a case-insensitive prefix match.
//! - `description` and `all` are word matches: the value and the attribute are split with
//!   [`split_words`], and every value word must be a case-insensitive prefix of some word of
//!   the *same* attribute string. A value with no words (`"+"`) matches nothing.

/// A `Filter.Key` of `ListSecrets` / `BatchGetSecretValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    /// `description`: word-prefix match on the description, case-insensitive.
    Description,
    /// `name`: prefix match on the whole name, case-sensitive.
    Name,
    /// `tag-key`: prefix match on any tag key, case-sensitive.
    TagKey,
    /// `tag-value`: prefix match on any tag value, case-sensitive.
    TagValue,
    /// `primary-region`: prefix match on the primary region of a replicated secret.
    PrimaryRegion,
    /// `owning-service`: prefix match on the owning service, case-insensitive.
    OwningService,
    /// `all`: word-prefix match on name, description, tag keys and tag values.
    All,
}

impl FilterKey {
    /// The wire names, in the order AWS's API reference lists them.
    pub const ALL_NAMES: [&'static str; 7] = [
        "description",
        "name",
        "tag-key",
        "tag-value",
        "primary-region",
        "owning-service",
        "all",
    ];

    /// Parses a wire name (exact, case-sensitive); `None` for anything else.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "description" => Some(Self::Description),
            "name" => Some(Self::Name),
            "tag-key" => Some(Self::TagKey),
            "tag-value" => Some(Self::TagValue),
            "primary-region" => Some(Self::PrimaryRegion),
            "owning-service" => Some(Self::OwningService),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    /// The wire name, e.g. for `"Invalid filter values for key: <key>"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Name => "name",
            Self::TagKey => "tag-key",
            Self::TagValue => "tag-value",
            Self::PrimaryRegion => "primary-region",
            Self::OwningService => "owning-service",
            Self::All => "all",
        }
    }
}

/// One validated `Filter`: a key and its values (OR'ed; a leading `!` negates a value).
#[derive(Debug, Clone)]
pub struct Filter {
    /// The attribute the values are matched against.
    pub key: FilterKey,
    /// The raw values, `!` included.
    pub values: Vec<String>,
}

/// The attributes of one secret that filters look at.
///
/// Empty optional strings are treated as absent, like moto's truthiness checks.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The secret name.
    pub name: &'a str,
    /// The description, if set.
    pub description: Option<&'a str>,
    /// Tags as (key, value) pairs.
    pub tags: &'a [(String, String)],
    /// The primary region, only for replicated secrets and replicas.
    pub primary_region: Option<&'a str>,
    /// The owning service, only for service-managed secrets.
    pub owning_service: Option<&'a str>,
}

/// All filters must match (AND); within a filter values are OR'ed; a value starting with '!'
/// negates.
///
/// An empty `filters` slice matches every candidate. See the module docs for how negation
/// combines with multi-valued attributes (moto's semantics).
#[must_use]
pub fn matches(filters: &[Filter], c: &Candidate<'_>) -> bool {
    filters.iter().all(|f| filter_matches(f, c))
}

/// The word splitting used by `description` and `all` (special characters / _ + = . @ - space #,
/// lower→upper, letter↔digit, capital run before lowercase).
///
/// Every character that is not a letter or digit separates words and is dropped (AWS: the
/// search "ignores special characters ... and only uses numbers and letters"). Inside a run of
/// letters and digits a word ends at a letter↔digit change and at a lower→upper change, and a
/// run of capitals followed by a lowercase letter splits before its last capital:
/// `credsDatabase#892` → `creds`, `Database`, `892`; `COMPANYthings` → `COMPAN`, `Ythings`.
/// Case is preserved; callers compare case-insensitively.
#[must_use]
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    for segment in s.split(|c: char| !c.is_alphanumeric()) {
        split_segment(segment, &mut words);
    }
    words
}

/// Splits one run of letters and digits at case and letter↔digit boundaries.
fn split_segment(segment: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = segment.chars().collect();
    let mut start = 0;
    for i in 1..chars.len() {
        let (prev, cur) = (chars[i - 1], chars[i]);
        let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let boundary = prev.is_numeric() != cur.is_numeric()
            || (prev.is_lowercase() && cur.is_uppercase())
            || (prev.is_uppercase() && cur.is_uppercase() && next_is_lower);
        if boundary {
            out.push(chars[start..i].iter().collect());
            start = i;
        }
    }
    if start < chars.len() {
        out.push(chars[start..].iter().collect());
    }
}

/// How a filter value is compared with one attribute string.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The attribute starts with the value.
    Prefix { case_sensitive: bool },
    /// Every word of the value prefixes some word of the attribute, case-insensitively.
    Words,
}

fn filter_matches(f: &Filter, c: &Candidate<'_>) -> bool {
    let (strings, mode): (Vec<&str>, Mode) = match f.key {
        FilterKey::Name => (
            vec![c.name],
            Mode::Prefix {
                case_sensitive: true,
            },
        ),
        FilterKey::Description => (present(c.description).into_iter().collect(), Mode::Words),
        FilterKey::TagKey => (
            c.tags.iter().map(|(k, _)| k.as_str()).collect(),
            Mode::Prefix {
                case_sensitive: true,
            },
        ),
        FilterKey::TagValue => (
            c.tags.iter().map(|(_, v)| v.as_str()).collect(),
            Mode::Prefix {
                case_sensitive: true,
            },
        ),
        FilterKey::PrimaryRegion => (
            present(c.primary_region).into_iter().collect(),
            Mode::Prefix {
                case_sensitive: true,
            },
        ),
        FilterKey::OwningService => (
            present(c.owning_service).into_iter().collect(),
            Mode::Prefix {
                case_sensitive: false,
            },
        ),
        FilterKey::All => {
            let mut strings = vec![c.name];
            strings.extend(present(c.description));
            strings.extend(c.tags.iter().map(|(k, _)| k.as_str()));
            strings.extend(c.tags.iter().map(|(_, v)| v.as_str()));
            (strings, Mode::Words)
        }
    };
    f.values.iter().any(|value| match value.strip_prefix('!') {
        Some(negated) => strings.iter().any(|s| !value_matches(negated, s, mode)),
        None => strings.iter().any(|s| value_matches(value, s, mode)),
    })
}

/// An optional attribute, with `Some("")` treated as absent (moto's truthiness checks).
fn present(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn value_matches(value: &str, attribute: &str, mode: Mode) -> bool {
    match mode {
        Mode::Prefix {
            case_sensitive: true,
        } => attribute.starts_with(value),
        Mode::Prefix {
            case_sensitive: false,
        } => attribute.to_lowercase().starts_with(&value.to_lowercase()),
        Mode::Words => {
            let wanted = lowercase_words(value);
            if wanted.is_empty() {
                return false;
            }
            let have = lowercase_words(attribute);
            wanted
                .iter()
                .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
        }
    }
}

fn lowercase_words(s: &str) -> Vec<String> {
    split_words(s).iter().map(|w| w.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned secret for tests; `candidate()` borrows it.
    #[derive(Default)]
    struct Secret {
        name: String,
        description: Option<String>,
        tags: Vec<(String, String)>,
        primary_region: Option<String>,
        owning_service: Option<String>,
    }

    impl Secret {
        fn new(name: &str) -> Self {
            Self {
                name: name.to_owned(),
                ..Self::default()
            }
        }
        fn desc(mut self, d: &str) -> Self {
            self.description = Some(d.to_owned());
            self
        }
        fn tag(mut self, k: &str, v: &str) -> Self {
            self.tags.push((k.to_owned(), v.to_owned()));
            self
        }
        fn region(mut self, r: &str) -> Self {
            self.primary_region = Some(r.to_owned());
            self
        }
        fn owner(mut self, o: &str) -> Self {
            self.owning_service = Some(o.to_owned());
            self
        }
        fn candidate(&self) -> Candidate<'_> {
            Candidate {
                name: &self.name,
                description: self.description.as_deref(),
                tags: &self.tags,
                primary_region: self.primary_region.as_deref(),
                owning_service: self.owning_service.as_deref(),
            }
        }
    }

    fn f(key: &str, values: &[&str]) -> Filter {
        Filter {
            key: FilterKey::parse(key).unwrap(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// Names of the secrets matching `filters`, in input order (AWS lists by creation date).
    fn names<'a>(secrets: &'a [Secret], filters: &[Filter]) -> Vec<&'a str> {
        secrets
            .iter()
            .filter(|s| matches(filters, &s.candidate()))
            .map(|s| s.name.as_str())
            .collect()
    }

    // ---- FilterKey ----

    #[test]
    fn filter_key_parse_round_trips_all_names() {
        for name in FilterKey::ALL_NAMES {
            assert_eq!(FilterKey::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(FilterKey::parse("invalid"), None);
        assert_eq!(FilterKey::parse("Name"), None);
        assert_eq!(FilterKey::parse(""), None);
    }

    // ---- split_words (moto test_word_splitter + AWS console docs) ----

    #[test]
    fn split_words_moto_word_splitter_cases() {
        let cases: [(&str, &[&str]); 8] = [
            ("test", &["test"]),
            ("my test", &["my", "test"]),
            ("Mytest", &["Mytest"]),
            ("MyTest", &["My", "Test"]),
            ("MyTestPhrase", &["My", "Test", "Phrase"]),
            ("myTest", &["my", "Test"]),
            ("my  test", &["my", "test"]),
            ("my/test", &["my", "test"]),
        ];
        for (input, want) in cases {
            assert_eq!(split_words(input), want, "input {input:?}");
        }
    }

    #[test]
    fn split_words_docs_and_capital_runs() {
        assert_eq!(
            split_words("credsDatabase#892"),
            ["creds", "Database", "892"]
        );
        assert_eq!(split_words("COMPANYthings"), ["COMPAN", "Ythings"]);
        assert_eq!(split_words("COMPANY"), ["COMPANY"]);
        assert_eq!(split_words("SecretFTag"), ["Secret", "F", "Tag"]);
        assert_eq!(split_words("HTTPServer2Go"), ["HTTP", "Server", "2", "Go"]);
        assert_eq!(split_words("abc123def"), ["abc", "123", "def"]);
        assert_eq!(split_words("v2"), ["v", "2"]);
    }

    #[test]
    fn split_words_every_special_character_separates() {
        for sep in ["/", "_", "+", "=", ".", "@", "-", " ", "#", ":", "!", "\t"] {
            let s = format!("prod{sep}AppBeta{sep}x1");
            assert_eq!(
                split_words(&s),
                ["prod", "App", "Beta", "x", "1"],
                "sep {sep:?}"
            );
        }
        // Mixed separators split too (moto leaves such strings whole; see report).
        assert_eq!(
            split_words("prod-AppBeta/abc"),
            ["prod", "App", "Beta", "abc"]
        );
    }

    #[test]
    fn split_words_special_characters_alone_give_no_words() {
        for s in ["", "+", "/", "-", "_", "=", ".", "@", " ", "#", "//--"] {
            assert!(split_words(s).is_empty(), "input {s:?}");
        }
    }

    // ---- moto aws_verified: test_with_all_filter ----

    fn all_filter_secrets() -> Vec<Secret> {
        let u = "8b3e1a";
        vec![
            Secret::new(&format!("SecretOne{u}")),
            Secret::new(&format!("SecretTwo{u}")).desc("DescTwo"),
            Secret::new(&format!("Thirdsecret{u}")),
            Secret::new(&format!("SecretFTag{u}")).tag("1", "foo"),
            Secret::new(&format!("SecretFValue{u}")).tag("foo", "v"),
            Secret::new(&format!("none{u}")),
        ]
    }

    #[test]
    fn all_aws_verified_full_and_partial_words() {
        let s = all_filter_secrets();
        let (first, second, third, tag_key, tag_val) =
            (&s[0].name, &s[1].name, &s[2].name, &s[3].name, &s[4].name);
        assert_eq!(names(&s, &[f("all", &["SecretOne"])]), [first]);
        assert_eq!(names(&s, &[f("all", &["foo"])]), [tag_key, tag_val]);
        let secretish = [first, second, tag_key, tag_val];
        assert_eq!(names(&s, &[f("all", &["Secret"])]), secretish);
        assert_eq!(names(&s, &[f("all", &["secret"])]), secretish);
        assert!(names(&s, &[f("all", &["ret"])]).is_empty());
        assert_eq!(names(&s, &[f("all", &["sec"])]), secretish);
        assert!(names(&s, &[f("all", &["SomeSecret"])]).is_empty());
        assert_eq!(names(&s, &[f("all", &["d"])]), [second]);
        assert_eq!(names(&s, &[f("all", &["d t"])]), [second]);
        assert_eq!(names(&s, &[f("all", &["t"])]), [second, third, tag_key]);
    }

    // ---- moto aws_verified: test_with_all_filter_special_characters ----

    #[test]
    fn all_aws_verified_special_characters_and_camel_case() {
        let u = "8b3e1a";
        let special: Vec<String> = ["/", "_", "+", "=", ".", "@", "-"]
            .iter()
            .map(|sep| format!("prod{sep}AppBeta{sep}{u}"))
            .collect();
        let full_upper = format!("uat/COMPANY/{u}");
        let partial_upper = format!("uat/COMPANYthings/{u}");
        let mut s: Vec<Secret> = special.iter().map(|n| Secret::new(n)).collect();
        s.push(Secret::new(&full_upper));
        s.push(Secret::new(&partial_upper));

        assert_eq!(names(&s, &[f("all", &["AppBeta"])]), special);
        assert_eq!(names(&s, &[f("all", &["Beta"])]), special);
        assert_eq!(names(&s, &[f("all", &["AppBeta", "prod"])]), special);
        assert!(names(&s, &[f("all", &["+"])]).is_empty());
        let everything: Vec<&str> = s.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names(&s, &[f("all", &[u])]), everything);
        assert_eq!(names(&s, &[f("all", &["company"])]), [&full_upper]);
        assert!(names(&s, &[f("all", &["things"])]).is_empty());
        assert_eq!(names(&s, &[f("all", &["Ythings"])]), [&partial_upper]);
        assert!(names(&s, &[f("all", &["N"])]).is_empty());
        assert!(names(&s, &[f("all", &["pany"])]).is_empty());
    }

    // ---- moto aws_verified: test_with_duplicate_filter_keys ----

    #[test]
    fn description_duplicate_keys_combine_with_and() {
        let s = [
            Secret::new("foo").desc("one two"),
            Secret::new("bar").desc("one"),
            Secret::new("baz").desc("two"),
            Secret::new("qux").desc("unrelated"),
        ];
        let filters = [f("description", &["one"]), f("description", &["two"])];
        assert_eq!(names(&s, &filters), ["foo"]);
    }

    // ---- moto aws_verified: test_with_filter_with_value_with_multiple_words ----

    fn multi_word_secrets() -> [Secret; 5] {
        [
            Secret::new("foo").desc("one two"),
            Secret::new("bar").desc("one and two"),
            Secret::new("baz").desc("one"),
            Secret::new("qux").desc("two"),
            Secret::new("none").desc("unrelated"),
        ]
    }

    #[test]
    fn description_aws_verified_multiple_words() {
        let s = multi_word_secrets();
        assert_eq!(names(&s, &[f("description", &["one two"])]), ["foo", "bar"]);
        assert_eq!(names(&s, &[f("description", &["o t"])]), ["foo", "bar"]);
        assert_eq!(
            names(&s, &[f("description", &["t"])]),
            ["foo", "bar", "qux"]
        );
    }

    // ---- moto test_with_filter_with_negation (not aws_verified) ----

    #[test]
    fn description_negation_ors_with_positive_values() {
        let s = multi_word_secrets();
        // "one" OR "no word starting with two".
        assert_eq!(
            names(&s, &[f("description", &["one", "!two"])]),
            ["foo", "bar", "baz", "none"]
        );
        assert_eq!(names(&s, &[f("description", &["!o"])]), ["qux", "none"]);
    }

    // ---- LocalStack aws-validated test_list_secrets_filtering (spec §4.8) ----

    fn localstack_secrets() -> [Secret; 4] {
        [
            Secret::new("testing1/one-12345").desc("a secret"),
            Secret::new("/testing2/two-12345").desc("an secret"),
            Secret::new("testing3/three-12345").desc("asecret"),
            Secret::new("/testing4/four-12345").desc("thesecret"),
        ]
    }

    #[test]
    fn localstack_aws_validated_filtering() {
        let s = localstack_secrets();
        let [one, two, three, four] = [0, 1, 2, 3].map(|i| s[i].name.as_str());
        assert_eq!(names(&s, &[f("name", &["/"])]), [two, four]);
        assert_eq!(names(&s, &[f("name", &["!/"])]), [one, three]);
        assert!(names(&s, &[f("name", &["testing1 one"])]).is_empty());
        assert_eq!(names(&s, &[f("description", &["a"])]), [one, two, three]);
        assert_eq!(names(&s, &[f("description", &["!a"])]), [four]);
        assert_eq!(names(&s, &[f("description", &["a secret"])]), [one, two]);
        assert_eq!(
            names(&s, &[f("description", &["!c"])]),
            [one, two, three, four]
        );
        assert!(names(&s, &[f("description", &["a"]), f("name", &["secret"])]).is_empty());
        assert!(names(&s, &[f("description", &["a"]), f("name", &["an"])]).is_empty());
    }

    // ---- moto mock tests and per-key rules ----

    #[test]
    fn name_prefix_case_sensitive_values_ored() {
        let s = [
            Secret::new("foo"),
            Secret::new("bar"),
            Secret::new("baz"),
            Secret::new("DatabaseSecret"),
            Secret::new("databaseSecret"),
            Secret::new("MyData"),
        ];
        assert_eq!(names(&s, &[f("name", &["foo"])]), ["foo"]);
        assert_eq!(names(&s, &[f("name", &["foo", "bar"])]), ["foo", "bar"]);
        assert_eq!(names(&s, &[f("name", &["ba"])]), ["bar", "baz"]);
        // AWS console docs: Name "Data" matches DatabaseSecret only.
        assert_eq!(names(&s, &[f("name", &["Data"])]), ["DatabaseSecret"]);
        assert!(names(&s, &[f("name", &["oo"])]).is_empty());
    }

    #[test]
    fn tag_key_and_tag_value_prefix_case_sensitive() {
        let s = [
            Secret::new("foo").tag("baz", "1"),
            Secret::new("bar"),
            Secret::new("qux").tag("1", "baz"),
            Secret::new("up").tag("Baz", "Baz"),
        ];
        assert_eq!(names(&s, &[f("tag-key", &["baz"])]), ["foo"]);
        assert_eq!(names(&s, &[f("tag-key", &["ba"])]), ["foo"]);
        assert_eq!(names(&s, &[f("tag-value", &["baz"])]), ["qux"]);
        assert_eq!(names(&s, &[f("tag-value", &["B"])]), ["up"]);
    }

    #[test]
    fn different_keys_combine_with_and() {
        let s = [
            Secret::new("foo").tag("right", "right"),
            Secret::new("bar").tag("right", "wrong"),
            Secret::new("baz").tag("wrong", "right"),
            Secret::new("qux").tag("wrong", "wrong"),
        ];
        let filters = [f("tag-key", &["right"]), f("tag-value", &["right"])];
        assert_eq!(names(&s, &filters), ["foo"]);
    }

    #[test]
    fn all_searches_name_description_tag_keys_and_values() {
        let s = [
            Secret::new("foo"),
            Secret::new("bar").desc("foo"),
            Secret::new("baz").tag("foo", "1"),
            Secret::new("qux").tag("1", "foo"),
            Secret::new("multi").tag("foo", "foo"),
            Secret::new("none"),
            Secret::new("region").region("foo").owner("foo"),
        ];
        assert_eq!(
            names(&s, &[f("all", &["foo"])]),
            ["foo", "bar", "baz", "qux", "multi"]
        );
    }

    #[test]
    fn all_words_must_match_within_one_attribute() {
        // "secrets for" needs both words in the same field (AWS blog, moto PR 3173).
        let s = [
            Secret::new("secrets-for-app"),
            Secret::new("secrets").desc("for app"),
            Secret::new("x").desc("Secrets For You"),
        ];
        assert_eq!(
            names(&s, &[f("all", &["secrets for"])]),
            ["secrets-for-app", "x"]
        );
    }

    #[test]
    fn description_word_prefix_case_insensitive() {
        // AWS console docs: "My Description" matches all of these.
        let s = [
            Secret::new("a").desc("My Description"),
            Secret::new("b").desc("my description"),
            Secret::new("c").desc("My basic description"),
            Secret::new("d").desc("Description of my secret"),
            Secret::new("e").desc("Mine only"),
            Secret::new("f"),
        ];
        assert_eq!(
            names(&s, &[f("description", &["My Description"])]),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            names(&s, &[f("description", &["DESC"])]),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn description_absent_matches_nothing_even_negated() {
        let s = [Secret::new("nodesc"), Secret::new("empty").desc("")];
        assert!(names(&s, &[f("description", &["x"])]).is_empty());
        assert!(names(&s, &[f("description", &["!x"])]).is_empty());
    }

    #[test]
    fn owning_service_prefix_case_insensitive() {
        let s = [
            Secret::new("a").owner("my-serv"),
            Secret::new("b").owner("My-Service"),
            Secret::new("c").owner("other"),
            Secret::new("d"),
        ];
        // AWS console docs: "my-ser" matches my-serv and my-service.
        assert_eq!(names(&s, &[f("owning-service", &["my-ser"])]), ["a", "b"]);
        assert!(names(&s, &[f("owning-service", &["ser"])]).is_empty());
        // moto test_filter_with_owning_service: plain secrets never match.
        assert!(names(&s[3..], &[f("owning-service", &["n/a"])]).is_empty());
        assert_eq!(names(&s, &[f("owning-service", &["!my"])]), ["c"]);
    }

    #[test]
    fn primary_region_prefix_case_sensitive() {
        let s = [
            Secret::new("a").region("us-east-1"),
            Secret::new("b").region("eu-west-1"),
            Secret::new("c"),
        ];
        assert_eq!(names(&s, &[f("primary-region", &["us-east-1"])]), ["a"]);
        assert_eq!(names(&s, &[f("primary-region", &["us"])]), ["a"]);
        assert!(names(&s, &[f("primary-region", &["US"])]).is_empty());
        assert_eq!(names(&s, &[f("primary-region", &["!us"])]), ["b"]);
    }

    #[test]
    fn negation_on_multi_valued_keys_is_exists_non_matching() {
        // moto `_matcher`: "!p" holds when SOME attribute string fails to match p.
        let s = [
            Secret::new("both").tag("env", "prod").tag("owner", "me"),
            Secret::new("env-only").tag("env", "dev"),
            Secret::new("untagged"),
        ];
        assert_eq!(names(&s, &[f("tag-key", &["!env"])]), ["both"]);
        assert_eq!(
            names(&s, &[f("tag-value", &["!prod"])]),
            ["both", "env-only"]
        );

        let s = [
            Secret::new("foo"),
            Secret::new("foo2").desc("bar"),
            Secret::new("baz"),
        ];
        assert_eq!(names(&s, &[f("all", &["!foo"])]), ["foo2", "baz"]);
    }

    #[test]
    fn negated_wordless_value_matches_every_attribute() {
        // No words never matches, so its negation always does (moto behaviour).
        let s = [Secret::new("a"), Secret::new("b").desc("x")];
        assert_eq!(names(&s, &[f("all", &["!+"])]), ["a", "b"]);
        assert_eq!(names(&s, &[f("description", &["!/"])]), ["b"]);
    }

    #[test]
    fn no_filters_match_everything() {
        let s = [Secret::new("a"), Secret::new("b")];
        assert_eq!(names(&s, &[]), ["a", "b"]);
    }
}
