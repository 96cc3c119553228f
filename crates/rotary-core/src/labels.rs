//! Staging labels and how they move between versions (spec §4.3).
//!
//! Pure functions over `[VersionLabels]`; the operations decide which function applies.

use std::collections::BTreeSet;

/// The version clients read by default.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The last-known-good version.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The version a rotation is preparing.
pub const AWSPENDING: &str = "AWSPENDING";

/// Most labels attached across all versions of one secret.
pub const MAX_LABELS_PER_SECRET: usize = 20;

/// A version's id and labels (sorted, as AWS reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionLabels {
    /// Version id.
    pub id: String,
    /// Labels.
    pub stages: BTreeSet<String>,
}

fn holder(versions: &[VersionLabels], label: &str) -> Option<usize> {
    versions.iter().position(|v| v.stages.contains(label))
}

fn take(versions: &mut [VersionLabels], label: &str) -> Option<usize> {
    let i = holder(versions, label)?;
    versions[i].stages.remove(label);
    Some(i)
}

/// A write without explicit labels (PutSecretValue, UpdateSecret, CreateSecret): `target`
/// becomes `AWSCURRENT`; the old current version is left with exactly `[AWSPREVIOUS]`, and a
/// rotation in progress is abandoned (`AWSPENDING` removed wherever it is).
pub fn make_current(versions: &mut [VersionLabels], target: usize) {
    take(versions, AWSPENDING);
    let old = holder(versions, AWSCURRENT).filter(|&i| i != target);
    if let Some(old) = old {
        take(versions, AWSPREVIOUS);
        versions[old].stages.clear();
        versions[old].stages.insert(AWSPREVIOUS.to_owned());
    }
    versions[target].stages.insert(AWSCURRENT.to_owned());
}

/// Moves each of `labels` onto `target` (PutSecretValue with `VersionStages`). Moving
/// `AWSCURRENT` puts `AWSPREVIOUS` on the version it left. The first value of a secret
/// always gets `AWSCURRENT`.
pub fn move_labels(versions: &mut [VersionLabels], target: usize, labels: &[String]) {
    for label in labels {
        move_one(versions, target, label);
    }
    if holder(versions, AWSCURRENT).is_none() {
        versions[target].stages.insert(AWSCURRENT.to_owned());
    }
}

/// Moves one label onto `target`, with the `AWSPREVIOUS` bookkeeping for `AWSCURRENT`.
pub fn move_one(versions: &mut [VersionLabels], target: usize, label: &str) {
    let from = take(versions, label);
    versions[target].stages.insert(label.to_owned());
    if label == AWSCURRENT {
        if let Some(from) = from.filter(|&f| f != target) {
            take(versions, AWSPREVIOUS);
            versions[from].stages.insert(AWSPREVIOUS.to_owned());
        }
    }
}

/// Total labels across versions.
pub fn count(versions: &[VersionLabels]) -> usize {
    versions.iter().map(|v| v.stages.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(spec: &[&[&str]]) -> Vec<VersionLabels> {
        spec.iter()
            .enumerate()
            .map(|(i, s)| VersionLabels {
                id: format!("v{i}"),
                stages: s.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn labels(v: &[VersionLabels]) -> Vec<Vec<&str>> {
        v.iter()
            .map(|v| v.stages.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn make_current_drags_previous_and_abandons_pending() {
        let mut v = vs(&[
            &["AWSPREVIOUS"],
            &["AWSCURRENT", "AWSPENDING", "custom"],
            &[],
        ]);
        make_current(&mut v, 2);
        assert_eq!(
            labels(&v),
            vec![vec![], vec!["AWSPREVIOUS"], vec!["AWSCURRENT"]]
        );
    }

    #[test]
    fn make_current_on_first_version() {
        let mut v = vs(&[&[]]);
        make_current(&mut v, 0);
        assert_eq!(labels(&v), vec![vec!["AWSCURRENT"]]);
    }

    #[test]
    fn move_labels_moves_only_listed_labels() {
        let mut v = vs(&[&["AWSCURRENT", "a"], &["b"], &[]]);
        move_labels(&mut v, 2, &["a".into(), "b".into()]);
        assert_eq!(labels(&v), vec![vec!["AWSCURRENT"], vec![], vec!["a", "b"]]);
        move_labels(&mut v, 1, &["AWSCURRENT".into()]);
        assert_eq!(
            labels(&v),
            vec![vec!["AWSPREVIOUS"], vec!["AWSCURRENT"], vec!["a", "b"]]
        );
    }

    #[test]
    fn first_value_always_gets_current() {
        let mut v = vs(&[&[]]);
        move_labels(&mut v, 0, &["AWSPENDING".into()]);
        assert_eq!(labels(&v), vec![vec!["AWSCURRENT", "AWSPENDING"]]);
    }

    #[test]
    fn moving_current_keeps_other_labels_and_pending_on_target() {
        let mut v = vs(&[&["AWSCURRENT", "PUT1"], &["AWSPENDING"], &["AWSPREVIOUS"]]);
        move_one(&mut v, 1, AWSCURRENT);
        assert_eq!(
            labels(&v),
            vec![
                vec!["AWSPREVIOUS", "PUT1"],
                vec!["AWSCURRENT", "AWSPENDING"],
                vec![]
            ]
        );
        assert_eq!(count(&v), 4);
    }
}
