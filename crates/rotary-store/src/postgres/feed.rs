//! The change feed: one task per store holds a `LISTEN rotary_changes` connection and
//! rebroadcasts every notice as a [`Change`].
//!
//! Notices are not queued for a listener that is away: when the listening connection drops
//! (the server restarted, the network broke) the notices sent until it is back are lost, so
//! after every reconnection the feed sends [`Change::Resync`] and subscribers drop whatever
//! they cached. A subscriber that falls more than the channel's capacity behind gets
//! `RecvError::Lagged` from tokio, which means the same.
//!
//! Payloads: `s:<uid>:<revision>` (a secret written), `s:<uid>:` (deleted), `m:<key>` (a
//! server-wide value) and `r:` (resync: a key too long for a notice's 8000 bytes).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{broadcast, oneshot};

use super::{PgStoreOptions, CHANNEL};
use crate::{Change, Result};

/// PostgreSQL refuses notice payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The notice text of a change.
pub(super) fn payload(change: &Change) -> String {
    let p = match change {
        Change::Secret { uid, revision } => match revision {
            Some(r) => format!("s:{uid}:{r}"),
            None => format!("s:{uid}:"),
        },
        Change::Meta { key } => format!("m:{key}"),
        Change::Resync => "r:".to_owned(),
    };
    // Cutting a key would invalidate the wrong entry: ask for a full resync instead.
    if p.len() > MAX_PAYLOAD {
        "r:".to_owned()
    } else {
        p
    }
}

/// The change a notice announces; `None` for a payload this binary does not know.
pub(super) fn parse(payload: &str) -> Option<Change> {
    let (kind, rest) = payload.split_once(':')?;
    match kind {
        "s" => {
            // Uids never contain ':', but split at the last one all the same.
            let (uid, rev) = rest.rsplit_once(':')?;
            let revision = if rev.is_empty() {
                None
            } else {
                Some(rev.parse().ok()?)
            };
            Some(Change::Secret {
                uid: uid.to_owned(),
                revision,
            })
        }
        "m" => Some(Change::Meta {
            key: rest.to_owned(),
        }),
        "r" => Some(Change::Resync),
        _ => None,
    }
}

/// Subscribes before returning (so that no change committed after `open` is missed) and
/// spawns the task that feeds `tx` until `stop` fires or is dropped.
pub(super) async fn start(
    connect: PgConnectOptions,
    options: &PgStoreOptions,
    tx: broadcast::Sender<Change>,
    stop: oneshot::Receiver<()>,
) -> Result<()> {
    // A pool of one of its own, so that the held connection never starves queries; the
    // pool only serves reconnections.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.connect_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(connect);
    let listener = subscribe(&pool).await?;
    tokio::spawn(run(pool, listener, tx, stop));
    Ok(())
}

async fn subscribe(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(
    pool: PgPool,
    mut listener: PgListener,
    tx: broadcast::Sender<Change>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let next = tokio::select! {
            _ = &mut stop => break,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(notice)) => {
                if let Some(change) = parse(notice.payload()) {
                    // No subscriber is not an error: nobody caches anything yet.
                    let _ = tx.send(change);
                }
            }
            // The connection dropped and sqlx has connected and subscribed again: whatever
            // was sent in between is lost.
            Ok(None) => {
                tracing::info!("Change feed reconnected; caches resync");
                let _ = tx.send(Change::Resync);
            }
            // The connection is broken and could not be made again yet: start over with a
            // fresh listener, waiting longer each time, until the database answers.
            Err(e) => {
                tracing::warn!(error = %e, "Change feed lost its connection; reconnecting");
                drop(listener);
                let mut backoff = Duration::from_millis(50);
                listener = loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    match subscribe(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::debug!(error = %e, "Change feed cannot reconnect yet");
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                };
                tracing::info!("Change feed reconnected; caches resync");
                let _ = tx.send(Change::Resync);
            }
        }
    }
    // The listener's connection first: closing the pool waits for every connection.
    drop(listener);
    pool.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [
            Change::Secret {
                uid: "u1".into(),
                revision: Some(7),
            },
            Change::Secret {
                uid: "u1".into(),
                revision: None,
            },
            Change::Meta {
                key: "kms:alias/a:b".into(),
            },
            Change::Resync,
        ] {
            assert_eq!(parse(&payload(&change)), Some(change));
        }
        let long = Change::Meta {
            key: "k".repeat(9000),
        };
        assert_eq!(payload(&long), "r:");
        assert_eq!(parse("x:1"), None);
        assert_eq!(parse("s:u1:notanumber"), None);
    }
}
