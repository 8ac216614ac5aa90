#[tokio::main]
async fn main() -> std::process::ExitCode {
    lifeline_kit::service::main(
        notifier::SERVICE,
        notifier::Config::from_env,
        |c| c.common.http_addr,
        notifier::run,
    )
    .await
}
