//! Tests of the module above.

use super::*;
use clap::Parser;

fn cli(args: &[&str]) -> crate::cli::Cli {
    crate::cli::Cli::try_parse_from(std::iter::once("lifelinectl").chain(args.iter().copied()))
        .expect("valid arguments")
}

#[test]
fn urls_keep_the_base_path_and_encode_the_query() {
    let global = cli(&["--publisher-url", "https://ops.example/lifeline", "posts", "list"]).global;
    let service = Service::publisher(&global);
    let url = service
        .url("v1/posts", &[("account_id", "a b".into()), ("status", "failed_auth".into())])
        .expect("url");
    assert_eq!(
        url.as_str(),
        "https://ops.example/lifeline/v1/posts?account_id=a+b&status=failed_auth"
    );
}

#[test]
fn api_errors_read_the_error_document() {
    let err = api_error(
        "publisher",
        StatusCode::CONFLICT,
        r#"{"error":"not_dead_lettered","message":"post is published, not dead_lettered"}"#,
    );
    assert_eq!(err.to_string(), "post is published, not dead_lettered (409)");
    assert_eq!(err.exit_code(), 1);
    let err = api_error("gateway", StatusCode::BAD_GATEWAY, "<html>\n<h1>502</h1></html>");
    assert_eq!(err.to_string(), "<html> <h1>502</h1></html> (502)");
    let err = api_error("gateway", StatusCode::UNAUTHORIZED, "");
    assert_eq!(err.to_string(), "Unauthorized (401)");
}

#[test]
fn posts_commands_send_only_what_was_given() {
    let crate::cli::Command::Posts(PostsCommand::List(list)) = cli(&[
        "posts",
        "list",
        "--status",
        "failed_auth,retry_requested",
        "--platform",
        "linkedin",
        "--from",
        "2026-01-01T00:00:00+01:00",
        "--limit",
        "5",
    ])
    .command
    else {
        panic!("parsed as another command")
    };
    assert_eq!(
        posts_query(&list),
        vec![
            ("limit", "5".to_owned()),
            ("status", "failed_auth,retry_requested".to_owned()),
            ("platform", "linkedin".to_owned()),
            ("scheduled_from", "2025-12-31T23:00:00Z".to_owned()),
        ]
    );
    let post = "0190a5c8-0000-7000-8000-000000000001";
    let edit = |args: &[&str]| {
        let mut all = vec!["posts", "edit", "--post", post];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(std::iter::once("lifelinectl").chain(all)) {
            Ok(crate::cli::Cli {
                command: crate::cli::Command::Posts(PostsCommand::Edit(e)),
                ..
            }) => Ok(edit_body(&e)),
            Ok(_) => panic!("parsed as another command"),
            Err(e) => Err(e.kind()),
        }
    };
    assert_eq!(edit(&["--text", "new"]), Ok(json!({"text": "new"})));
    assert_eq!(edit(&["--no-media"]), Ok(json!({"media": null})));
    assert_eq!(
        edit(&[
            "--media-url",
            "https://m/x.mp4",
            "--media-kind",
            "video",
            "--at",
            "2026-05-01T10:00:00Z"
        ]),
        Ok(
            json!({"scheduled_at": "2026-05-01T10:00:00Z", "media": {"url": "https://m/x.mp4", "kind": "video"}})
        )
    );
    // Nothing to change, media without its kind, and both media and no media are refused.
    assert!(edit(&[]).is_err());
    assert!(edit(&["--media-url", "https://m/x.jpg"]).is_err());
    assert!(
        edit(&["--media-url", "https://m/x.jpg", "--media-kind", "image", "--no-media"]).is_err()
    );
    assert!(edit(&["--media-url", "https://m/x.gif", "--media-kind", "gif"]).is_err());
}

#[test]
fn tables_render_the_service_answers() {
    let body = r#"{"accounts":[{"id":"0190a5c8-0000-7000-8000-0000000000aa","platform":"x",
        "platform_user_id":"1","username":"ada","display_name":"Ada","status":"needs_reconnect",
        "cause":"revoked","cause_text":"access was revoked","extra":1}]}"#;
    let service =
        Service { name: "auth-gateway", base: Url::parse("http://gw/").expect("url"), hint: "" };
    let accounts: AccountList = parse(&service, "v1/accounts", body).expect("parses");
    let rendered = accounts_table(&accounts).render();
    assert!(
        rendered.lines().nth(1).is_some_and(|l| l.ends_with("ada       needs_reconnect  revoked")),
        "{rendered}"
    );

    let posts: PostList = parse(
        &service,
        "v1/posts",
        r#"{"posts":[{"id":"0190a5c8-0000-7000-8000-000000000001",
            "account_id":"0190a5c8-0000-7000-8000-0000000000aa","platform":"x","body":"hi",
            "status":"failed_auth","attempts":2,"scheduled_at":"2025-03-01T12:00:00Z",
            "platform_post_id":null,"last_error":"401"}]}"#,
    )
    .expect("parses");
    assert!(posts_table(&posts).render().contains("failed_auth  2         2025-03-01T12:00:00Z"));

    let notes: NotificationList = parse(
        &service,
        "v1/notifications",
        r#"{"notifications":[{"id":"0190a5c8-0000-7000-8000-000000000002","account_id":null,
            "kind":"auth_failed","title":"Reconnect X","body":"b",
            "created_at":"2025-03-01T12:00:00Z","read_at":null}]}"#,
    )
    .expect("parses");
    assert!(notifications_table(&notes).render().contains("auth_failed  2025-03-01T12:00:00Z  -"));

    let err = parse::<AccountList>(&service, "v1/accounts", "[]").expect_err("wrong shape");
    assert!(err.to_string().contains("http://gw/v1/accounts"), "{err}");
}
