//! A terminal chat client on the chat-client SDK.
//!
//! Start a server and provision a course with the admin token it prints (see the README), then:
//!
//! ```sh
//! cargo run -p chat-client --example terminal-client -- --url ws://127.0.0.1:8080 \
//!     --token "$TOKEN" --course demo
//! ```
//!
//! It shows the course's recent history (from its cache in `./chat-client-cache` at once, then
//! from the server), prints what arrives, and sends each line typed. Lines written while the
//! server is down wait in the outbox and go out, once, when it is back. Commands: `/history`,
//! `/who`, `/read` (mark everything read), `/outbox`, `/retry ID`, `/discard ID`, `/quit`.

use std::path::PathBuf;

use chat_client::{Client, ClientEvent, ConnectionState, Message, OutboxState};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "A terminal chat client for chat-host")]
struct Args {
    /// The server (ws://, wss://, http:// or https://).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// A JWT for the user (the server's admin token works for a demo).
    #[arg(long, env = "CHAT_TOKEN")]
    token: String,
    /// The course to chat in.
    #[arg(long)]
    course: String,
    /// Where the cache and outbox live.
    #[arg(long, default_value = "./chat-client-cache")]
    cache: PathBuf,
}

fn line(m: &Message) -> String {
    let text = if m.is_deleted {
        "(deleted)".to_string()
    } else {
        let file = m
            .file
            .as_ref()
            .map(|f| format!(" [{}: {}]", f.mime_type, f.name));
        format!(
            "{}{}{}",
            m.message,
            file.unwrap_or_default(),
            if m.is_edited { " (edited)" } else { "" }
        )
    };
    format!("#{:<5} {:>12}: {text}", m.seq, m.sender.name)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Client::connect(&args.url, &args.token, &args.cache).await?;
    let mut events = client.events();
    client.join(&args.course)?;
    println!(
        "chat-client as {} in {} (type /quit to leave)",
        client.user_id(),
        args.course
    );
    show_history(&client, &args.course).await;

    let course = args.course.clone();
    let printer = client.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Connection(ConnectionState::Connected) => println!("-- connected"),
                ClientEvent::Connection(ConnectionState::Disconnected {
                    reason,
                    retry_in_ms,
                }) => {
                    println!("-- offline ({reason}); retrying in {retry_in_ms} ms")
                }
                ClientEvent::Connection(ConnectionState::Unauthorized { reason }) => {
                    println!("-- {reason}: start again with a valid token")
                }
                ClientEvent::Joined {
                    recovered: false,
                    course_id,
                    ..
                } if course_id == course => show_history(&printer, &course).await,
                ClientEvent::NewMessage(m) if m.course_id == course => println!("{}", line(&m)),
                ClientEvent::MessageEdited(m) if m.course_id == course => {
                    println!("{}", line(&m))
                }
                ClientEvent::MessageDeleted { message_id, .. } => {
                    println!("-- message {message_id} was deleted")
                }
                ClientEvent::SendSent { message, .. } => println!("{}", line(&message)),
                ClientEvent::SendFailed(entry) => {
                    if let OutboxState::Failed { code, message } = &entry.state {
                        println!(
                            "-- not sent ({code}: {message}): /retry {} or /discard {}",
                            entry.client_id, entry.client_id
                        )
                    }
                }
                ClientEvent::Typing {
                    name,
                    is_typing: true,
                    course_id,
                    ..
                } if course_id == course => {
                    println!("-- {name} is typing…")
                }
                ClientEvent::UserJoined { user, .. } => println!("-- {} is here", user.name),
                ClientEvent::UserLeft { user, .. } => println!("-- {} left", user.name),
                ClientEvent::Error { code, message } => println!("-- {code}: {message}"),
                _ => {}
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(input) = lines.next_line().await? {
        let input = input.trim();
        let (command, rest) = input.split_once(' ').unwrap_or((input, ""));
        let result = match command {
            "" => Ok(()),
            "/quit" => break,
            "/history" => {
                show_history(&client, &args.course).await;
                Ok(())
            }
            "/who" => {
                let names: Vec<String> = client
                    .online_users(&args.course)
                    .into_iter()
                    .map(|u| u.name)
                    .collect();
                println!("-- online: {}", names.join(", "));
                Ok(())
            }
            "/read" => match client.history(&args.course, None, 1).await {
                Ok(page) => match page.messages.last() {
                    Some(m) => client.mark_read(&m.id),
                    None => Ok(()),
                },
                Err(e) => Err(e),
            },
            "/outbox" => client.outbox(Some(&args.course)).map(|entries| {
                for e in entries {
                    println!("-- {} {:?}: {}", e.client_id, e.state, e.message);
                }
            }),
            "/retry" => client.retry(rest).await.map(|_| ()),
            "/discard" => client.discard(rest).await,
            _ => {
                client.typing(&args.course, false)?;
                client.send(&args.course, input).await.map(|e| {
                    if client.connection_state() != ConnectionState::Connected {
                        println!("-- queued ({}), sent when the server is back", e.client_id);
                    }
                })
            }
        };
        if let Err(e) = result {
            println!("-- {e}");
        }
    }
    client.close().await?;
    Ok(())
}

async fn show_history(client: &Client, course: &str) {
    match client.history(course, None, 20).await {
        Ok(page) => {
            for m in &page.messages {
                println!("{}", line(m));
            }
            if !page.complete {
                println!("-- (offline: showing the cache)");
            }
            if let Ok(n) = client.unread(course) {
                println!("-- {n} unread");
            }
        }
        Err(e) => println!("-- history: {e}"),
    }
}
