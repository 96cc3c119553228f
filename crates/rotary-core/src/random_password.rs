//! `GetRandomPassword`: CSPRNG password generation with AWS's character classes.
//!
//! Mirrors AWS Secrets Manager's `GetRandomPassword` (spec §3.12, §4.10). The caller validates
//! `PasswordLength` (1..=4096); this module only turns a [`PasswordSpec`] into a password.
//!
//! # Invariants
//! - Randomness comes only from [`OsRng`]; every character is drawn uniformly from its set
//!   (`rand`'s uniform range sampling is unbiased), and required characters are placed at
//!   uniformly random positions by a Fisher–Yates shuffle of the whole buffer.
//! - Every buffer that holds password characters is zeroized when dropped.

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use zeroize::Zeroizing;

const LOWERCASE: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// Python's `string.punctuation`, the 32 symbols AWS documents for `ExcludePunctuation`.
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const SPACE: u8 = b' ';

/// The parameters of a `GetRandomPassword` request, with AWS's defaults filled in.
///
/// `length` must already be validated (1..=4096) by the caller.
#[derive(Debug, Clone)]
pub struct PasswordSpec {
    /// `PasswordLength`: number of characters to generate (default 32).
    pub length: usize,
    /// `ExcludeCharacters`: literal characters never to use (no escaping or ranges).
    pub exclude_characters: String,
    /// `ExcludeNumbers`: drop the digits `0-9`.
    pub exclude_numbers: bool,
    /// `ExcludePunctuation`: drop the 32 ASCII punctuation symbols.
    pub exclude_punctuation: bool,
    /// `ExcludeUppercase`: drop `A-Z`.
    pub exclude_uppercase: bool,
    /// `ExcludeLowercase`: drop `a-z`.
    pub exclude_lowercase: bool,
    /// `IncludeSpace`: allow the space character (it is never required).
    pub include_space: bool,
    /// `RequireEachIncludedType`: at least one character of every included class that still
    /// has characters after exclusions (default `true`).
    pub require_each_included_type: bool,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        Self {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// Why a password could not be generated; both map to `InvalidParameterException`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// `RequireEachIncludedType` needs more characters than `PasswordLength` allows.
    #[error("Password length is too short based on the required types.")]
    TooShort,
    /// The exclusions leave no character to build a password from.
    #[error(
        "No characters are available to generate the password: the exclusion parameters \
         remove every character type."
    )]
    EmptyAlphabet,
}

/// Generates a password for `spec` from the operating system's CSPRNG.
///
/// Classes are `a-z`, `A-Z`, `0-9`, the 32 punctuation symbols and, with `include_space`, the
/// space. With `require_each_included_type`, one character is drawn from each of the four
/// classes that still has characters (space is not required: AWS documents it as "can
/// include"), the rest from the whole alphabet, and the buffer is then shuffled so the
/// required characters sit at random positions (moto always appends them at the end).
///
/// # Errors
/// [`PasswordError::EmptyAlphabet`] if nothing is left to draw from, else
/// [`PasswordError::TooShort`] if `length` is below the number of required classes.
pub fn generate(spec: &PasswordSpec) -> Result<Zeroizing<String>, PasswordError> {
    let classes: Vec<Vec<u8>> = [
        (LOWERCASE, spec.exclude_lowercase),
        (UPPERCASE, spec.exclude_uppercase),
        (DIGITS, spec.exclude_numbers),
        (PUNCTUATION, spec.exclude_punctuation),
    ]
    .into_iter()
    .filter(|&(_, excluded)| !excluded)
    .map(|(chars, _)| allowed(chars, &spec.exclude_characters))
    .filter(|chars| !chars.is_empty())
    .collect();

    let mut alphabet: Vec<u8> = classes.concat();
    if spec.include_space && !spec.exclude_characters.contains(char::from(SPACE)) {
        alphabet.push(SPACE);
    }
    if alphabet.is_empty() {
        return Err(PasswordError::EmptyAlphabet);
    }

    let required: &[Vec<u8>] = if spec.require_each_included_type {
        &classes
    } else {
        &[]
    };
    if spec.length < required.len() {
        return Err(PasswordError::TooShort);
    }

    let mut rng = OsRng;
    let mut buf = Zeroizing::new(Vec::with_capacity(spec.length));
    for class in required {
        buf.push(pick(&mut rng, class)?);
    }
    while buf.len() < spec.length {
        buf.push(pick(&mut rng, &alphabet)?);
    }
    buf.shuffle(&mut rng);

    // Sized up front so the String never reallocates and leaves an unzeroized copy behind.
    let mut password = Zeroizing::new(String::with_capacity(spec.length));
    password.extend(buf.iter().map(|&b| char::from(b)));
    Ok(password)
}

/// The members of `class` that are not listed in `exclude`.
fn allowed(class: &[u8], exclude: &str) -> Vec<u8> {
    class
        .iter()
        .copied()
        .filter(|&b| !exclude.contains(char::from(b)))
        .collect()
}

/// One uniformly chosen member of `set` (which the caller guarantees is non-empty).
fn pick(rng: &mut OsRng, set: &[u8]) -> Result<u8, PasswordError> {
    set.choose(rng).copied().ok_or(PasswordError::EmptyAlphabet)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn class_of(c: char) -> usize {
        if c.is_ascii_lowercase() {
            0
        } else if c.is_ascii_uppercase() {
            1
        } else if c.is_ascii_digit() {
            2
        } else if PUNCTUATION.contains(&(c as u8)) {
            3
        } else if c == ' ' {
            4
        } else {
            panic!("unexpected character {c:?}")
        }
    }

    fn classes_present(p: &str) -> BTreeSet<usize> {
        p.chars().map(class_of).collect()
    }

    fn spec(f: impl FnOnce(&mut PasswordSpec)) -> PasswordSpec {
        let mut s = PasswordSpec::default();
        f(&mut s);
        s
    }

    #[test]
    fn punctuation_is_python_string_punctuation() {
        assert_eq!(PUNCTUATION.len(), 32);
        let expected: Vec<u8> = (0x21u8..=0x7e).filter(u8::is_ascii_punctuation).collect();
        assert_eq!(PUNCTUATION, expected.as_slice());
    }

    #[test]
    fn generate_defaults_length_32_all_classes_no_space() {
        let d = PasswordSpec::default();
        assert_eq!(d.length, 32);
        assert!(d.require_each_included_type);
        assert!(!d.include_space);
        for _ in 0..500 {
            let p = generate(&d).unwrap();
            assert_eq!(p.len(), 32);
            assert_eq!(classes_present(&p), BTreeSet::from([0, 1, 2, 3]));
        }
    }

    type SetFlag = fn(&mut PasswordSpec);

    #[test]
    fn generate_exclude_flags_remove_whole_classes() {
        let cases: [(SetFlag, usize); 4] = [
            (|s| s.exclude_lowercase = true, 0),
            (|s| s.exclude_uppercase = true, 1),
            (|s| s.exclude_numbers = true, 2),
            (|s| s.exclude_punctuation = true, 3),
        ];
        for (set, excluded) in cases {
            let s = spec(|s| {
                set(s);
                s.length = 64;
            });
            for _ in 0..200 {
                let p = generate(&s).unwrap();
                assert_eq!(p.len(), 64);
                let mut want: BTreeSet<usize> = BTreeSet::from([0, 1, 2, 3]);
                want.remove(&excluded);
                assert_eq!(classes_present(&p), want, "password {:?}", &*p);
            }
        }
    }

    #[test]
    fn generate_only_one_class_left() {
        let s = spec(|s| {
            s.exclude_lowercase = true;
            s.exclude_uppercase = true;
            s.exclude_punctuation = true;
            s.length = 100;
        });
        let p = generate(&s).unwrap();
        assert!(p.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn generate_exclude_characters_never_appear() {
        // LocalStack aws-validated: 120 chars with ExcludeCharacters="xyzDje@?!.".
        let excluded = "xyzDje@?!.";
        let s = spec(|s| {
            s.length = 120;
            s.exclude_characters = excluded.to_owned();
        });
        for _ in 0..300 {
            let p = generate(&s).unwrap();
            assert_eq!(p.len(), 120);
            assert!(
                !p.chars().any(|c| excluded.contains(c)),
                "password {:?}",
                &*p
            );
            assert_eq!(classes_present(&p), BTreeSet::from([0, 1, 2, 3]));
        }
    }

    #[test]
    fn generate_exclude_characters_rotation_template_default() {
        let excluded = ":/@\"'\\";
        let s = spec(|s| s.exclude_characters = excluded.to_owned());
        for _ in 0..300 {
            let p = generate(&s).unwrap();
            assert!(!p.chars().any(|c| excluded.contains(c)));
        }
    }

    #[test]
    fn generate_class_emptied_by_exclude_characters_is_not_required() {
        // Digits are all excluded literally, so only 3 classes remain required.
        let s = spec(|s| {
            s.length = 3;
            s.exclude_characters = "0123456789".to_owned();
        });
        for _ in 0..200 {
            let p = generate(&s).unwrap();
            assert_eq!(classes_present(&p), BTreeSet::from([0, 1, 3]));
        }
    }

    #[test]
    fn generate_include_space_allows_but_does_not_require_space() {
        let s = spec(|s| {
            s.include_space = true;
            s.length = 64;
        });
        let mut saw_space = false;
        for _ in 0..200 {
            let p = generate(&s).unwrap();
            assert_eq!(p.len(), 64);
            assert!(classes_present(&p).is_superset(&BTreeSet::from([0, 1, 2, 3])));
            saw_space |= p.contains(' ');
        }
        assert!(saw_space);

        // Four required classes fit in 4 characters: space is not a fifth requirement.
        let s = spec(|s| {
            s.include_space = true;
            s.length = 4;
        });
        for _ in 0..200 {
            assert_eq!(
                classes_present(&generate(&s).unwrap()),
                BTreeSet::from([0, 1, 2, 3])
            );
        }
    }

    #[test]
    fn generate_include_space_excluded_by_exclude_characters() {
        let s = spec(|s| {
            s.include_space = true;
            s.exclude_characters = " ".to_owned();
            s.length = 128;
        });
        for _ in 0..100 {
            assert!(!generate(&s).unwrap().contains(' '));
        }
    }

    #[test]
    fn generate_only_space() {
        let s = spec(|s| {
            s.exclude_lowercase = true;
            s.exclude_uppercase = true;
            s.exclude_numbers = true;
            s.exclude_punctuation = true;
            s.include_space = true;
            s.length = 5;
        });
        assert_eq!(generate(&s).unwrap().as_str(), "     ");
    }

    #[test]
    fn generate_require_each_false_allows_missing_classes() {
        // With length 1 only one class can be present; with require_each=true it is TooShort.
        let s = spec(|s| {
            s.length = 1;
            s.require_each_included_type = false;
        });
        let mut seen = BTreeSet::new();
        for _ in 0..2000 {
            let p = generate(&s).unwrap();
            assert_eq!(p.len(), 1);
            seen.extend(classes_present(&p));
        }
        assert_eq!(seen, BTreeSet::from([0, 1, 2, 3]));
        // And over short passwords, some miss a class (P(all 4 in 4 chars) ~ 0.08).
        let s = spec(|s| {
            s.length = 4;
            s.require_each_included_type = false;
        });
        let missing = (0..500)
            .filter(|_| classes_present(&generate(&s).unwrap()).len() < 4)
            .count();
        assert!(missing > 0);
    }

    #[test]
    fn generate_too_short_for_required_classes() {
        let s = spec(|s| s.length = 3);
        assert_eq!(generate(&s).unwrap_err(), PasswordError::TooShort);
        assert_eq!(
            PasswordError::TooShort.to_string(),
            "Password length is too short based on the required types."
        );
        let s = spec(|s| s.length = 4);
        assert_eq!(generate(&s).unwrap().len(), 4);
        let s = spec(|s| {
            s.length = 3;
            s.exclude_punctuation = true;
        });
        assert_eq!(generate(&s).unwrap().len(), 3);
    }

    #[test]
    fn generate_empty_alphabet() {
        let all_excluded = spec(|s| {
            s.exclude_lowercase = true;
            s.exclude_uppercase = true;
            s.exclude_numbers = true;
            s.exclude_punctuation = true;
        });
        assert_eq!(
            generate(&all_excluded).unwrap_err(),
            PasswordError::EmptyAlphabet
        );

        let mut every_char: String = [LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION]
            .concat()
            .into_iter()
            .map(char::from)
            .collect();
        let s = spec(|s| s.exclude_characters = every_char.clone());
        assert_eq!(generate(&s).unwrap_err(), PasswordError::EmptyAlphabet);

        every_char.push(' ');
        let s = spec(|s| {
            s.exclude_characters = every_char;
            s.include_space = true;
        });
        assert_eq!(generate(&s).unwrap_err(), PasswordError::EmptyAlphabet);
    }

    #[test]
    fn generate_every_allowed_char_appears_roughly_uniformly() {
        // 200 x 64 = 12,800 draws over 94 symbols: ~136 expected per symbol, sd ~12. The
        // bounds below are > 7 sd away, so this never flakes yet catches a missing or
        // badly skewed symbol.
        let s = spec(|s| s.length = 64);
        let mut counts: BTreeMap<char, usize> = BTreeMap::new();
        for _ in 0..200 {
            for c in generate(&s).unwrap().chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 94, "missing symbols");
        for (c, n) in counts {
            assert!((45..=410).contains(&n), "{c:?} appeared {n} times");
        }
    }

    #[test]
    fn generate_required_chars_land_at_random_positions() {
        // Length 4 with 4 required classes: every class must show up at every position.
        let s = spec(|s| s.length = 4);
        let mut seen = BTreeSet::new();
        for _ in 0..400 {
            let p = generate(&s).unwrap();
            assert_eq!(classes_present(&p).len(), 4);
            for (pos, c) in p.chars().enumerate() {
                seen.insert((pos, class_of(c)));
            }
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn generate_max_length() {
        let s = spec(|s| s.length = 4096);
        let p = generate(&s).unwrap();
        assert_eq!(p.len(), 4096);
        assert_eq!(classes_present(&p), BTreeSet::from([0, 1, 2, 3]));
    }
}
