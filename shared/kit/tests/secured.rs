//! Secured connections against real servers: a NATS server with TLS and each kind of
//! authentication the services support, and a throwaway Postgres cluster (`initdb` on another
//! port, `ssl = on`) reached with `sslmode=verify-full`. Certificates are generated per run
//! with `openssl`; nothing here touches the machine's own NATS or Postgres.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use lifeline_kit::{
    bus::connect_client,
    config::{CommonConfig, Env, NatsConfig},
};

/// A scratch folder the `postgres` OS user can use too, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("lifeline-{what}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a server and a client certificate it signed, as PEM files in `dir`. The server
/// certificate names `localhost` only (not 127.0.0.1), so that host-name checks can be seen.
fn certificates(dir: &Path, prefix: &str) {
    let p = |n: &str| dir.join(format!("{prefix}{n}")).to_string_lossy().into_owned();
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=Lifeline test CA", "-keyout", &p("ca.key"), "-out", &p("ca.crt")]));
    for (name, cn, ext) in [
        ("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "lifeline-client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(p(&format!("{name}.ext")), ext).expect("ext file");
        run(Command::new("openssl").args(["req", "-newkey", "rsa:2048", "-nodes"]).args([
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CA", &p("ca.crt"), "-CAkey", &p("ca.key")])
            .args([
                "-CAcreateserial",
                "-in",
                &p(&format!("{name}.csr")),
                "-out",
                &p(&format!("{name}.crt")),
            ])
            .args(["-extfile", &p(&format!("{name}.ext"))]));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// A nats-server process with the given configuration, killed on drop.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start(scratch: &Scratch, config: &str) -> Nats {
        let port = free_port();
        let file = scratch.path(&format!("nats-{port}.conf"));
        std::fs::write(&file, format!("listen: 127.0.0.1:{port}\n{config}\n")).expect("conf");
        let bin = std::env::var("LIFELINE_TEST_NATS_BIN").unwrap_or_else(|_| "nats-server".into());
        let bin = if Path::new("/usr/sbin/nats-server").exists() && bin == "nats-server" {
            "/usr/sbin/nats-server".into()
        } else {
            bin
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (make infra)");
        wait_for_port(port);
        Nats { child, port }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_config(pairs: &[(&str, String)]) -> NatsConfig {
    NatsConfig::from_env(&Env::from_pairs(pairs.iter().cloned())).expect("valid NATS settings")
}

/// Connects, and proves the connection works with a round trip.
async fn connects(pairs: &[(&str, String)]) -> Result<(), String> {
    let client =
        connect_client("secured-test", &nats_config(pairs)).await.map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::test]
async fn nats_over_tls_with_a_password_refuses_a_wrong_one_and_an_unknown_ca() {
    let scratch = Scratch::new("nats-tls");
    certificates(&scratch.0, "");
    let c = |n: &str| scratch.path(n).to_string_lossy().into_owned();
    let server = Nats::start(&scratch, &format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", timeout: 2 }}\nauthorization {{ users = [ {{ user: svc, password: \"right-password-1\" }} ] }}",
        c("server.crt"), c("server.key")
    ));
    let url = format!("tls://localhost:{}", server.port);
    let base = |password: &str| {
        vec![
            ("NATS_URL", url.clone()),
            ("LIFELINE_NATS_USER", "svc".to_owned()),
            ("LIFELINE_NATS_PASSWORD", password.to_owned()),
            ("LIFELINE_NATS_TLS_CA_FILE", c("ca.crt")),
        ]
    };
    connects(&base("right-password-1")).await.expect("the right password over TLS is accepted");

    let err = connects(&base("wrong-password-2")).await.expect_err("a wrong password is refused");
    assert!(!err.contains("wrong-password-2"), "the error shows the password: {err}");

    let mut no_ca = base("right-password-1");
    no_ca.retain(|(k, _)| *k != "LIFELINE_NATS_TLS_CA_FILE");
    connects(&no_ca).await.expect_err("a server certificate from an unknown CA is refused");
}

#[tokio::test]
async fn nats_mutual_tls_needs_the_client_certificate() {
    let scratch = Scratch::new("nats-mtls");
    certificates(&scratch.0, "");
    let c = |n: &str| scratch.path(n).to_string_lossy().into_owned();
    let server = Nats::start(
        &scratch,
        &format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 2 }}",
        c("server.crt"), c("server.key"), c("ca.crt")
    ),
    );
    let mut pairs = vec![
        ("NATS_URL", format!("nats://localhost:{}", server.port)),
        ("LIFELINE_NATS_TLS_CA_FILE", c("ca.crt")),
        ("LIFELINE_NATS_TLS_REQUIRED", "true".to_owned()),
    ];
    connects(&pairs).await.expect_err("without a client certificate the server refuses");
    pairs.push(("LIFELINE_NATS_TLS_CERT_FILE", c("client.crt")));
    pairs.push(("LIFELINE_NATS_TLS_KEY_FILE", c("client.key")));
    connects(&pairs).await.expect("with the client certificate the server accepts");
}

#[tokio::test]
async fn nats_token_and_nkey_authentication() {
    let scratch = Scratch::new("nats-auth");
    let token = Nats::start(&scratch, "authorization { token: \"right-token-1\" }");
    let url = format!("nats://127.0.0.1:{}", token.port);
    connects(&[("NATS_URL", url.clone()), ("LIFELINE_NATS_TOKEN", "right-token-1".into())])
        .await
        .expect("the right token is accepted");
    let err =
        connects(&[("NATS_URL", url.clone()), ("LIFELINE_NATS_TOKEN", "wrong-token-2".into())])
            .await
            .expect_err("a wrong token is refused");
    assert!(!err.contains("wrong-token-2"), "the error shows the token: {err}");
    connects(&[("NATS_URL", url)]).await.expect_err("no credentials are refused");

    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let nkey = Nats::start(
        &scratch,
        &format!("authorization {{ users = [ {{ nkey: {} }} ] }}", user.public_key()),
    );
    let url = format!("nats://127.0.0.1:{}", nkey.port);
    connects(&[("NATS_URL", url.clone()), ("LIFELINE_NATS_NKEY_SEED", user.seed().expect("seed"))])
        .await
        .expect("the registered NKey is accepted");
    let err =
        connects(&[("NATS_URL", url), ("LIFELINE_NATS_NKEY_SEED", stranger.seed().expect("seed"))])
            .await
            .expect_err("another NKey is refused");
    assert!(!err.contains(&stranger.seed().expect("seed")), "the error shows the seed: {err}");
}

#[tokio::test]
async fn nats_tls_required_refuses_a_plaintext_server() {
    let scratch = Scratch::new("nats-plain");
    let plain = Nats::start(&scratch, "");
    let url = format!("nats://127.0.0.1:{}", plain.port);
    connects(&[("NATS_URL", url.clone())])
        .await
        .expect("plaintext is fine when TLS is not required");
    connects(&[("NATS_URL", url), ("LIFELINE_NATS_TLS_REQUIRED", "true".into())])
        .await
        .expect_err("TLS required: a server without TLS is refused");
}

/// A throwaway Postgres cluster with `ssl = on` that refuses non-TLS connections, run as the
/// `postgres` OS user (initdb refuses root), stopped and removed on drop.
struct Postgres {
    scratch: Scratch,
    port: u16,
    bin: PathBuf,
}

fn as_postgres(cmd: &str, args: &[&str]) -> Command {
    let root = is_root();
    let mut c = if root { Command::new("runuser") } else { Command::new(cmd) };
    if root {
        c.args(["-u", "postgres", "--", cmd]);
    }
    c.args(args);
    c
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    fn start() -> Postgres {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (make infra)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .expect("a PostgreSQL version");
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let scratch = Scratch::new("pg-tls");
        certificates(&scratch.0, "");
        let data = scratch.path("data");
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&scratch.0));
        run(Command::new("chmod").arg("755").arg(&scratch.0));
        let d = data.to_string_lossy().into_owned();
        run(&mut as_postgres(
            &bin.join("initdb").to_string_lossy(),
            &["-D", &d, "-A", "trust", "-U", "postgres", "--no-sync"],
        ));
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            scratch.0.display(),
            scratch.path("server.crt").display(),
            scratch.path("server.key").display(),
        );
        let mut pg_conf =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).expect("write conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("hba");
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&scratch.0));
        run(Command::new("chmod").arg("600").arg(scratch.path("server.key")));
        let log = scratch.path("pg.log").to_string_lossy().into_owned();
        run(&mut as_postgres(
            &bin.join("pg_ctl").to_string_lossy(),
            &["-D", &d, "-l", &log, "-w", "start"],
        ));
        Postgres { scratch, port, bin }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/lifeline_tls?{params}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.scratch.path("data").to_string_lossy().into_owned();
        let _ = as_postgres(
            &self.bin.join("pg_ctl").to_string_lossy(),
            &["-D", &d, "-m", "immediate", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

async fn pg_connects(url: String) -> Result<bool, String> {
    let env = Env::from_pairs([("DATABASE_URL", url), ("LIFELINE_INSTANCE_ID", "t".into())]);
    let config = CommonConfig::from_env(&env, "secured-test", 1).map_err(|e| e.to_string())?;
    let pool = lifeline_kit::db::connect(&config).await.map_err(|e| e.to_string())?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(ssl)
}

#[tokio::test]
async fn postgres_verify_full_checks_the_ca_and_the_host_name() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.expect("start postgres");
    let ca = pg.scratch.path("ca.crt").to_string_lossy().into_owned();

    let tls = pg_connects(pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .expect("verify-full with the right CA and host name connects");
    assert!(tls, "the connection is encrypted");

    pg_connects(pg.url("localhost", "sslmode=disable"))
        .await
        .expect_err("the server refuses plaintext");

    // The certificate names localhost, not 127.0.0.1. (sqlx's rustls checks the name for
    // verify-ca too, which is stricter than libpq; docs/deploy.md says to use verify-full.)
    pg_connects(pg.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .expect_err("verify-full refuses a certificate for another host name");

    let other = Scratch::new("other-ca");
    certificates(&other.0, "");
    let other_ca = other.path("ca.crt").to_string_lossy().into_owned();
    pg_connects(pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}")))
        .await
        .expect_err("a server certificate from another CA is refused");
}

/// A NATS JWT (`header.claims.signature`, base64url) signed by `issuer`, as `nsc` writes them.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": chrono::Utc::now().timestamp(),
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = b64(claims.to_string().as_bytes());
    let signature = issuer.sign(format!("{header}.{claims}").as_bytes()).expect("sign");
    format!("{header}.{claims}.{}", b64(&signature))
}

#[tokio::test]
async fn nats_creds_file_in_operator_mode() {
    let scratch = Scratch::new("nats-creds");
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "lifeline-test",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "LIFELINE",
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    let user_claims = serde_json::json!({
        "type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1
    });
    let creds = |jwt: &str, seed: &str| {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
    };
    let good = scratch.path("good.creds");
    std::fs::write(
        &good,
        creds(
            &nats_jwt(&account, &user.public_key(), "svc", user_claims.clone()),
            &user.seed().expect("seed"),
        ),
    )
    .expect("creds");
    // A user signed by another account that the server does not know.
    let stranger = nkeys::KeyPair::new_account();
    let other_user = nkeys::KeyPair::new_user();
    let bad = scratch.path("bad.creds");
    std::fs::write(
        &bad,
        creds(
            &nats_jwt(&stranger, &other_user.public_key(), "x", user_claims),
            &other_user.seed().expect("seed"),
        ),
    )
    .expect("creds");
    std::fs::write(scratch.path("operator.jwt"), &operator_jwt).expect("operator");
    let server = Nats::start(
        &scratch,
        &format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{ {}: \"{}\" }}",
            scratch.path("operator.jwt").display(),
            account.public_key(),
            account_jwt
        ),
    );
    let url = format!("nats://127.0.0.1:{}", server.port);
    connects(&[
        ("NATS_URL", url.clone()),
        ("LIFELINE_NATS_CREDS_FILE", good.to_string_lossy().into_owned()),
    ])
    .await
    .expect("a user of a known account is accepted with its .creds file");
    connects(&[
        ("NATS_URL", url.clone()),
        ("LIFELINE_NATS_CREDS_FILE", bad.to_string_lossy().into_owned()),
    ])
    .await
    .expect_err("a user of an unknown account is refused");
    connects(&[("NATS_URL", url)]).await.expect_err("no credentials are refused in operator mode");
}
