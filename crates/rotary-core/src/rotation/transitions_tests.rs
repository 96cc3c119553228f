//! Every rotation state transition on a secret built in memory: no service, no store.

use rotary_store::{SecretRecord, SecretRow, VersionRow};
use rotary_wire::dto::RotationRulesType;

use super::*;
use crate::clock::DAY_MS;
use crate::rotation::state::RotationConfig;
use crate::secret::SecretDoc;

const NOW: i64 = 1_700_000_000_000;
const FN_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotary-generic";

fn version(id: &str, seq: i64, stages: &[&str]) -> VersionRow {
    VersionRow {
        version_id: id.into(),
        seq,
        created_ms: NOW - DAY_MS,
        last_accessed_ms: None,
        stages: stages.iter().map(|s| (*s).to_owned()).collect(),
        kms_key_id: None,
        has_value: true,
    }
}

/// A secret with one current version `v1`, rotation every day with a function, due now.
fn secret(rotation: Option<RotationConfig>) -> Secret {
    let doc = SecretDoc {
        rotation,
        ..Default::default()
    };
    Secret::from_record(SecretRecord {
        row: SecretRow {
            uid: "uid".into(),
            namespace: "123456789012:us-east-1".into(),
            name: "db".into(),
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into(),
            created_ms: NOW - DAY_MS,
            last_changed_ms: NOW - DAY_MS,
            last_accessed_ms: None,
            deleted_ms: None,
            rotation_due_ms: Some(NOW),
            replication_due_ms: None,
            revision: 1,
            doc: serde_json::to_string(&doc).unwrap(),
        },
        versions: vec![version("v1", 1, &[AWSCURRENT])],
    })
    .unwrap()
}

fn daily() -> RotationConfig {
    RotationConfig {
        enabled: true,
        lambda_arn: Some(FN_ARN.into()),
        rules: Some(RotationRulesType {
            automatically_after_days: Some(1),
            ..Default::default()
        }),
        schedule_anchor_ms: Some(NOW - DAY_MS),
        ..Default::default()
    }
}

fn state(s: &Secret) -> &RotationState {
    s.doc
        .rotation
        .as_ref()
        .unwrap()
        .in_progress
        .as_ref()
        .unwrap()
}

fn rotation(s: &Secret) -> &RotationConfig {
    s.doc.rotation.as_ref().unwrap()
}

fn stages(s: &Secret, id: &str) -> Vec<String> {
    s.versions[s.version_index(id).unwrap()].row.stages.clone()
}

/// A secret whose scheduled rotation has started; its pending version id.
fn started() -> (Secret, String) {
    let mut s = secret(Some(daily()));
    let Taken::Started(st) = take_due(&mut s, NOW) else {
        panic!("not started")
    };
    (s, st.token)
}

#[test]
fn a_due_secret_starts_a_scheduled_rotation_with_a_placeholder() {
    let (s, token) = started();
    let st = state(&s);
    assert_eq!(st.trigger, Trigger::Schedule);
    assert_eq!(st.next_step, Some(Step::CreateSecret));
    assert_eq!(st.attempt, 1);
    assert!(!st.test_only && !st.late);
    assert_eq!(stages(&s, &token), [AWSPENDING]);
    let placeholder = &s.versions[s.version_index(&token).unwrap()];
    assert!(!placeholder.row.has_value && placeholder.is_new);
    assert_eq!(s.row.rotation_due_ms, Some(NOW));
}

#[test]
fn a_secret_not_yet_due_is_left_alone() {
    let mut s = secret(Some(daily()));
    s.row.rotation_due_ms = Some(NOW + 1);
    assert_eq!(take_due(&mut s, NOW), Taken::NotDue);
    assert!(rotation(&s).in_progress.is_none());
    assert_eq!(s.versions.len(), 1);
}

#[test]
fn a_rotation_after_its_window_is_marked_late() {
    let mut s = secret(Some(RotationConfig {
        next_rotation_ms: Some(NOW - 1),
        ..daily()
    }));
    assert!(matches!(take_due(&mut s, NOW), Taken::Started(st) if st.late));
}

#[test]
fn a_due_secret_with_a_rotation_in_progress_resumes_it_unchanged() {
    let (mut s, token) = started();
    assert!(step_completed(&mut s, &token, Step::CreateSecret));
    let before = s.doc.clone();
    let Taken::Resume(st) = take_due(&mut s, NOW + 5) else {
        panic!("not resumed")
    };
    assert_eq!(st.token, token);
    assert_eq!(st.next_step, Some(Step::SetSecret));
    assert_eq!(s.doc, before);
}

#[test]
fn pending_left_on_a_version_is_redriven_with_that_version() {
    let mut s = secret(Some(daily()));
    s.versions.push(Version {
        row: version("v2", 2, &[AWSPENDING]),
        new_ciphertext: None,
        is_new: false,
    });
    let Taken::Started(st) = take_due(&mut s, NOW) else {
        panic!("not started")
    };
    assert_eq!(st.token, "v2");
    assert_eq!(st.trigger, Trigger::Redrive);
    assert_eq!(s.versions.len(), 2, "no new placeholder");
}

#[test]
fn nothing_to_rotate_takes_the_secret_off_the_schedule() {
    for config in [
        None,
        Some(RotationConfig {
            lambda_arn: None,
            ..daily()
        }),
        Some(RotationConfig {
            enabled: false,
            ..daily()
        }),
    ] {
        let mut s = secret(config);
        assert_eq!(take_due(&mut s, NOW), Taken::Unscheduled);
        assert_eq!(s.row.rotation_due_ms, None);
        assert_eq!(s.versions.len(), 1);
    }
    let mut s = secret(Some(daily()));
    s.row.deleted_ms = Some(NOW + DAY_MS);
    assert_eq!(take_due(&mut s, NOW), Taken::Unscheduled);
}

#[test]
fn steps_advance_in_order_and_only_for_the_rotation_in_progress() {
    let (mut s, token) = started();
    assert!(!step_completed(&mut s, "another", Step::CreateSecret));
    assert_eq!(state(&s).next_step, Some(Step::CreateSecret));
    for step in Step::ALL {
        assert_eq!(state(&s).next_step, Some(step));
        assert!(step_completed(&mut s, &token, step));
    }
    assert_eq!(state(&s).next_step, None);
    assert!(state(&s).remaining_steps().is_empty());
}

#[test]
fn completion_needs_awscurrent_on_the_new_version() {
    let (mut s, token) = started();
    assert_eq!(complete(&mut s, &token, NOW), Completion::NotCurrent);
    assert!(rotation(&s).in_progress.is_some());
    assert_eq!(complete(&mut s, "another", NOW), Completion::Gone);
    // finishSecret moves the labels.
    let new = s.version_index(&token).unwrap();
    let mut l = s.labels();
    labels::move_one(&mut l, new, AWSCURRENT);
    s.set_labels(l);
    assert_eq!(complete(&mut s, &token, NOW + 10), Completion::Succeeded);
    assert_eq!(stages(&s, &token), [AWSCURRENT]);
    let r = rotation(&s);
    assert!(r.in_progress.is_none());
    assert_eq!(r.last_rotated_ms, Some(NOW + 10));
    assert_eq!(r.last_outcome, Some(Outcome::Succeeded));
    assert_eq!(r.last_error, None);
    let next = r.next_rotation_ms.unwrap();
    assert!(next > NOW + 10);
    assert!(s.row.rotation_due_ms.unwrap() <= next);
}

#[test]
fn a_failed_attempt_is_retried_from_create_secret_with_the_same_token() {
    let (mut s, token) = started();
    step_completed(&mut s, &token, Step::CreateSecret);
    let history = state(&s).history_id.clone();
    assert!(!fail(&mut s, "another", "boom", Some(NOW + 1_000), NOW));
    assert!(fail(&mut s, &token, "boom", Some(NOW + 1_000), NOW));
    let st = state(&s);
    assert_eq!(st.token, token);
    assert_eq!(st.attempt, 2);
    assert_eq!(st.next_step, Some(Step::CreateSecret));
    assert_ne!(st.history_id, history);
    assert_eq!(s.row.rotation_due_ms, Some(NOW + 1_000));
    assert_eq!(rotation(&s).last_error.as_deref(), Some("boom"));
    assert_eq!(rotation(&s).last_outcome, None);
}

#[test]
fn a_rotation_given_up_keeps_pending_and_plans_the_next_window() {
    let (mut s, token) = started();
    assert!(fail(&mut s, &token, "boom", None, NOW));
    let r = rotation(&s);
    assert!(r.in_progress.is_none());
    assert!(r.last_failed());
    assert_eq!(r.last_error.as_deref(), Some("boom"));
    assert!(s.row.rotation_due_ms.unwrap() >= NOW);
    assert!(r.next_rotation_ms.is_some());
    assert_eq!(
        stages(&s, &token),
        [AWSPENDING],
        "AWSPENDING stays for a re-drive"
    );
    assert_eq!(stuck_pending(&s), s.version_index(&token));
}

#[test]
fn deferring_moves_only_the_due_time() {
    let (mut s, token) = started();
    let before = s.doc.clone();
    assert!(defer(&mut s, &token, NOW + 60_000));
    assert_eq!(s.row.rotation_due_ms, Some(NOW + 60_000));
    assert!(!defer(&mut s, &token, NOW + 60_000), "same time: no change");
    assert!(!defer(&mut s, "another", NOW + 1));
    assert_eq!(s.doc, before);
}

#[test]
fn an_abandoned_rotation_is_recorded_and_replanned() {
    let (mut s, token) = started();
    assert!(!abandon(&mut s, "another", NOW));
    assert!(abandon(&mut s, &token, NOW));
    let r = rotation(&s);
    assert!(r.in_progress.is_none());
    assert_eq!(r.last_outcome, Some(Outcome::Abandoned));
    assert!(r.next_rotation_ms.is_some());
}

#[test]
fn a_test_rotation_runs_test_secret_and_ends_without_its_version() {
    let mut s = secret(Some(daily()));
    add_placeholder(&mut s, "t1", NOW);
    begin(&mut s, "t1", Trigger::Api, true, false, NOW);
    assert_eq!(state(&s).remaining_steps(), [Step::TestSecret]);
    assert!(!finish_test(&mut s, "another", None, NOW));
    // Ends two days later: the schedule is planned from the test's start.
    assert!(finish_test(
        &mut s,
        "t1",
        Some("testSecret failed"),
        NOW + 2 * DAY_MS
    ));
    assert!(s.version_index("t1").is_none());
    let r = rotation(&s);
    assert!(r.in_progress.is_none());
    assert!(r.last_failed());
    assert!(s.row.rotation_due_ms.unwrap() < NOW + 2 * DAY_MS);
}

#[test]
fn a_test_rotation_does_not_end_a_real_one() {
    let (mut s, token) = started();
    assert!(!finish_test(&mut s, &token, None, NOW));
    assert!(rotation(&s).in_progress.is_some());
}

#[test]
fn cancel_stops_the_rotation_and_keeps_function_and_rules() {
    assert_eq!(cancel(&mut secret(None)), Err(()));
    let (mut s, token) = started();
    assert_eq!(cancel(&mut s), Ok(Some(token.clone())));
    let r = rotation(&s);
    assert!(!r.enabled && r.in_progress.is_none() && r.next_rotation_ms.is_none());
    assert_eq!(r.lambda_arn.as_deref(), Some(FN_ARN));
    assert!(r.rules.is_some());
    assert_eq!(s.row.rotation_due_ms, None);
    assert_eq!(stages(&s, &token), [AWSPENDING], "labels untouched");
    // Cancelled again: the stuck version is still named.
    assert_eq!(cancel(&mut s), Ok(Some(token)));
}

#[test]
fn redrive_on_rotate_secret_enables_rotation_once() {
    let mut s = secret(None);
    s.versions.push(Version {
        row: version("v2", 2, &[AWSPENDING]),
        new_ciphertext: None,
        is_new: false,
    });
    let p = stuck_pending(&s).unwrap();
    redrive(&mut s, p, FN_ARN, NOW);
    let st = state(&s).clone();
    assert_eq!((st.token.as_str(), st.trigger), ("v2", Trigger::Redrive));
    assert!(rotation(&s).enabled);
    assert_eq!(rotation(&s).lambda_arn.as_deref(), Some(FN_ARN));
    // A second RotateSecret keeps the rotation in progress.
    redrive(&mut s, p, "arn:other", NOW + 1);
    assert_eq!(state(&s), &st);
    assert_eq!(rotation(&s).lambda_arn.as_deref(), Some(FN_ARN));
}

#[test]
fn a_value_written_by_hand_restarts_a_day_based_schedule() {
    let mut s = secret(Some(daily()));
    value_written(&mut s, NOW + 5);
    assert_eq!(rotation(&s).schedule_anchor_ms, Some(NOW + 5));
    assert!(rotation(&s).next_rotation_ms.unwrap() > NOW + 5);
    // Not while a rotation is in progress.
    let (mut s, _) = started();
    let anchor = rotation(&s).schedule_anchor_ms;
    value_written(&mut s, NOW + 5);
    assert_eq!(rotation(&s).schedule_anchor_ms, anchor);
}
