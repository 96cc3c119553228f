//! Wildcard patterns with policy variables, compiled once and matched without allocating.
//!
//! A pattern is a list of pieces: literal text, `*` (any run of characters, including none,
//! and spanning `:` and `/`), `?` (exactly one character) and policy variables
//! (`${aws:username}`, `${aws:PrincipalTag/team, 'default'}`), which are looked up in the
//! request context at match time and compared literally (a `*` inside a variable's value is
//! not a wildcard). The escapes `${*}`, `${?}` and `${$}` stand for a literal `*`, `?` and
//! `$`. An unresolvable variable without a default makes the pattern match nothing, as AWS
//! does. See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html>.

/// Where policy variables get their values: the request context.
pub(crate) trait Vars {
    /// The single value of a context key (case-insensitive name), if present and single.
    fn var(&self, key: &str) -> Option<&str>;
}

/// Whether literal comparison ignores ASCII case (actions) or not (everything else).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    /// Exact comparison.
    Sensitive,
    /// ASCII letters compare case-insensitively; other characters exactly.
    AsciiInsensitive,
}

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Star,
    One,
    Var {
        key: String,
        default: Option<String>,
    },
}

/// A compiled wildcard pattern (possibly without wildcards: an exact value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Vec<Piece>,
    has_vars: bool,
}

impl Pattern {
    /// Compiles `text`. `wildcards` makes `*`/`?` special; `variables` makes `${…}` special
    /// (only in Version 2012-10-17 documents). Never fails: malformed `${` is literal text.
    pub(crate) fn new(text: &str, wildcards: bool, variables: bool) -> Self {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                if let Some(end) = rest.find('}') {
                    let inner = &rest[2..end];
                    match inner {
                        "*" => lit.push('*'),
                        "?" => lit.push('?'),
                        "$" => lit.push('$'),
                        _ => match parse_variable(inner) {
                            Some(var) => {
                                if !lit.is_empty() {
                                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                                }
                                pieces.push(var);
                            }
                            None => lit.push_str(&rest[..=end]),
                        },
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
            }
            match c {
                '*' | '?' if wildcards => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    // Consecutive stars are one star.
                    if c == '?' {
                        pieces.push(Piece::One);
                    } else if pieces.last() != Some(&Piece::Star) {
                        pieces.push(Piece::Star);
                    }
                }
                _ => lit.push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        let has_vars = pieces.iter().any(|p| matches!(p, Piece::Var { .. }));
        Pattern { pieces, has_vars }
    }

    /// Whether the pattern contains a policy variable.
    pub(crate) fn has_vars(&self) -> bool {
        self.has_vars
    }

    /// Whether the pattern contains a wildcard piece.
    pub(crate) fn has_wildcards(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Star | Piece::One))
    }

    /// Lower-cases the literal text (for case-insensitive operators), in place.
    pub(crate) fn lowercase_literals(&mut self) {
        for p in &mut self.pieces {
            if let Piece::Lit(s) = p {
                *s = s.to_lowercase();
            }
        }
    }

    /// Matches `input` against the pattern, resolving variables through `vars`.
    pub(crate) fn matches(&self, input: &str, vars: &dyn Vars, case: Case) -> bool {
        // Fast paths for the common shapes: `x`, `x*`, `*`.
        match self.pieces.as_slice() {
            [Piece::Lit(l)] => {
                return match case {
                    Case::Sensitive => input == l,
                    Case::AsciiInsensitive => input.eq_ignore_ascii_case(l),
                }
            }
            [Piece::Star] => return true,
            [Piece::Lit(l), Piece::Star] => return starts_with(input, l, case),
            _ => {}
        }
        glob(&self.pieces, input, vars, case)
    }
}

/// Parses the inside of `${…}`: a context key, optionally `, 'default'`.
fn parse_variable(inner: &str) -> Option<Piece> {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d.strip_prefix('\'')?.strip_suffix('\'')?;
            (k.trim(), Some(d.to_owned()))
        }
        None => (inner.trim(), None),
    };
    let (prefix, name) = key.split_once(':')?;
    let ok_prefix = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok_prefix || name.is_empty() {
        return None;
    }
    Some(Piece::Var {
        key: key.to_owned(),
        default,
    })
}

/// The literal text a piece stands for (`None` for wildcards and unresolvable variables).
fn resolve<'a>(piece: &'a Piece, vars: &'a dyn Vars) -> Option<&'a str> {
    match piece {
        Piece::Lit(s) => Some(s),
        Piece::Var { key, default } => vars.var(key).or(default.as_deref()),
        Piece::Star | Piece::One => Some(""),
    }
}

fn starts_with(s: &str, lit: &str, case: Case) -> bool {
    match case {
        Case::Sensitive => s.starts_with(lit),
        Case::AsciiInsensitive => {
            s.len() >= lit.len() && s.as_bytes()[..lit.len()].eq_ignore_ascii_case(lit.as_bytes())
        }
    }
}

/// Iterative glob with single-star backtracking: linear in practice, never recursive.
fn glob(pieces: &[Piece], s: &str, vars: &dyn Vars, case: Case) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    // (piece index after the last star, input position that star currently extends to)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(piece) = pieces.get(pi) {
            match piece {
                // A trailing star swallows the rest of the input.
                Piece::Star if pi + 1 == pieces.len() => return true,
                Piece::Star => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                Piece::One => {
                    if let Some(c) = s[si..].chars().next() {
                        si += c.len_utf8();
                        pi += 1;
                        continue;
                    }
                }
                Piece::Lit(_) | Piece::Var { .. } => {
                    // An unresolvable variable means "no match", whatever the input.
                    let Some(lit) = resolve(piece, vars) else {
                        return false;
                    };
                    if starts_with(&s[si..], lit, case) {
                        si += lit.len();
                        pi += 1;
                        continue;
                    }
                }
            }
        } else if si == s.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character, or fail.
        match star {
            Some((after, from)) => match s[from..].chars().next() {
                Some(c) => {
                    let next = from + c.len_utf8();
                    star = Some((after, next));
                    pi = after;
                    si = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Splits an ARN-like text on `:` into at most six parts, ignoring colons inside `${…}`.
pub(crate) fn split_arn(text: &str) -> Vec<&str> {
    let mut parts = Vec::with_capacity(6);
    let mut depth = false;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => depth = true,
            b'}' => depth = false,
            b':' if !depth && parts.len() < 5 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoVars;
    impl Vars for NoVars {
        fn var(&self, _: &str) -> Option<&str> {
            None
        }
    }

    struct OneVar;
    impl Vars for OneVar {
        fn var(&self, key: &str) -> Option<&str> {
            key.eq_ignore_ascii_case("aws:username").then_some("a*b")
        }
    }

    #[test]
    fn pattern_wildcards_match_as_aws_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "arn:aws:secretsmanager:us-east-1:1:secret:a/b", true),
            (
                "arn:*:secret:*",
                "arn:aws:secretsmanager:us-east-1:1:secret:a/b-x",
                true,
            ),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("a?c", "aéc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("**", "x", true),
            ("ab", "abc", false),
            ("abc", "ab", false),
            ("*c", "abcbc", true),
            ("a*", "", false),
        ];
        for (p, s, want) in cases {
            let pat = Pattern::new(p, true, true);
            assert_eq!(
                pat.matches(s, &NoVars, Case::Sensitive),
                *want,
                "{p} vs {s}"
            );
        }
    }

    #[test]
    fn pattern_variables_and_escapes() {
        let p = Pattern::new("x/${aws:username}/*", true, true);
        assert!(p.matches("x/a*b/c", &OneVar, Case::Sensitive));
        assert!(
            !p.matches("x/aZb/c", &OneVar, Case::Sensitive),
            "variable values are literal"
        );
        assert!(
            !p.matches("x/a*b/c", &NoVars, Case::Sensitive),
            "unresolved: no match"
        );
        let d = Pattern::new("${aws:PrincipalTag/team, 'none'}", true, true);
        assert!(d.matches("none", &NoVars, Case::Sensitive));
        let e = Pattern::new("a${*}b${?}${$}", true, true);
        assert!(e.matches("a*b?$", &NoVars, Case::Sensitive));
        assert!(!e.matches("axb?$", &NoVars, Case::Sensitive));
        let off = Pattern::new("${aws:username}", true, false);
        assert!(off.matches("${aws:username}", &OneVar, Case::Sensitive));
        let bad = Pattern::new("${nocolon}", true, true);
        assert!(bad.matches("${nocolon}", &NoVars, Case::Sensitive));
    }

    #[test]
    fn pattern_ascii_case_insensitive() {
        let p = Pattern::new("secretsmanager:get*", true, false);
        assert!(p.matches(
            "secretsmanager:GetSecretValue",
            &NoVars,
            Case::AsciiInsensitive
        ));
        assert!(!p.matches("secretsmanager:GetSecretValue", &NoVars, Case::Sensitive));
    }

    #[test]
    fn split_arn_keeps_variables_whole() {
        assert_eq!(
            split_arn("a:b:c:d:e:f:g/h"),
            vec!["a", "b", "c", "d", "e", "f:g/h"]
        );
        assert_eq!(
            split_arn("${aws:PrincipalArn}"),
            vec!["${aws:PrincipalArn}"]
        );
    }

    /// Reference matcher: plain recursion over characters.
    fn naive(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| naive(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && naive(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && naive(rest, &s[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn pattern_glob_agrees_with_naive_matcher(p in "[ab:/*?é]{0,8}", s in "[ab:/é]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            let pat = Pattern::new(&p, true, false);
            proptest::prop_assert_eq!(pat.matches(&s, &NoVars, Case::Sensitive), naive(&pc, &sc));
        }
    }
}
