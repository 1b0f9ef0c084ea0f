//! `chat-host`: read settings, start the server, print how to use it, wait for SIGINT/SIGTERM,
//! shut down gracefully.

use std::process::ExitCode;

use chat_host::{Cli, Server};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system's malloc: a delivery allocates and frees a few small blocks
/// (queue slots, write batches, tasks' wake-ups), and glibc's malloc took 8 % of the server's
/// worker CPU at 100x20-max (bench/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let dotenv = dotenvy::dotenv();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Ok(path) = dotenv {
        tracing::info!(path = %path.display(), "read settings from .env");
    }
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-host: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-host: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::start(config).await?;
        let addr = server.local_addr();
        println!("chat-host listening on http://{addr} (WebSocket: ws://{addr}/ws, Socket.IO: http://{addr}/socket.io/)");
        if let Some(token) = server.admin_token() {
            println!("No JWT_SECRET set: using a generated secret kept in the data folder.");
            println!("Admin token (valid 24 h):\n{token}");
            println!("Try: curl -X PUT http://{addr}/api/v1/chat/courses/demo -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"name\":\"Demo\"}}'");
        }
        wait_for_signal().await;
        server.shutdown().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-host: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
