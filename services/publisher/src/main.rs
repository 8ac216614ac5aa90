#[tokio::main]
async fn main() -> std::process::ExitCode {
    lifeline_kit::service::main(
        publisher::SERVICE,
        publisher::Config::from_env,
        |c| c.common.http_addr,
        publisher::run,
    )
    .await
}
