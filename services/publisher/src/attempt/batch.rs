//! Group commit for the hot path of a reconnect fan-out: many concurrent handlers each ask for
//! one write (lease this retried post; record this published post) or one read (this account's
//! credential), a single task gathers what is waiting and runs it as one statement (or one short
//! transaction), and each handler gets its own answer back. Nothing is acknowledged before its
//! write committed, so a crash loses no more than the per-post path did; what changes is that 200
//! posts cost one round trip instead of 200.

use std::{collections::HashMap, future::Future, sync::Arc};

use lifeline_kit::{
    events::PostPublished,
    ids::{AccountId, PostId},
    outbox::Outbox,
};
use lifeline_vault::{Credential, Vault, VaultError};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::{model::Post, store::leases};

/// Requests written together at most.
const MAX_BATCH: usize = 256;

/// Where a request's answer goes: its result, or the error its whole batch failed with.
type Answer<Resp> = oneshot::Sender<Result<Resp, Arc<sqlx::Error>>>;

/// Hands requests to one writer task and waits for each one's answer.
pub(crate) struct GroupCommit<Req, Resp> {
    queue: mpsc::Sender<(Req, Answer<Resp>)>,
}

impl<Req, Resp> Clone for GroupCommit<Req, Resp> {
    fn clone(&self) -> Self {
        GroupCommit { queue: self.queue.clone() }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> GroupCommit<Req, Resp> {
    /// Starts the writer: `write` gets every request waiting (up to [`MAX_BATCH`]) and answers
    /// each, in order. The writer ends when every handle is dropped.
    pub(crate) fn spawn<W, Fut>(write: W) -> Self
    where
        W: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, sqlx::Error>> + Send,
    {
        let (queue, mut rx) = mpsc::channel::<(Req, Answer<Resp>)>(MAX_BATCH * 4);
        tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(MAX_BATCH);
            // `recv_many` takes what is already queued: under load the batch fills by itself,
            // and a lone request is written at once instead of waiting for company.
            while rx.recv_many(&mut waiting, MAX_BATCH).await > 0 {
                let (requests, answers): (Vec<Req>, Vec<_>) = waiting.drain(..).unzip();
                match write(requests).await {
                    Ok(results) => {
                        for (answer, result) in answers.into_iter().zip(results) {
                            let _ = answer.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for answer in answers {
                            let _ = answer.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        GroupCommit { queue }
    }

    /// Queues one request and waits until the batch it joined was written.
    pub(crate) async fn call(&self, request: Req) -> Result<Resp, BatchError> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((request, answer)).await.map_err(|_| BatchError::WriterGone)?;
        answered.await.map_err(|_| BatchError::WriterGone)?.map_err(BatchError::Db)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    #[error("database: {0}")]
    Db(Arc<sqlx::Error>),
    #[error("the batch writer stopped")]
    WriterGone,
}

/// One retry request to lease: the post, and whether a dead-lettered post may be taken too (an
/// operator's replay).
pub(crate) struct LeaseRequest {
    pub post: PostId,
    pub allow_dead_lettered: bool,
}

/// Leases every requested post that is still waiting for its retry, in one statement
/// ([`leases::lease_for_retry`]): the post's state, its attempt row, and (for a replay) its dead
/// letter marked replayed. A post retried already (a redelivered request) or in another state
/// answers `None`.
pub(crate) async fn lease_for_retry(
    pool: &PgPool,
    owner: &str,
    lease_secs: f64,
    requests: Vec<LeaseRequest>,
) -> Result<Vec<Option<Post>>, sqlx::Error> {
    let ids: Vec<PostId> = requests.iter().map(|r| r.post).collect();
    let replays: Vec<PostId> =
        requests.iter().filter(|r| r.allow_dead_lettered).map(|r| r.post).collect();
    let leased = leases::lease_for_retry(pool, owner, lease_secs, &ids, &replays).await?;
    metrics::histogram!("lifeline_publish_group_commit_size", "write" => "lease")
        .record(requests.len() as f64);
    // The same post named twice in one batch is leased once: the first request gets it.
    let mut by_id: std::collections::HashMap<PostId, Post> =
        leased.into_iter().map(|p| (p.id, p)).collect();
    Ok(ids.iter().map(|id| by_id.remove(id)).collect())
}

/// One attempt's credential: its account's, `None` when the account has none, or why it could
/// not be read (a credential that cannot be decrypted spoils only its own account's attempts).
pub(crate) type CredentialAnswer = Result<Option<Credential>, String>;

/// Reads the credentials of every requested account in one query (each account once, however
/// many attempts asked for it); nothing is kept after the answer, so a reconnect's new
/// credential is what the next batch reads.
pub(crate) async fn load_credentials(
    vault: &Vault,
    accounts: Vec<AccountId>,
) -> Result<Vec<CredentialAnswer>, sqlx::Error> {
    let mut distinct = accounts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let loaded = match vault.load_many(&distinct).await {
        Ok(loaded) => loaded,
        Err(VaultError::Db(e)) => return Err(e),
        Err(e) => return Ok(accounts.iter().map(|_| Err(e.to_string())).collect()),
    };
    metrics::histogram!("lifeline_publish_group_commit_size", "write" => "credentials")
        .record(accounts.len() as f64);
    Ok(answer_each(&accounts, loaded))
}

/// Each request's answer, in order, from what one query loaded (an account loaded once may be
/// asked for by many requests; one not loaded has no credential).
fn answer_each(
    accounts: &[AccountId],
    loaded: Vec<(AccountId, Result<Credential, VaultError>)>,
) -> Vec<CredentialAnswer> {
    let by_account: HashMap<AccountId, Result<Credential, VaultError>> =
        loaded.into_iter().collect();
    accounts
        .iter()
        .map(|a| match by_account.get(a) {
            None => Ok(None),
            Some(Ok(c)) => Ok(Some(c.clone())),
            Some(Err(e)) => Err(e.to_string()),
        })
        .collect()
}

/// A published post to record, with its event.
pub(crate) struct PublishedRecord {
    pub post: PostId,
    pub attempt: i32,
    pub platform_post_id: String,
    pub detail: String,
    pub credential_version: i64,
    pub event: PostPublished,
    /// What the answer told of the account's posting budget, for a call reserved against it.
    pub heard: Option<(lifeline_kit::ids::AccountId, crate::pacing::Heard)>,
    /// The handler's span: the event's outbox row carries its trace, as on the per-post path.
    pub span: tracing::Span,
}

/// Records published posts in one transaction: each post only while this replica still holds
/// its lease for that attempt (the guard the per-post path takes with `FOR UPDATE`), its attempt
/// row ([`leases::mark_published`]), and the `PostPublished` events of those posts in one outbox
/// statement. Answers, per
/// record, whether it was written (false: the lease was lost and the new holder decides).
pub(crate) async fn record_published(
    pool: &PgPool,
    outbox: &Outbox,
    owner: &str,
    records: Vec<PublishedRecord>,
) -> Result<Vec<bool>, sqlx::Error> {
    let ids: Vec<PostId> = records.iter().map(|r| r.post).collect();
    let attempts: Vec<i32> = records.iter().map(|r| r.attempt).collect();
    let platform_ids: Vec<&str> = records.iter().map(|r| r.platform_post_id.as_str()).collect();
    let details: Vec<&str> = records.iter().map(|r| r.detail.as_str()).collect();
    let versions: Vec<i64> = records.iter().map(|r| r.credential_version).collect();
    let mut tx = pool.begin().await?;
    let columns = leases::PublishedColumns {
        ids: &ids,
        attempts: &attempts,
        platform_post_ids: &platform_ids,
        details: &details,
        credential_versions: &versions,
    };
    let written = leases::mark_published(&mut tx, owner, &columns).await?;
    let written: std::collections::HashSet<PostId> = written.into_iter().collect();
    // Budgets after the posts: every writer locks post rows before budget rows.
    let heard: Vec<_> = records.iter().filter_map(|r| r.heard).collect();
    crate::pacing::store::observe(&mut tx, &heard).await?;
    let mut events = outbox.stage();
    for r in records.iter().filter(|r| written.contains(&r.post)) {
        r.span.in_scope(|| events.add(&r.event))?;
    }
    events.insert(&mut tx).await?;
    tx.commit().await?;
    outbox.wake();
    metrics::histogram!("lifeline_publish_group_commit_size", "write" => "published")
        .record(records.len() as f64);
    Ok(records.iter().map(|r| written.contains(&r.post)).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn concurrent_requests_share_writes_and_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubled = GroupCommit::spawn(move |requests: Vec<u32>| {
            seen.lock().unwrap().push(requests.len());
            async move {
                // A write takes a while, so that requests queue behind it.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(requests.iter().map(|r| r * 2).collect::<Vec<u32>>())
            }
        });
        let calls = (0..100u32).map(|i| {
            let g = doubled.clone();
            tokio::spawn(async move { (i, g.call(i).await.unwrap()) })
        });
        for call in calls.collect::<Vec<_>>() {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, i * 2);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.len() < 10, "100 concurrent requests took {} writes", sizes.len());
    }

    fn credential(account: AccountId) -> Credential {
        Credential {
            account_id: account,
            workspace_id: lifeline_kit::ids::WorkspaceId::new(),
            platform: lifeline_kit::Platform::X,
            platform_user_id: format!("user-{account}"),
            tokens: lifeline_vault::Tokens {
                access_token: secrecy::SecretString::from("t".to_owned()),
                refresh_token: None,
                access_expires_at: None,
                refresh_expires_at: None,
                scopes: Vec::new(),
            },
            first_granted_at: chrono::Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn each_request_gets_its_account_s_credential_none_or_its_own_error() {
        let (a, b, c, missing) =
            (AccountId::new(), AccountId::new(), AccountId::new(), AccountId::new());
        let loaded = vec![
            (a, Ok(credential(a))),
            (b, Err(VaultError::Undecryptable(b))),
            (c, Ok(credential(c))),
        ];
        let answers = answer_each(&[a, missing, b, a, c], loaded);
        let summary: Vec<String> = answers
            .iter()
            .map(|r| match r {
                Ok(Some(cred)) => format!("ok {}", cred.account_id),
                Ok(None) => "none".to_owned(),
                Err(e) => format!("err {e}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                format!("ok {a}"),
                "none".to_owned(),
                format!("err {}", VaultError::Undecryptable(b)),
                format!("ok {a}"),
                format!("ok {c}"),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_request_of_its_batch() {
        let failing = GroupCommit::spawn(|_requests: Vec<u32>| async {
            Err::<Vec<u32>, _>(sqlx::Error::PoolTimedOut)
        });
        match failing.call(1).await {
            Err(BatchError::Db(e)) => assert!(matches!(*e, sqlx::Error::PoolTimedOut)),
            other => panic!("expected the write's error, got {other:?}"),
        }
    }
}
