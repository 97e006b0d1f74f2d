use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringback::telemetry::{logging, otlp};
use ringback::{Application, Settings};

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
    /// Run the stand-in voice platform: consume the dispatch stream and drive callbacks to completion.
    SimulateDialer(Box<SimulateArgs>),
    /// Manage operators of the admin API and console (issue 26).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Add an operator; its token (shown once) is the last line of stdout.
    Add {
        name: String,
        /// admin, supervisor, monitor or developer.
        #[arg(long)]
        role: String,
        /// A tenant the operator may see (repeat for several); none: every tenant.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
    /// Revoke an operator: its token stops working on every replica at once.
    Revoke { name: String },
    /// List operators (never their tokens).
    List,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Redis holding the dispatch stream (default: the configured ORS Redis, else the cache Redis).
    #[arg(long)]
    redis_url: Option<String>,
    /// Stream name (default: ors_redis.stream).
    #[arg(long)]
    stream: Option<String>,
    /// Consumer group.
    #[arg(long, default_value = "ringback-simulator")]
    group: String,
    /// Consumer name within the group (default: a random one).
    #[arg(long)]
    consumer: Option<String>,
    /// Ringback's internal listener.
    #[arg(long, default_value = "http://127.0.0.1:3050")]
    internal_url: String,
    /// Internal API token (default: the first of internal.tokens).
    #[arg(long, env = "RINGBACK_SIMULATOR_TOKEN")]
    token: Option<String>,
    /// Delay before acknowledging a hand-off (QUEUED), in ms.
    #[arg(long, default_value_t = 200)]
    ack_ms: u64,
    /// Delay before ROUTING, in ms.
    #[arg(long, default_value_t = 2000)]
    routing_ms: u64,
    /// Delay before PROCESSING, in ms.
    #[arg(long, default_value_t = 3000)]
    processing_ms: u64,
    /// Delay before COMPLETED, in ms.
    #[arg(long, default_value_t = 5000)]
    completion_ms: u64,
    /// Outcome weights: agent connected, customer unreachable, no answer.
    #[arg(long, default_value = "80,10,10")]
    outcomes: String,
    /// Callbacks driven at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Queue statistics push period, in ms.
    #[arg(long, default_value_t = 10000)]
    stats_ms: u64,
    /// Instead of consuming the stream: place inbound calls for one call-in request (the `data`
    /// of a create answer, as JSON) — one with a wrong code, one with the right code — print
    /// what Ringback answered, and exit.
    #[arg(long, value_name = "JSON")]
    call_in: Option<String>,
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
    if let None | Some(Command::Serve { demo: false }) = cli.command {
        if let Some(problem) = settings.dispatch_problem(false) {
            eprintln!("{problem}");
            return ExitCode::from(2);
        }
    }
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
            Command::SimulateDialer(args) => simulate(settings, *args).await,
            Command::Operator(command) => operator(settings, command).await,
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
    let export = otlp::build(&settings.telemetry.otlp, &otlp::instance_id()).map_err(|e| anyhow::anyhow!(e))?;
    let (tracer, _export) = export.unzip();
    let (log, _guard) =
        logging::init(&level, settings.log.max_len, tracer).map_err(|e| anyhow::anyhow!("RINGBACK_LOG: {e}"))?;
    logging::log_panics();
    let app = Application::build_with(settings, log, ringback::app::BuildOptions { demo }).await?;
    tracing::info!(
        internal = app.internal_port().unwrap_or(0),
        external = app.external_port().unwrap_or(0),
        backend = app.state().store.kind().as_str(),
        "ringback listening"
    );
    if demo {
        let keys = ringback::demo::prepare(&app.state().store, app.state().keys.signer()).await?;
        // Public calls (and the page) go to the external listener, as a customer's would.
        let port = app.external_port().or(app.internal_port()).unwrap_or(3005);
        eprint!("{}", ringback::demo::instructions(&keys, port));
    }
    app.run_until_stopped().await?;
    Ok(())
}

async fn simulate(settings: Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let level = std::env::var("RINGBACK_LOG").unwrap_or_else(|_| settings.log.level.clone());
    let (_log, _guard) =
        logging::init(&level, settings.log.max_len, None).map_err(|e| anyhow::anyhow!("RINGBACK_LOG: {e}"))?;
    if let Some(request) = &args.call_in {
        let token = args
            .token
            .clone()
            .or_else(|| settings.internal.tokens.first().cloned())
            .ok_or_else(|| anyhow::anyhow!("no internal token: pass --token or set RINGBACK__INTERNAL__TOKENS"))?;
        let request: serde_json::Value =
            serde_json::from_str(request).map_err(|e| anyhow::anyhow!("--call-in takes JSON: {e}"))?;
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
        let calls = ringback::simulator::place_inbound_calls(&client, &args.internal_url, &token, &request).await?;
        if let Some(status) = calls.wrong_code {
            println!("wrong access code: HTTP {status}");
        }
        println!("right access code: HTTP {} {}", calls.right_code.0, calls.right_code.1);
        return Ok(());
    }
    let url = args.redis_url.unwrap_or_else(|| settings.ors_redis_url().to_string());
    if url.is_empty() {
        anyhow::bail!("no Redis: pass --redis-url or set RINGBACK__ORS_REDIS__URL / RINGBACK__REDIS__URL");
    }
    let token = args
        .token
        .or_else(|| settings.internal.tokens.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("no internal token: pass --token or set RINGBACK__INTERNAL__TOKENS"))?;
    let weights: Vec<u32> = args.outcomes.split(',').map(|w| w.trim().parse()).collect::<Result<_, _>>()?;
    let [agent, unreachable, no_answer] = weights[..] else {
        anyhow::bail!("--outcomes takes three weights: agent,unreachable,no-answer");
    };
    let ms = std::time::Duration::from_millis;
    let config = ringback::simulator::SimulatorConfig {
        internal_url: args.internal_url.trim_end_matches('/').to_string(),
        token,
        ack_delay: ms(args.ack_ms),
        routing_delay: ms(args.routing_ms),
        processing_delay: ms(args.processing_ms),
        completion_delay: ms(args.completion_ms),
        outcomes: [agent, unreachable, no_answer],
        stats_every: ms(args.stats_ms.max(100)),
        concurrency: args.concurrency,
    };
    let source = ringback::simulator::Source::Redis {
        url,
        stream: args.stream.unwrap_or(settings.ors_redis.stream.clone()),
        group: args.group,
        consumer: args.consumer.unwrap_or_else(|| format!("simulator-{}", uuid::Uuid::new_v4().simple())),
    };
    tracing::info!("dialer simulator running");
    ringback::simulator::run(source, config).await
}

/// The `operator` commands, on the configured database (audited as by `cli`).
async fn operator(settings: Settings, command: OperatorCommand) -> anyhow::Result<()> {
    use ringback::ops::operators;
    let store = ringback::store::Store::connect(&settings.database).await?;
    let failed = |e: ringback::error::ApiError| {
        let details: Vec<String> = e.details.iter().map(|d| format!("{} {}", d.field, d.problem)).collect();
        anyhow::anyhow!("{} {}", e.message, details.join("; "))
    };
    match command {
        OperatorCommand::Add { name, role, tenants } => {
            let tenants = (!tenants.is_empty()).then_some(tenants);
            let token = operators::add(&store, &name, &role, tenants, "cli").await.map_err(failed)?;
            println!("operator {name} added ({role}); its token, shown once:");
            println!("{token}");
        }
        OperatorCommand::Revoke { name } => {
            operators::revoke(&store, &name, "cli").await.map_err(failed)?;
            println!("operator {name} revoked");
        }
        OperatorCommand::List => {
            for r in operators::list(&store).await.map_err(failed)? {
                let tenants = r.operator.tenants.map_or_else(|| "all tenants".to_string(), |t| t.join(","));
                println!("{}\t{}\t{}", r.operator.name, r.operator.role.as_str(), tenants);
            }
        }
    }
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    ringback::store::Store::connect(&settings.database).await?;
    eprintln!("migrations applied");
    Ok(())
}
