//! Audit log tests: the chain across reopen, every kind of tampering `verify` must find
//! (with its position), fail-closed and fail-open write errors, and the leak canary.

use std::path::{Path, PathBuf};

use super::writer::FAIL_WRITES;
use super::*;

const T0: i64 = 1_764_520_000_123;

fn rec(i: u64) -> AuditRecord {
    AuditRecord::new(
        T0 + i as i64 * 1000,
        format!("req-{i}"),
        "secretsmanager:GetSecretValue",
        Outcome::Allowed,
    )
    .principal("arn:aws:iam::000000000000:user/alice")
    .access_key("AKIAALICE")
    .source("127.0.0.1:5000")
    .user_agent("boto3/1.35")
    .secret("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf")
    .version("11111111-2222-3333-4444-555555555555")
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(LOG_FILE)
}

/// A log of `n` records at `path`, written through `AuditLog`.
async fn write_log(path: &Path, n: u64) {
    let log = AuditLog::open(path, AuditConfig::default()).unwrap();
    for i in 1..=n {
        log.record(rec(i)).await.unwrap();
    }
    log.flush().await.unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

fn verify_err(path: &Path) -> VerifyError {
    match verify(path) {
        Ok(s) => panic!("verify passed on a tampered log: {s:?}"),
        Err(e) => e,
    }
}

/// A five-record log, plus its lines.
async fn five() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write_log(&path, 5).await;
    let l = lines(&path);
    assert_eq!(l.len(), 5);
    (dir, path, l)
}

#[tokio::test]
async fn chain_grows_across_reopen_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write_log(&path, 3).await;
    // Dropping without flush also drains and fsyncs.
    {
        let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
        log.record(rec(4)).await.unwrap();
        log.record(rec(5)).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.records_total(), 2);
        assert!(!log.is_failing());
    }
    let summary = verify(&path).unwrap();
    assert_eq!(summary.records, 5);
    assert!(summary.head_checked);
    let recs = query(&path, &AuditFilter::default()).unwrap();
    let seqs: Vec<u64> = recs.iter().map(|r| r.sequence).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(recs[0].prev_hash, GENESIS_HASH);
    for w in recs.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(summary.head_hash, recs[4].hash);
    let head = read_head(&path).unwrap().unwrap();
    assert_eq!((head.sequence, head.hash), (5, recs[4].hash.clone()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn record_line_format_is_pascal_case_with_hash_last() {
    let (_d, _p, l) = five().await;
    let line = &l[0];
    assert!(
        line.starts_with("{\"Sequence\":1,\"Time\":\"2025-11-30T16:26:41.123Z\""),
        "{line}"
    );
    assert!(line.contains("\"Operation\":\"secretsmanager:GetSecretValue\""));
    assert!(line.contains("\"Outcome\":\"Allowed\""));
    assert!(line.contains(&format!("\"PrevHash\":\"{GENESIS_HASH}\",\"Hash\":\"")));
    assert!(
        !line.contains("FunctionArn"),
        "absent fields are left out: {line}"
    );
    let r: AuditRecord = serde_json::from_str(line).unwrap();
    assert_eq!(r.request_id, "req-1");
    assert_eq!(r.hash.len(), 64);
}

#[tokio::test]
async fn verify_empty_log_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    drop(AuditLog::open(&path, AuditConfig::default()).unwrap());
    let s = verify(&path).unwrap();
    assert_eq!((s.records, s.head_hash.as_str()), (0, GENESIS_HASH));
}

#[tokio::test]
async fn verify_missing_file_is_position_zero() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(verify_err(&log_path(&dir)).position, 0);
}

#[tokio::test]
async fn verify_edited_field_byte_reports_its_record() {
    let (_d, path, mut l) = five().await;
    l[2] = l[2].replace("req-3", "req-9");
    write_lines(&path, &l);
    let e = verify_err(&path);
    assert_eq!(e.position, 3, "{e}");
    assert!(e.reason.contains("edited"), "{e}");
}

#[tokio::test]
async fn verify_edited_single_byte_anywhere_is_found() {
    // Flip one byte at every offset of record 3 in turn (keeping it one line).
    let (_d, path, l) = five().await;
    let original = l.join("\n") + "\n";
    let start = l[0].len() + l[1].len() + 2;
    for off in start..start + l[2].len() {
        let mut bytes = original.clone().into_bytes();
        bytes[off] = if bytes[off] == b'a' { b'b' } else { b'a' };
        std::fs::write(&path, &bytes).unwrap();
        let e = verify_err(&path);
        assert_eq!(e.position, 3, "offset {off}: {e}");
    }
}

#[tokio::test]
async fn verify_edited_hash_reports_its_record() {
    let (_d, path, mut l) = five().await;
    let r: AuditRecord = serde_json::from_str(&l[2]).unwrap();
    let mut bad = r.hash.clone().into_bytes();
    bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
    l[2] = l[2].replace(&r.hash, std::str::from_utf8(&bad).unwrap());
    write_lines(&path, &l);
    let e = verify_err(&path);
    assert_eq!(e.position, 3, "{e}");
}

#[tokio::test]
async fn verify_edited_prev_hash_reports_its_record() {
    let (_d, path, mut l) = five().await;
    let r: AuditRecord = serde_json::from_str(&l[3]).unwrap();
    l[3] = l[3].replace(&r.prev_hash, GENESIS_HASH);
    write_lines(&path, &l);
    assert_eq!(verify_err(&path).position, 4);
}

#[tokio::test]
async fn verify_deleted_record_reports_the_gap() {
    let (_d, path, mut l) = five().await;
    l.remove(2);
    write_lines(&path, &l);
    let e = verify_err(&path);
    assert_eq!(e.position, 3, "{e}");
    assert!(e.reason.contains("removed"), "{e}");
}

#[tokio::test]
async fn verify_deleted_first_record_reports_position_one() {
    let (_d, path, mut l) = five().await;
    l.remove(0);
    write_lines(&path, &l);
    assert_eq!(verify_err(&path).position, 1);
}

#[tokio::test]
async fn verify_swapped_records_report_the_first() {
    let (_d, path, mut l) = five().await;
    l.swap(1, 2);
    write_lines(&path, &l);
    let e = verify_err(&path);
    assert_eq!(e.position, 2, "{e}");
}

#[tokio::test]
async fn verify_duplicated_record_reports_the_copy() {
    let (_d, path, mut l) = five().await;
    let copy = l[2].clone();
    l.insert(3, copy);
    write_lines(&path, &l);
    let e = verify_err(&path);
    assert_eq!(e.position, 4, "{e}");
    assert!(e.reason.contains("duplicated"), "{e}");
}

#[tokio::test]
async fn verify_truncated_tail_reports_the_first_missing_record() {
    let (_d, path, l) = five().await;
    write_lines(&path, &l[..3]);
    let e = verify_err(&path);
    assert_eq!(e.position, 4, "{e}");
    assert!(e.reason.contains("truncated"), "{e}");
    // An empty file too.
    std::fs::write(&path, "").unwrap();
    assert_eq!(verify_err(&path).position, 1);
}

#[tokio::test]
async fn verify_truncated_mid_record_reports_it() {
    let (_d, path, l) = five().await;
    let mut s = l.join("\n") + "\n";
    s.truncate(s.len() - 20);
    std::fs::write(&path, s).unwrap();
    let e = verify_err(&path);
    assert_eq!(e.position, 5, "{e}");
    assert!(e.reason.contains("incomplete"), "{e}");
}

#[tokio::test]
async fn verify_rewritten_tail_differs_from_head() {
    // Replace records 4–5 by a forged, self-consistent continuation: the hash at the head's
    // sequence no longer matches.
    let (dir, path, l) = five().await;
    let forged = dir.path().join("forged.log");
    write_lines(&forged, &l[..3]);
    std::fs::remove_file(head_path(&forged)).ok();
    {
        let log = AuditLog::open(&forged, AuditConfig::default()).unwrap();
        log.record(rec(4)).await.unwrap();
        log.record(rec(5).user_agent("forger")).await.unwrap();
    }
    std::fs::copy(&forged, &path).unwrap();
    let e = verify_err(&path);
    assert_eq!(e.position, 5, "{e}");
}

#[tokio::test]
async fn verify_deleted_log_with_head_reports_position_one() {
    let (_d, path, _l) = five().await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(verify_err(&path).position, 1);
    assert!(matches!(
        AuditLog::open(&path, AuditConfig::default()),
        Err(AuditError::Broken { position: 1, .. })
    ));
}

#[tokio::test]
async fn verify_without_head_passes_but_says_so() {
    let (_d, path, _l) = five().await;
    std::fs::remove_file(head_path(&path)).unwrap();
    let s = verify(&path).unwrap();
    assert_eq!(s.records, 5);
    assert!(!s.head_checked);
}

#[tokio::test]
async fn open_refuses_truncated_log() {
    let (_d, path, l) = five().await;
    write_lines(&path, &l[..3]);
    match AuditLog::open(&path, AuditConfig::default()) {
        Err(AuditError::Broken { position, .. }) => assert_eq!(position, 4),
        other => panic!("expected Broken, got {other:?}"),
    }
}

#[tokio::test]
async fn open_cuts_a_torn_last_record_and_refuses_an_edited_one() {
    let (_d, path, l) = five().await;
    let mut s = l.join("\n") + "\n";
    s.truncate(s.len() - 5);
    std::fs::write(&path, &s).unwrap();
    // A record torn by a killed process (never synced, so audit.head is behind it): cut off,
    // kept as evidence, the chain goes on from record 4.
    std::fs::remove_file(crate::audit::head_path(&path)).unwrap();
    let torn = s[s.rfind('\n').unwrap() + 1..].to_owned();
    let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
    let mut evidence = path.as_os_str().to_owned();
    evidence.push(".torn");
    assert_eq!(std::fs::read_to_string(&evidence).unwrap(), torn + "\n");
    log.record(rec(6)).await.unwrap();
    log.flush().await.unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[..4], l[..4]);
    assert!(lines[4].contains("\"Sequence\":5"), "{}", lines[4]);
    drop(log);
    let mut l2 = l.clone();
    l2[4] = l2[4].replace("req-5", "req-6");
    write_lines(&path, &l2);
    let err = AuditLog::open(&path, AuditConfig::default()).unwrap_err();
    assert!(err.to_string().contains("rotary audit verify"), "{err}");
}

#[tokio::test]
async fn fail_closed_returns_error_when_mirror_cannot_be_written() {
    // /dev/full answers every write with ENOSPC, even for root.
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: Some(Mirror::File("/dev/full".into())),
            fail_closed: true,
        },
    )
    .unwrap();
    let err = log.record(rec(1)).await.unwrap_err();
    assert!(matches!(err, AuditError::Write(_)), "{err}");
    assert_eq!(log.write_errors_total(), 1);
    assert!(log.is_failing());
}

#[tokio::test]
async fn fail_open_counts_mirror_errors_and_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: Some(Mirror::File("/dev/full".into())),
            fail_closed: false,
        },
    )
    .unwrap();
    log.record(rec(1)).await.unwrap();
    log.record(rec(2)).await.unwrap();
    log.flush().await.unwrap();
    assert_eq!(log.write_errors_total(), 2);
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[tokio::test]
async fn fail_closed_returns_error_when_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write_log(&path, 2).await;
    FAIL_WRITES.with(|f| f.set(true));
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: None,
            fail_closed: true,
        },
    );
    FAIL_WRITES.with(|f| f.set(false));
    let log = log.unwrap();
    let err = log.record(rec(3)).await.unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(log.is_failing());
    drop(log);
    // The failed record left no trace: the chain is whole and continues.
    assert_eq!(verify(&path).unwrap().records, 2);
    write_log(&path, 1).await;
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[tokio::test]
async fn fail_open_returns_at_once_and_counts_log_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    FAIL_WRITES.with(|f| f.set(true));
    let log = AuditLog::open(&path, AuditConfig::default());
    FAIL_WRITES.with(|f| f.set(false));
    let log = log.unwrap();
    log.record(rec(1)).await.unwrap();
    let _ = log.flush().await;
    assert_eq!(log.write_errors_total(), 1);
    assert_eq!(log.records_total(), 0);
}

#[tokio::test]
async fn mirror_gets_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mirror = dir.path().join("mirror.jsonl");
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: Some(Mirror::File(mirror.clone())),
            fail_closed: true,
        },
    )
    .unwrap();
    for i in 1..=3 {
        log.record(rec(i)).await.unwrap();
    }
    drop(log);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&mirror).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fail_closed_records_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: None,
            fail_closed: true,
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                log.record(rec(t * 1000 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(log);
    assert_eq!(verify(&path).unwrap().records, 1600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_while_writing_always_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 0..5_000 {
                log.record(rec(i).user_agent("x".repeat((i % 7000) as usize)))
                    .await
                    .unwrap();
                if i % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let p = path.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let mut last = 0;
        for _ in 0..30 {
            let s = verify(&p).unwrap();
            assert!(s.records >= last);
            last = s.records;
        }
        last
    });
    writer.await.unwrap();
    checks.await.unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap().records, 5_000);
}

#[tokio::test]
async fn records_never_contain_a_request_body_canary() {
    // What the request path has: a body with a secret value. It builds the record from the
    // ids it parsed, never from the body; nothing in AuditRecord can take the value.
    const CANARY: &str = "canary-5ecret-VALUE-d0-not-log";
    let body = serde_json::json!({
        "SecretId": "app/db",
        "SecretString": CANARY,
        "ClientRequestToken": "22222222-2222-2222-2222-222222222222",
    });
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mirror = dir.path().join("mirror.jsonl");
    let log = AuditLog::open(
        &path,
        AuditConfig {
            mirror: Some(Mirror::File(mirror.clone())),
            fail_closed: true,
        },
    )
    .unwrap();
    let token = body["ClientRequestToken"].as_str().unwrap();
    let r = AuditRecord::new(
        T0,
        "req-put",
        "secretsmanager:PutSecretValue",
        Outcome::Allowed,
    )
    .principal("arn:aws:iam::000000000000:root")
    .access_key("AKIAROOT")
    .secret("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf")
    .version(token);
    log.record(r).await.unwrap();
    let denied = AuditRecord::new(
        T0,
        "req-d",
        "secretsmanager:PutSecretValue",
        Outcome::Denied,
    )
    .principal("arn:aws:iam::000000000000:user/bob")
    .denied_by(DenialReason {
        kind: DenialKind::ExplicitDeny,
        policy: Some("user/bob/NoWrites".into()),
        statement: Some("DenyPut".into()),
    });
    log.record(denied).await.unwrap();
    drop(log);
    for file in [&path, &mirror, &head_path(&path)] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(CANARY), "canary in {}", file.display());
    }
    let all = query(&path, &AuditFilter::default()).unwrap();
    assert_eq!(all[0].version_id.as_deref(), Some(token));
    assert_eq!(
        all[1].reason.as_ref().unwrap().statement.as_deref(),
        Some("DenyPut")
    );
}

#[tokio::test]
async fn query_filters_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
    log.record(rec(1)).await.unwrap();
    log.record(
        AuditRecord::new(
            T0 + 5000,
            "r2",
            "secretsmanager:DeleteSecret",
            Outcome::Denied,
        )
        .principal("arn:aws:iam::000000000000:user/bob")
        .secret("arn:aws:secretsmanager:us-east-1:000000000000:secret:other-XyZ123"),
    )
    .await
    .unwrap();
    log.record(
        AuditRecord::new(T0 + 9000, "r3", "rotation:setSecret", Outcome::Allowed)
            .principal("arn:aws:iam::000000000000:root")
            .secret("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf")
            .function("arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password"),
    )
    .await
    .unwrap();
    log.record(
        AuditRecord::new(
            T0 + 10_000,
            "r4",
            "secretsmanager:GetSecretValue",
            Outcome::AuthenticationFailed,
        )
        .access_key("AKIAUNKNOWN"),
    )
    .await
    .unwrap();
    drop(log);
    let q = |f: AuditFilter| -> Vec<String> {
        query(&path, &f)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    };
    let all = q(AuditFilter::default());
    assert_eq!(all, ["req-1", "r2", "r3", "r4"]);
    let by = |s: &str| AuditFilter {
        secret: Some(s.into()),
        ..Default::default()
    };
    assert_eq!(q(by("app/db")), ["req-1", "r3"]);
    assert_eq!(q(by("other-XyZ123")), ["r2"]);
    assert_eq!(
        q(by(
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:other-XyZ123"
        )),
        ["r2"]
    );
    let principal = |p: &str| AuditFilter {
        principal: Some(p.into()),
        ..Default::default()
    };
    assert_eq!(q(principal("bob")), ["r2"]);
    assert_eq!(q(principal("root")), ["r3"]);
    assert_eq!(q(principal("AKIAUNKNOWN")), ["r4"]);
    assert_eq!(
        q(AuditFilter {
            action: Some("getsecretvalue".into()),
            ..Default::default()
        }),
        ["req-1", "r4"]
    );
    assert_eq!(
        q(AuditFilter {
            outcome: Some("denied".into()),
            ..Default::default()
        }),
        ["r2"]
    );
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
    };
    assert_eq!(
        q(AuditFilter {
            since: Some(at(T0 + 5000)),
            until: Some(at(T0 + 10_000)),
            ..Default::default()
        }),
        ["r2", "r3"]
    );
    assert_eq!(
        q(AuditFilter {
            limit: Some(2),
            ..Default::default()
        }),
        ["r3", "r4"]
    );
}

#[test]
fn outcome_round_trips_as_one_string() {
    for (o, s) in [
        (Outcome::Allowed, "\"Allowed\""),
        (Outcome::Denied, "\"Denied\""),
        (Outcome::AuthenticationFailed, "\"AuthenticationFailed\""),
        (
            Outcome::Error("ResourceNotFoundException".into()),
            "\"ResourceNotFoundException\"",
        ),
    ] {
        assert_eq!(serde_json::to_string(&o).unwrap(), s);
        assert_eq!(serde_json::from_str::<Outcome>(s).unwrap(), o);
    }
}

/// Write cost. Run: `cargo test -p rotary-core --release audit::tests::bench -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_write_cost() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    // fsync cost of this disk.
    let f = dir.path().join("fsync-probe");
    let mut file = std::fs::File::create(&f).unwrap();
    let t = Instant::now();
    for _ in 0..50 {
        std::io::Write::write_all(&mut file, &[0u8; 512]).unwrap();
        file.sync_data().unwrap();
    }
    println!("fdatasync after a 512 B write: {:?} each", t.elapsed() / 50);
    for fail_closed in [false, true] {
        let path = dir.path().join(format!("bench-{fail_closed}.log"));
        let log = AuditLog::open(
            &path,
            AuditConfig {
                mirror: None,
                fail_closed,
            },
        )
        .unwrap();
        let n = 20_000u64;
        // Sequential: one caller.
        let t = Instant::now();
        for i in 0..n {
            log.record(rec(i)).await.unwrap();
        }
        let seq = t.elapsed();
        log.flush().await.unwrap();
        let seq_flushed = t.elapsed();
        // 16 concurrent callers.
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / 16 {
                    log.record(rec(i)).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        log.flush().await.unwrap();
        let conc = t.elapsed();
        println!(
            "fail_closed={fail_closed}: sequential {:?}/record ({:?} incl. final fsync), \
             16 callers {:?}/record",
            seq / n as u32,
            seq_flushed / n as u32,
            conc / n as u32,
        );
        drop(log);
        assert_eq!(verify(&path).unwrap().records, 2 * n);
        let t = Instant::now();
        verify(&path).unwrap();
        println!("verify: {:?}/record", t.elapsed() / (2 * n) as u32);
    }
}
