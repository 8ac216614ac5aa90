//! Tests of `dlq`: argument parsing, header handling, the replay target, filters.
use super::*;
use crate::cli::{Cli, Command};
use chrono::TimeZone;
use clap::{error::ErrorKind, Parser};
use lifeline_events::Platform;
use lifeline_events::{AuthFailed, AuthFailureCause, AuthFailureSource, Envelope, Subject};
use lifeline_kit::bus::headers;
use prost::Message;

const ACCOUNT: &str = "0190a5c8-0000-7000-8000-0000000000aa";

fn parse(args: &[&str]) -> Result<DlqCommand, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("lifelinectl").chain(args.iter().copied()))?;
    match cli.command {
        Command::Dlq(cmd) => Ok(cmd),
        other => panic!("parsed as {other:?}"),
    }
}

fn target(args: &[&str]) -> DlqTargetArgs {
    match parse(args).expect("parses") {
        DlqCommand::Replay(a) | DlqCommand::Purge(a) => a,
        other => panic!("not a target command: {other:?}"),
    }
}

fn subjects() -> Subjects {
    Subjects::new("lifeline")
}

fn original_subject() -> String {
    format!("lifeline.events.v1.auth_failed.x.{ACCOUNT}")
}

fn valid_payload() -> Vec<u8> {
    AuthFailed {
        envelope: Some(Envelope::build(
            Subject {
                workspace_id: uuid::Uuid::nil(),
                account_id: uuid::Uuid::parse_str(ACCOUNT).expect("uuid"),
                platform: Platform::X,
            },
            None,
        )),
        cause: AuthFailureCause::Revoked as i32,
        source: AuthFailureSource::Probe as i32,
        detail: "probe refused".into(),
        credential_version: 3,
        post_id: String::new(),
    }
    .encode_to_vec()
}

/// A dead letter as `lifeline_kit::bus::Bus::dead_letter` writes it.
fn dead(seq: u64, consumer: &str, reason: &str, payload: Vec<u8>) -> DeadLetter {
    DeadLetter {
        seq,
        subject: format!("lifeline.dlq.{consumer}"),
        stored_at: Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap(),
        headers: vec![
            (
                "traceparent".into(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
            ("X-Team".into(), "growth".into()),
            (headers::MSG_ID.into(), format!("dlq-{consumer}-42")),
            (headers::DLQ_REASON.into(), reason.into()),
            (headers::DLQ_ORIGINAL_SUBJECT.into(), original_subject()),
            (headers::DLQ_CONSUMER.into(), consumer.into()),
            (headers::DLQ_STREAM_SEQUENCE.into(), "42".into()),
        ],
        payload,
    }
}

#[test]
fn list_takes_filters_and_rejects_bad_ones() {
    let DlqCommand::List(args) = parse(&["dlq", "list"]).expect("no filters") else {
        panic!("not list")
    };
    assert_eq!(args.filter.limit, None);
    assert!(!args.json);
    let DlqCommand::List(args) = parse(&[
        "dlq",
        "list",
        "--consumer",
        "notifier-auth_failed",
        "--event",
        "auth_failed",
        "--since",
        "2h",
        "--limit",
        "5",
        "--json",
    ])
    .expect("all filters") else {
        panic!("not list")
    };
    assert_eq!(args.filter.consumer.as_deref(), Some("notifier-auth_failed"));
    assert_eq!(args.filter.event.as_deref(), Some("auth_failed"));
    assert_eq!(args.filter.since, Some(Since::Ago(Duration::from_secs(7_200))));
    assert_eq!(args.filter.limit, Some(5));

    for bad in [
        &["dlq", "list", "--since", "yesterday"][..],
        &["dlq", "list", "--since", "0s"],
        &["dlq", "list", "--since", "99999999999999999999d"],
        &["dlq", "list", "--consumer", "notifier.auth_failed"],
        &["dlq", "list", "--consumer", "notifier-*"],
        &["dlq", "list", "--event", "auth_fail"],
        &["dlq", "list", "--limit", "0"],
    ] {
        let err = parse(bad).expect_err("bad filter");
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}: {err}");
    }
    let err = parse(&["dlq", "list", "--since", "yesterday"]).expect_err("bad").to_string();
    assert!(err.contains("--since") && err.contains("RFC 3339") && err.contains("2h"), "{err}");
}

#[test]
fn since_is_a_time_or_a_duration_back_from_now() {
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    assert_eq!(parse_since("2026-12-01T00:00:00Z"), Ok(Since::At(t)));
    assert_eq!(parse_since("2026-12-01T01:00:00+01:00"), Ok(Since::At(t)));
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    assert_eq!(
        parse_since("36h").expect("duration").resolve(now),
        Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap()
    );
    assert_eq!(parse_since("7d").expect("days").resolve(now), now - chrono::Duration::days(7));
    assert!(parse_since("").is_err());
    assert!(parse_since("-2h").is_err());
}

#[test]
fn replay_and_purge_take_seqs_or_all_with_filters() {
    for verb in ["replay", "purge"] {
        let err = parse(&["dlq", verb]).expect_err("no target");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{verb}");
        assert!(parse(&["dlq", verb, "3", "--all"]).is_err(), "{verb}: seqs and --all");
        assert!(parse(&["dlq", verb, "3", "--event", "auth_failed"]).is_err(), "{verb}: filter");
        assert!(parse(&["dlq", verb, "--since", "2h"]).is_err(), "{verb}: filter without --all");
        assert!(parse(&["dlq", verb, "0"]).is_err(), "{verb}: seq 0");
        assert!(parse(&["dlq", verb, "abc"]).is_err(), "{verb}: not a seq");

        let a = target(&["dlq", verb, "7", "3", "7"]);
        assert_eq!(unique_sorted(&a.seqs), vec![3, 7]);
        assert!(!a.all && !a.dry_run && !a.yes);
        let a = target(&[
            "dlq",
            verb,
            "--all",
            "--consumer",
            "publisher-account_reconnected",
            "--since",
            "2026-12-01T00:00:00Z",
            "--limit",
            "20",
            "--dry-run",
            "--yes",
        ]);
        assert!(a.all && a.dry_run && a.yes && a.seqs.is_empty());
        assert_eq!(a.filter.limit, Some(20));
    }
    let DlqCommand::Show(s) = parse(&["dlq", "show", "12", "--json"]).expect("show") else {
        panic!("not show")
    };
    assert_eq!((s.seq, s.json), (12, true));
    assert!(parse(&["dlq", "show"]).is_err());
}

#[test]
fn more_than_ten_need_yes_unless_it_is_a_dry_run() {
    let seqs: Vec<String> = (1..=11).map(|n| n.to_string()).collect();
    let mut argv = vec!["dlq", "replay"];
    argv.extend(seqs.iter().map(String::as_str));
    let args = target(&argv);
    assert!(confirm(10, &args, "replay").is_ok());
    let err = confirm(11, &args, "replay").expect_err("needs --yes");
    let msg = err.to_string();
    assert!(msg.contains("11") && msg.contains("--yes"), "{msg}");
    assert!(!msg.contains("--consumer"), "no filter hint for explicit seqs: {msg}");
    assert_eq!(err.exit_code(), 2);

    let all = target(&["dlq", "purge", "--all"]);
    let msg = confirm(25, &all, "purge").expect_err("needs --yes").to_string();
    assert!(msg.contains("purge all 25") && msg.contains("--since"), "{msg}");
    assert!(confirm(25, &target(&["dlq", "purge", "--all", "--yes"]), "purge").is_ok());
    assert!(confirm(25, &target(&["dlq", "purge", "--all", "--dry-run"]), "purge").is_ok());
}

#[test]
fn headers_come_out_original_first_then_the_dlq_ones_in_documented_order() {
    let mut map = HeaderMap::new();
    map.insert(headers::DLQ_STREAM_SEQUENCE, "42");
    map.insert(headers::DLQ_CONSUMER, "notifier-auth_failed");
    map.insert("traceparent", "00-abc-def-01");
    map.insert(headers::DLQ_REASON, "gave up after 10 deliveries");
    map.insert(headers::DLQ_ORIGINAL_SUBJECT, original_subject().as_str());
    map.insert(headers::MSG_ID, "dlq-notifier-auth_failed-42");
    map.append("X-Team", "a");
    map.append("X-Team", "b");
    let names: Vec<String> =
        header_pairs(Some(&map)).into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    assert_eq!(
        names,
        vec![
            "Nats-Msg-Id=dlq-notifier-auth_failed-42".to_owned(),
            "traceparent=00-abc-def-01".into(),
            "X-Team=a".into(),
            "X-Team=b".into(),
            "Lifeline-Dlq-Reason=gave up after 10 deliveries".into(),
            format!("Lifeline-Dlq-Original-Subject={}", original_subject()),
            "Lifeline-Dlq-Consumer=notifier-auth_failed".into(),
            "Lifeline-Dlq-Stream-Sequence=42".into(),
        ]
    );
    assert!(header_pairs(None).is_empty());
}

#[test]
fn a_dead_letter_reads_its_headers() {
    let d = dead(7, "notifier-auth_failed", "gave up after 10 deliveries", valid_payload());
    assert_eq!(d.consumer(), "notifier-auth_failed");
    assert_eq!(d.original_subject(), Some(original_subject().as_str()));
    assert_eq!(d.original_sequence(), Some(42));
    assert_eq!(d.deliveries(), Some(10));
    assert_eq!(d.event_name(&subjects()), Some("auth_failed"));
    assert_eq!(d.header("lifeline-dlq-reason"), Some("gave up after 10 deliveries"));

    let poison = dead(8, "auth-gateway-auth_failed", "undecodable auth_failed: x", vec![]);
    assert_eq!(poison.deliveries(), None);
    let mut bare = poison.clone();
    bare.headers.clear();
    assert_eq!(bare.consumer(), "auth-gateway-auth_failed", "from the DLQ subject");
    assert_eq!((bare.original_subject(), bare.original_sequence()), (None, None));

    assert_eq!(deliveries_in("gave up after 3 deliveries"), Some(3));
    assert_eq!(deliveries_in("invalid post_id \"gave up after\""), None);
    assert_eq!(deliveries_in(""), None);
}

#[test]
fn replay_keeps_the_original_headers_with_a_new_id_and_where_it_came_from() {
    let payload = valid_payload();
    let d = dead(7, "notifier-auth_failed", "gave up after 10 deliveries", payload.clone());
    let mut with_controls = d.clone();
    with_controls.headers.push(("Nats-Expected-Last-Sequence".into(), "3".into()));
    with_controls.headers.push((REPLAYED_FROM.into(), "2".into()));
    let h = with_controls.replay_headers();
    let get = |name: &str| -> Vec<&str> {
        h.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    assert_eq!(get("traceparent"), vec!["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]);
    assert_eq!(get("X-Team"), vec!["growth"]);
    assert_eq!(get(REPLAYED_FROM), vec!["7"], "the DLQ sequence, replacing an older one");
    assert_eq!(get(headers::MSG_ID), vec![d.replay_msg_id().as_str()]);
    assert!(get("Nats-Expected-Last-Sequence").is_empty());
    assert!(h.iter().all(|(n, _)| !n.starts_with("Lifeline-Dlq-")), "{h:?}");
    assert_ne!(get(headers::MSG_ID), vec!["dlq-notifier-auth_failed-42"]);

    // The copies two consumers made of one message publish once; another message does not.
    let copy = dead(9, "auth-gateway-auth_failed", "undecodable", payload);
    assert_eq!(d.replay_msg_id(), copy.replay_msg_id());
    assert!(d.replay_msg_id().starts_with("replay-42-"), "{}", d.replay_msg_id());
    let other = dead(10, "notifier-auth_failed", "gave up after 10 deliveries", vec![1, 2]);
    assert_ne!(d.replay_msg_id(), other.replay_msg_id());
    let mut unknown_seq = d.clone();
    unknown_seq.headers.retain(|(n, _)| n != headers::DLQ_STREAM_SEQUENCE);
    assert!(unknown_seq.replay_msg_id().starts_with("replay-dlq7-"));
}

#[test]
fn replay_goes_only_to_an_events_subject_under_the_root() {
    let s = subjects();
    let d = dead(7, "notifier-auth_failed", "r", valid_payload());
    assert_eq!(d.replay_subject(&s), Ok(original_subject().as_str()));

    let with_subject = |subject: Option<&str>| {
        let mut x = d.clone();
        x.headers.retain(|(n, _)| n != headers::DLQ_ORIGINAL_SUBJECT);
        if let Some(subject) = subject {
            x.headers.push((headers::DLQ_ORIGINAL_SUBJECT.into(), subject.into()));
        }
        x.replay_subject(&s).expect_err("refused")
    };
    assert!(with_subject(None).contains("Lifeline-Dlq-Original-Subject"));
    assert!(with_subject(Some("")).contains("Lifeline-Dlq-Original-Subject"));
    for bad in [
        format!("other.events.v1.auth_failed.x.{ACCOUNT}"),
        "lifeline.dlq.notifier-auth_failed".to_owned(),
        format!("lifeline.events.v2.auth_failed.x.{ACCOUNT}"),
        format!("lifeline.events.v1.auth_failed.myspace.{ACCOUNT}"),
        "lifeline.events.v1.auth_failed.x.not-a-uuid".to_owned(),
        format!("lifeline.events.v1.auth_failed.x.{ACCOUNT}.extra"),
        "lifeline.events.v1.auth_failed.x.>".to_owned(),
        "lifeline.events.v1.*.x.a".to_owned(),
    ] {
        let why = with_subject(Some(&bad));
        assert!(why.contains("not an events subject under the root"), "{bad}: {why}");
    }
    let why = with_subject(Some(&format!("lifeline.events.v1.account_merged.x.{ACCOUNT}")));
    assert!(why.contains("unknown event"), "{why}");
}

#[test]
fn filters_select_by_consumer_event_and_time() {
    let s = subjects();
    let d = dead(7, "notifier-auth_failed", "r", valid_payload());
    let none = Filter::default();
    assert_eq!(none.subject(&s), "lifeline.dlq.>");
    assert!(none.matches(&d, &s));

    let by_consumer = Filter { consumer: Some("notifier-auth_failed".into()), ..Filter::default() };
    assert_eq!(by_consumer.subject(&s), "lifeline.dlq.notifier-auth_failed");
    assert!(by_consumer.matches(&d, &s));
    let other = Filter { consumer: Some("notifier-token_expiring".into()), ..Filter::default() };
    assert!(!other.matches(&d, &s));

    assert!(Filter { event: Some("auth_failed".into()), ..Filter::default() }.matches(&d, &s));
    assert!(!Filter { event: Some("token_expiring".into()), ..Filter::default() }.matches(&d, &s));
    let mut no_subject = d.clone();
    no_subject.headers.clear();
    assert!(
        !Filter { event: Some("auth_failed".into()), ..Filter::default() }.matches(&no_subject, &s)
    );

    let at = d.stored_at;
    assert!(Filter { since: Some(at), ..Filter::default() }.matches(&d, &s));
    assert!(!Filter { since: Some(at + chrono::Duration::seconds(1)), ..Filter::default() }
        .matches(&d, &s));

    let args =
        DlqFilterArgs { since: Some(Since::Ago(Duration::from_secs(60))), ..Default::default() };
    let now = at + chrono::Duration::seconds(30);
    assert_eq!(Filter::new(&args, now).since, Some(now - chrono::Duration::seconds(60)));
}

#[test]
fn show_decodes_the_payload_or_says_it_does_not_and_shows_hex() {
    let s = subjects();
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 5, 0).unwrap();
    let good = dead(7, "notifier-auth_failed", "gave up after 10 deliveries", valid_payload());
    let j = good.detail_json(&s, "LIFELINE_DLQ", now);
    assert_eq!(j["seq"], 7);
    assert_eq!(j["age_seconds"], 300);
    assert_eq!(j["deliveries"], 10);
    assert_eq!(j["headers"]["X-Team"], "growth");
    assert_eq!(j["payload"]["decoded"], true);
    assert_eq!(j["payload"]["event"]["payload"]["detail"], "probe refused");
    assert_eq!(j["payload"]["event"]["payload"]["cause"], "revoked");
    assert!(j["payload"].get("hex_prefix").is_none());
    let text = good.detail_text(&s, "LIFELINE_DLQ", now);
    assert!(text.contains("decodes as auth_failed") && text.contains("probe refused"), "{text}");
    assert!(text.contains("5m0s ago") && text.contains("X-Team: growth"), "{text}");

    let garbage = dead(8, "auth-gateway-auth_failed", "undecodable", vec![0xff, 0x00, 0x13, 0x37]);
    let j = garbage.detail_json(&s, "LIFELINE_DLQ", now);
    assert_eq!(j["payload"]["decoded"], false);
    assert_eq!(j["payload"]["size"], 4);
    assert_eq!(j["payload"]["hex_prefix"], "ff001337");
    assert!(j["payload"]["decode_error"].as_str().is_some_and(|e| e.contains("auth_failed")));
    let text = garbage.detail_text(&s, "LIFELINE_DLQ", now);
    assert!(text.contains("DOES NOT DECODE") && text.contains("hex: ff001337"), "{text}");

    assert_eq!(hex_prefix(&[0xab; 40]), format!("{}…", "ab".repeat(32)));
    assert_eq!(hex_prefix(&[]), "");
}

#[test]
fn the_table_shows_one_row_per_dead_letter() {
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 14, 0, 0).unwrap();
    let rows = [
        dead(7, "notifier-auth_failed", "gave up after 10 deliveries", valid_payload()),
        dead(8, "auth-gateway-auth_failed", "undecodable auth_failed: line1\nline2", vec![]),
    ];
    let text = table(&rows, now).render();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SEQ") && lines[0].contains("ORIGINAL_SUBJECT"), "{text}");
    assert!(
        lines[1].starts_with("7 ") && lines[1].contains("2h0m") && lines[1].contains(" 10 "),
        "{text}"
    );
    assert!(
        lines[2].contains("auth-gateway-auth_failed") && lines[2].contains("line1 line2"),
        "{text}"
    );
    assert_eq!(lines.len(), 3);
}
