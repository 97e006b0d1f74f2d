use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringback::{telemetry::logging, Application, Settings};

/// Ringback: callback engagement service (GES v3-compatible API).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (snake_case keys in sections; RINGBACK__SECTION__KEY overrides).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve {
        /// Ensure tenant `demo` and service `demo-callbacks`, print a fresh API key and a curl.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve { demo: false }) {
            Command::Serve { demo } => serve(settings, demo).await,
            Command::Migrate => migrate(settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringback: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let level = std::env::var("RINGBACK_LOG").unwrap_or_else(|_| settings.log.level.clone());
    let (log, _guard) =
        logging::init(&level, settings.log.max_len).map_err(|e| anyhow::anyhow!("RINGBACK_LOG: {e}"))?;
    let app = Application::build_with_log(settings, log).await?;
    tracing::info!(
        internal = app.internal_port().unwrap_or(0),
        external = app.external_port().unwrap_or(0),
        backend = app.state().store.kind().as_str(),
        "ringback listening"
    );
    if demo {
        let key = ringback::demo::prepare(&app.state().store).await?;
        let port = app.internal_port().or(app.external_port()).unwrap_or(3050);
        eprint!("{}", ringback::demo::instructions(&key, port));
    }
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    ringback::store::Store::connect(&settings.database).await?;
    eprintln!("migrations applied");
    Ok(())
}
