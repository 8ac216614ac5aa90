#[tokio::main]
async fn main() -> std::process::ExitCode {
    lifeline_kit::service::main(
        auth_gateway::SERVICE,
        auth_gateway::Config::from_env,
        |c| c.common.http_addr,
        auth_gateway::run,
    )
    .await
}
