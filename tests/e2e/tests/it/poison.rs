//! A message nobody can decode is dead-lettered with its reason, and the consumer carries on.

use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use lifeline_e2e::{eventually, System};
use lifeline_events::{
    AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Platform, Subject,
};
use lifeline_kit::ids::WorkspaceId;
use prost::Message as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_messages_go_to_the_dlq_and_consumers_carry_on() -> anyhow::Result<()> {
    let system = System::start().await?;
    let js = async_nats::jetstream::new(system.nats.clone());
    let account = uuid::Uuid::now_v7();
    let subject = format!("{}.events.v1.auth_failed.x.{account}", system.subject_root);

    // Garbage bytes, then an event whose envelope is missing.
    js.publish(subject.clone(), vec![0xff, 0x00, 0x13, 0x37].into()).await?.await?;
    js.publish(subject.clone(), AuthFailed::default().encode_to_vec().into()).await?.await?;

    // Then a valid failure: it must still be processed (a notification appears).
    let ws = WorkspaceId::new();
    let valid = AuthFailed {
        envelope: Some(Envelope::build(
            Subject { workspace_id: ws.0, account_id: account, platform: Platform::X },
            None,
        )),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Probe as i32,
        detail: "probe refused".into(),
        credential_version: 1,
        post_id: String::new(),
    };
    js.publish(subject.clone(), valid.encode_to_vec().into()).await?.await?;
    eventually(Duration::from_secs(15), || async {
        let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
        if n["notifications"].as_array().map(Vec::len) == Some(1) {
            Ok(())
        } else {
            bail!("{n}")
        }
    })
    .await?;

    // Each consumer of auth_failed (gateway and notifier) dead-lettered both bad messages.
    let stream = js.get_stream(format!("{}_DLQ", system.stream_prefix)).await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config { ..Default::default() })
        .await?;
    let dead = eventually(Duration::from_secs(15), || async {
        let mut batch =
            consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await?;
        let mut seen = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
            let headers = m.headers.clone().unwrap_or_default();
            let header =
                |k: &str| headers.get(k).map(|v| v.as_str().to_owned()).unwrap_or_default();
            seen.push((
                header("Lifeline-Dlq-Consumer"),
                header("Lifeline-Dlq-Reason"),
                header("Lifeline-Dlq-Original-Subject"),
            ));
        }
        if seen.len() >= 4 {
            Ok(seen)
        } else {
            bail!("{seen:?}")
        }
    })
    .await?;
    for consumer in ["auth-gateway-auth_failed", "notifier-auth_failed"] {
        let mine: Vec<_> = dead.iter().filter(|(c, _, _)| c == consumer).collect();
        assert_eq!(mine.len(), 2, "{consumer}: {dead:?}");
        assert!(mine.iter().any(|(_, r, _)| r.contains("undecodable")), "{mine:?}");
        assert!(mine.iter().any(|(_, r, _)| r.contains("envelope")), "{mine:?}");
        assert!(mine.iter().all(|(_, _, s)| s == &subject));
    }
    system.stop().await
}
