//! Tests of `events.rs`.
use super::*;
use chrono::{TimeZone, Utc};
use lifeline_events::{timestamp, Subject};
use uuid::Uuid;

const ACCOUNT: &str = "0190a5c8-0000-7000-8000-0000000000aa";

fn subjects() -> Subjects {
    Subjects::new("lifeline")
}

fn envelope() -> Envelope {
    let mut e = Envelope::build(
        Subject {
            workspace_id: Uuid::nil(),
            account_id: Uuid::parse_str(ACCOUNT).expect("uuid"),
            platform: Platform::LinkedIn,
        },
        None,
    );
    e.occurred_at = Some(timestamp(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()));
    e.correlation_id = "corr-1".into();
    e
}

fn at(h: u32) -> Option<prost_types::Timestamp> {
    Some(timestamp(Utc.with_ymd_and_hms(2025, 3, 2, h, 0, 0).unwrap()))
}

/// Encodes like a producer, decodes like `tail`, and returns the result.
fn round_trip<E: Event>(event: &E) -> Decoded {
    let subject = format!("lifeline.events.v1.{}.linkedin.{ACCOUNT}", E::NAME);
    decode_message(&subjects(), &subject, &event.encode_to_vec()).expect("decodes")
}

#[test]
fn filters_use_star_in_the_middle_and_gt_only_at_the_end() {
    let s = Subjects::new("t1");
    let account: AccountId = ACCOUNT.parse().expect("uuid");
    assert_eq!(filter_subject(&s, None, None, None), "t1.events.v1.>");
    assert_eq!(filter_subject(&s, Some("auth_failed"), None, None), "t1.events.v1.auth_failed.>");
    assert_eq!(
        filter_subject(&s, Some("auth_failed"), Some(Platform::X), None),
        "t1.events.v1.auth_failed.x.>"
    );
    assert_eq!(filter_subject(&s, None, Some(Platform::X), None), "t1.events.v1.*.x.>");
    assert_eq!(
        filter_subject(&s, None, None, Some(account)),
        format!("t1.events.v1.*.*.{ACCOUNT}")
    );
    assert_eq!(
        filter_subject(&s, Some("post_failed"), Some(Platform::TikTok), Some(account)),
        format!("t1.events.v1.post_failed.tiktok.{ACCOUNT}")
    );
    assert_eq!(
        filter_subject(&s, Some("post_failed"), None, Some(account)),
        format!("t1.events.v1.post_failed.*.{ACCOUNT}")
    );
}

#[test]
fn every_contract_event_has_a_decoder() {
    for name in lifeline_events::EVENT_NAMES {
        let event = AnyEvent::decode(name, &[]).expect("empty bytes are a default message");
        assert_eq!(event.name(), *name);
    }
}

#[test]
fn token_expiring_round_trips() {
    let d = round_trip(&TokenExpiring {
        envelope: Some(envelope()),
        expires_at: at(8),
        credential: ExpiringCredential::RefreshToken as i32,
        horizon_seconds: 604_800,
        reason: "LinkedIn refresh tokens end 365 days after the first grant".into(),
    });
    assert_eq!(
        d.to_line(),
        format!(
            "2025-03-01T12:00:00.000Z token_expiring linkedin {ACCOUNT} \
             expires_at=2025-03-02T08:00:00.000Z credential=refresh_token \
             horizon_seconds=604800 \
             reason=\"LinkedIn refresh tokens end 365 days after the first grant\" \
             correlation=corr-1"
        )
    );
    let j = d.to_json();
    assert_eq!(j["event"], "token_expiring");
    assert_eq!(j["subject"], format!("lifeline.events.v1.token_expiring.linkedin.{ACCOUNT}"));
    assert_eq!(j["envelope"]["platform"], "linkedin");
    assert_eq!(j["envelope"]["occurred_at"], "2025-03-01T12:00:00.000Z");
    assert_eq!(j["payload"]["credential"], "refresh_token");
    assert_eq!(j["payload"]["horizon_seconds"], 604_800);
}

#[test]
fn auth_failed_round_trips() {
    let d = round_trip(&AuthFailed {
        envelope: Some(envelope()),
        cause: AuthFailureCause::PasswordChanged as i32,
        source: AuthFailureSource::Publish as i32,
        detail: "401 serviceErrorCode=65601".into(),
        credential_version: 3,
        post_id: "post-9".into(),
    });
    let line = d.to_line();
    assert!(
        line.ends_with(
            "cause=password_changed source=publish detail=\"401 serviceErrorCode=65601\" \
             credential_version=3 post_id=post-9 correlation=corr-1"
        ),
        "{line}"
    );
    let j = d.to_json();
    assert_eq!(j["payload"]["cause"], "password_changed");
    assert_eq!(j["payload"]["source"], "publish");
    assert_eq!(j["payload"]["post_id"], "post-9");
}

#[test]
fn account_events_round_trip() {
    let d = round_trip(&AccountConnected {
        envelope: Some(envelope()),
        platform_user_id: "urn:li:person:1".into(),
        display_name: "Ada L".into(),
        scopes: vec!["w_member_social".into(), "openid".into()],
        credential_version: 1,
    });
    assert!(
        d.to_line().ends_with(
            "platform_user_id=urn:li:person:1 display_name=\"Ada L\" \
             scopes=w_member_social,openid credential_version=1 correlation=corr-1"
        ),
        "{}",
        d.to_line()
    );
    assert_eq!(d.to_json()["payload"]["scopes"], json!(["w_member_social", "openid"]));

    let d = round_trip(&AccountReconnected {
        envelope: Some(envelope()),
        platform_user_id: "u1".into(),
        scopes: vec![],
        credential_version: 2,
        reason: ReconnectReason::RecoveredByRefresh as i32,
    });
    assert!(d.to_line().contains("credential_version=2 reason=recovered_by_refresh"));
    assert_eq!(d.to_json()["payload"]["reason"], "recovered_by_refresh");

    let d = round_trip(&AccountDisconnected { envelope: Some(envelope()), reason: "user".into() });
    assert!(d.to_line().contains("account_disconnected linkedin"));
    assert_eq!(d.to_json()["payload"], json!({"reason": "user"}));
}

#[test]
fn token_refreshed_round_trips_with_an_unset_time() {
    let d = round_trip(&TokenRefreshed {
        envelope: Some(envelope()),
        access_expires_at: at(14),
        refresh_expires_at: None,
        credential_version: 7,
    });
    let line = d.to_line();
    assert!(line.contains("access_expires_at=2025-03-02T14:00:00.000Z credential_version=7"));
    assert!(!line.contains("refresh_expires_at"), "unset fields are left out: {line}");
    assert_eq!(d.to_json()["payload"]["refresh_expires_at"], Value::Null);
}

#[test]
fn post_events_round_trip() {
    let d = round_trip(&PostRetryRequested {
        envelope: Some(envelope()),
        post_id: "p1".into(),
        reason: RetryReason::OperatorReplay as i32,
    });
    assert!(d.to_line().contains("post_retry_requested linkedin"));
    assert!(d.to_line().contains("post_id=p1 reason=operator_replay"));

    let d = round_trip(&PostPublished {
        envelope: Some(envelope()),
        post_id: "p1".into(),
        platform_post_id: "urn:li:share:5".into(),
        attempt: 2,
    });
    assert!(d.to_line().contains("post_id=p1 platform_post_id=urn:li:share:5 attempt=2"));
    assert_eq!(d.to_json()["payload"]["attempt"], 2);

    let d = round_trip(&PostFailed {
        envelope: Some(envelope()),
        post_id: "p1".into(),
        kind: PostFailureKind::RateLimited as i32,
        detail: "429".into(),
        attempt: 1,
        will_retry: true,
        next_attempt_at: at(13),
    });
    assert!(d.to_line().contains(
        "kind=rate_limited detail=429 attempt=1 will_retry=true \
         next_attempt_at=2025-03-02T13:00:00.000Z"
    ));
    assert_eq!(d.to_json()["payload"]["will_retry"], true);

    let d = round_trip(&PostDeadLettered {
        envelope: Some(envelope()),
        post_id: "p1".into(),
        kind: PostFailureKind::Rejected as i32,
        reason: "duplicate content".into(),
        attempts: 1,
    });
    assert!(d.to_line().contains("kind=rejected reason=\"duplicate content\" attempts=1"));
    assert_eq!(d.to_json()["payload"]["kind"], "rejected");
}

#[test]
fn unknown_enum_values_and_a_missing_envelope_still_print() {
    let d = round_trip(&AuthFailed { cause: 42, ..Default::default() });
    assert_eq!(d.to_json()["payload"]["cause"], 42);
    assert_eq!(d.to_json()["envelope"], Value::Null);
    let line = d.to_line();
    assert!(
        line.starts_with(&format!("- auth_failed linkedin {ACCOUNT} cause=42 source=unspecified")),
        "falls back to the subject's tokens: {line}"
    );
}

#[test]
fn hostile_text_cannot_break_the_line() {
    let d = round_trip(&AuthFailed { detail: "bad\nline \u{1b}[31m".into(), ..Default::default() });
    let line = d.to_line();
    assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let s = subjects();
    let subject = format!("lifeline.events.v1.auth_failed.x.{ACCOUNT}");
    for bytes in [&[0xff_u8, 0xff, 0xff][..], &[0x0a, 0x05, 0x01], &[0x08]] {
        let err = decode_message(&s, &subject, bytes).expect_err("not protobuf");
        assert!(matches!(err, DecodeError::Payload { event: "auth_failed", .. }), "{err}");
    }
    assert!(matches!(
        decode_message(&s, "lifeline.events.v1.token_exploded.x.a", &[]),
        Err(DecodeError::UnknownEvent(name)) if name == "token_exploded"
    ));
    assert!(matches!(
        decode_message(&s, "other.events.v1.auth_failed.x.a", &[]),
        Err(DecodeError::Subject)
    ));
    assert!(matches!(
        decode_message(&s, "lifeline.events.v1.auth_failed", &[]),
        Err(DecodeError::Subject)
    ));
}

#[test]
fn account_flapping_round_trips() {
    let d = round_trip(&AccountFlapping {
        envelope: Some(envelope()),
        incidents_in_window: 3,
        threshold: 3,
        window_seconds: 2_592_000,
        first_incident_at: at(9),
        cause: AuthFailureCause::Revoked as i32,
        incident_id: "0190a5c8-0000-7000-8000-0000000000bb".into(),
    });
    assert!(
        d.to_line().ends_with(
            "incidents_in_window=3 threshold=3 window_seconds=2592000 \
             first_incident_at=2025-03-02T09:00:00.000Z cause=revoked \
             incident_id=0190a5c8-0000-7000-8000-0000000000bb correlation=corr-1"
        ),
        "{}",
        d.to_line()
    );
    assert_eq!(d.to_json()["payload"]["cause"], "revoked");
}
