#[tokio::main]
async fn main() -> std::process::ExitCode {
    lifeline_kit::service::main(
        token_refresher::SERVICE,
        token_refresher::Config::from_env,
        |c| c.common.http_addr,
        token_refresher::run,
    )
    .await
}
