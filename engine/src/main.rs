//! `msgengine`: the messaging engine's server and operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use msgengine::settings::{ProcessEnv, Settings};
use msgengine::{commands, telemetry, Application};

#[derive(Parser)]
#[command(
    name = "msgengine",
    version,
    about = "Multi-tenant Email, SMS and WhatsApp messaging engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server. Without DATABASE_URL it runs a private PostgreSQL in --data-dir.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Directory for the private PostgreSQL cluster and generated development secrets.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Manage the credential encryption key ring.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random key entry (`id:base64key`) to append to MSGENGINE_MASTER_KEYS.
    Generate {
        /// The new key's id (letters, digits, '-', '_', '.').
        #[arg(long, default_value_t = default_key_id())]
        id: String,
    },
    /// Re-encrypt every stored secret under the newest key of the ring.
    Rotate {
        /// Data directory (when the private PostgreSQL cluster is used).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn default_key_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("k{secs}")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::load(&ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("msgengine: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.environment);
    let outcome = match cli.command {
        Command::Serve { listen, data_dir } => {
            if let Some(listen) = listen {
                settings.server.listen = listen;
            }
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            serve(settings)
        }
        Command::Keys {
            command: KeysCommand::Generate { id },
        } => commands::generate_key(&id).map(|entry| println!("{entry}")),
        Command::Keys {
            command: KeysCommand::Rotate { data_dir },
        } => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            runtime().and_then(|rt| rt.block_on(commands::rotate_keys(&settings)))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgengine: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await
    })
}
