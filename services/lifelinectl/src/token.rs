//! API credentials: `token mint`, and the bearer token the API commands send (given with
//! `--token`, or minted on the fly for `--workspace` with the shared HS256 secret).

use std::time::Duration;

use lifeline_kit::{
    auth::{jwt_secret, max_ttl, JwtKeys},
    config::Env,
    ids::WorkspaceId,
};
use secrecy::SecretString;

use crate::{
    cli::{GlobalArgs, MintArgs, WorkspaceArg},
    output, CtlError,
};

/// Tokens minted for a single API command only need to outlive that command; a short lifetime
/// keeps a token that leaks from a process listing or a proxy log nearly worthless.
const ON_THE_FLY_TTL: Duration = Duration::from_secs(300);
const ON_THE_FLY_SUBJECT: &str = "lifelinectl";

/// Signs a token for `workspace` with `LIFELINE_JWT_SECRET` read from `env`.
pub fn mint(
    env: &Env,
    subject: &str,
    workspace: WorkspaceId,
    ttl: Duration,
) -> Result<String, CtlError> {
    let secret = jwt_secret(env)?;
    Ok(JwtKeys::new(&secret).mint(subject, workspace, ttl))
}

/// `token mint`: prints the token on stdout (so `$(lifelinectl token mint …)` captures only it)
/// and a generated workspace id on stderr.
pub fn mint_command(global: &GlobalArgs, args: &MintArgs, env: &Env) -> Result<(), CtlError> {
    let (workspace, generated) = match global.workspace {
        Some(WorkspaceArg::Id(id)) => (id, false),
        Some(WorkspaceArg::New) => (WorkspaceId::new(), true),
        None => return Err(CtlError::Usage("token mint needs --workspace <UUID|new>".to_owned())),
    };
    // Read the secret first so a generated workspace is only announced when it gets a token.
    let secret = jwt_secret(env)?;
    let max = max_ttl(env)?;
    if args.ttl > max {
        return Err(CtlError::Usage(format!(
            "--ttl {} is longer than the {} s the services accept (LIFELINE_JWT_MAX_TTL); mint a shorter token",
            args.ttl.as_secs(),
            max.as_secs()
        )));
    }
    if generated {
        eprintln!("workspace: {workspace}");
    }
    output::line(&JwtKeys::new(&secret).mint_as(&args.subject, workspace, args.role, args.ttl))
}

/// The bearer token for an API command. An explicit `--workspace` wins over `LIFELINE_TOKEN`,
/// because the flag is always typed on purpose while the variable may linger in a shell.
pub fn api_bearer(global: &GlobalArgs, env: &Env) -> Result<SecretString, CtlError> {
    match (global.workspace, &global.token) {
        (Some(WorkspaceArg::New), _) => Err(CtlError::Usage(
            "--workspace new only makes sense for `token mint`; a fresh workspace has no data"
                .to_owned(),
        )),
        (Some(WorkspaceArg::Id(ws)), _) => {
            mint(env, ON_THE_FLY_SUBJECT, ws, ON_THE_FLY_TTL).map(SecretString::from)
        }
        (None, Some(token)) => Ok(token.clone()),
        (None, None) => Err(CtlError::Usage(
            "no API credentials: pass --token (or set LIFELINE_TOKEN), or pass --workspace <UUID> \
             with LIFELINE_JWT_SECRET set"
                .to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    const SECRET: &str = "lifelinectl-test-secret-0123456789abcdef";

    fn global(args: &[&str]) -> GlobalArgs {
        let argv =
            std::iter::once("lifelinectl").chain(args.iter().copied()).chain(["posts", "list"]);
        crate::cli::Cli::try_parse_from(argv).expect("valid arguments").global
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret() {
        let env = Env::from_pairs([("LIFELINE_JWT_SECRET", SECRET)]);
        let ws = WorkspaceId::new();
        let token = mint(&env, "ops", ws, Duration::from_secs(60)).expect("mints");
        let keys = JwtKeys::new(&SecretString::from(SECRET));
        let claims = keys.verify(&token).expect("verifies");
        assert_eq!(claims.ws, ws);
        assert_eq!(claims.sub, "ops");
        assert_eq!(claims.exp - claims.iat, 60);
    }

    fn mint_args(args: &[&str]) -> (GlobalArgs, MintArgs) {
        let argv = ["lifelinectl", "--workspace", "new", "token", "mint"]
            .into_iter()
            .chain(args.iter().copied());
        let cli = crate::cli::Cli::try_parse_from(argv).expect("valid arguments");
        match cli.command {
            crate::cli::Command::Token(crate::cli::TokenCommand::Mint(m)) => (cli.global, m),
            _ => unreachable!("token mint"),
        }
    }

    #[test]
    fn token_mint_refuses_a_lifetime_the_services_would_refuse() {
        let env = Env::from_pairs([("LIFELINE_JWT_SECRET", SECRET)]);
        let (g, a) = mint_args(&["--ttl", "7d"]);
        let err = mint_command(&g, &a, &env).expect_err("over the 24h default");
        assert!(err.to_string().contains("LIFELINE_JWT_MAX_TTL"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let env =
            Env::from_pairs([("LIFELINE_JWT_SECRET", SECRET), ("LIFELINE_JWT_MAX_TTL", "1h")]);
        let (g, a) = mint_args(&["--ttl", "2h"]);
        assert!(mint_command(&g, &a, &env).is_err(), "over a configured maximum");
        let (_, a) = mint_args(&["--role", "operator", "--ttl", "1h"]);
        assert_eq!(a.role, lifeline_kit::auth::Role::Operator);
        let argv = ["lifelinectl", "token", "mint", "--role", "admin"];
        assert!(crate::cli::Cli::try_parse_from(argv).is_err(), "unknown roles are refused");
    }

    #[test]
    fn a_missing_or_short_secret_names_the_variable() {
        let unset = Env::from_pairs(Vec::<(String, String)>::new());
        for env in [unset, Env::from_pairs([("LIFELINE_JWT_SECRET", "short")])] {
            let err = mint(&env, "ops", WorkspaceId::new(), Duration::from_secs(60))
                .expect_err("no usable secret");
            assert!(err.to_string().contains("LIFELINE_JWT_SECRET"), "{err}");
            assert_eq!(err.exit_code(), 1);
        }
    }

    #[test]
    fn workspace_beats_token_and_one_of_them_is_required() {
        let env = Env::from_pairs([("LIFELINE_JWT_SECRET", SECRET)]);
        let ws = "0190a5c8-0000-7000-8000-000000000000";

        let given = api_bearer(&global(&["--token", "abc"]), &env).expect("token");
        assert_eq!(given.expose_secret(), "abc");

        let minted = api_bearer(&global(&["--token", "abc", "--workspace", ws]), &env)
            .expect("minted for the workspace");
        let keys = JwtKeys::new(&SecretString::from(SECRET));
        assert_eq!(keys.verify(minted.expose_secret()).expect("valid").ws.to_string(), ws);

        // LIFELINE_TOKEN may be set in the shell running the tests; this case is about neither.
        let mut neither = global(&[]);
        neither.token = None;
        assert!(matches!(api_bearer(&neither, &env), Err(CtlError::Usage(_))));
        assert!(matches!(
            api_bearer(&global(&["--workspace", "new"]), &env),
            Err(CtlError::Usage(_))
        ));
    }
}
