//! The `stsdns` command line: `serve` and `check`. The only place that uses `anyhow`, installs a
//! tracing subscriber, or prints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use stsdns::app;
use stsdns::config::{self, FeedSource, PodsMode, ServeConfig, ZoneConfig};
use stsdns::model::diagnose::Severity;
use stsdns::records;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Authoritative DNS for Kubernetes headless Services and StatefulSets.
///
/// Answers A/AAAA for <pod>.<svc>.<ns>.svc.cluster.local, the peer list of a StatefulSet as one
/// SRV lookup, and PTR back, from Kubernetes manifests (Service, EndpointSlice, Pod,
/// StatefulSet) as `kubectl get -o yaml` prints them.
#[derive(Debug, Parser)]
#[command(name = "stsdns", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "STSDNS_LOG_FORMAT")]
    log_format: LogFormat,

    /// Only log errors (RUST_LOG overrides).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Log more: -v for debug, -vv for every query (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve DNS over UDP and TCP. With no --feed, serves the example cluster (zones/).
    Serve(ServeArgs),
    /// Validate a feed without serving: print every record as zone text, then the problems.
    ///
    /// Zone text goes to standard output (load it into Knot or BIND), problems to standard
    /// error. Exits 1 when any problem is an error.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct ZoneArgs {
    /// Cluster domain to serve (repeatable).
    #[arg(
        long = "zone",
        value_name = "DOMAIN",
        default_value = "cluster.local",
        env = "STSDNS_ZONE"
    )]
    zones: Vec<String>,

    /// TTL of answers, in seconds (0 is honoured).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, env = "STSDNS_TTL")]
    ttl: u32,

    /// TTL of negative answers (NXDOMAIN, NODATA), in seconds: the SOA minimum.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5,
        env = "STSDNS_NEGATIVE_TTL"
    )]
    negative_ttl: u32,

    /// Answer <a-b-c-d>.<ns>.pod.<zone>: disabled, insecure (any IP in a namespace that
    /// exists) or verified (only IPs of existing Pods).
    #[arg(long, value_enum, default_value_t = PodsMode::Disabled, env = "STSDNS_PODS")]
    pods: PodsMode,
}

impl ZoneArgs {
    fn config(&self) -> anyhow::Result<ZoneConfig> {
        Ok(ZoneConfig {
            zones: config::parse_zones(&self.zones)?,
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            pods: self.pods,
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A manifest file or directory (YAML or JSON, as `kubectl get -o yaml|json` prints).
    /// Repeatable. Default: the example cluster built into the binary.
    #[arg(long = "feed", value_name = "PATH", env = "STSDNS_FEED")]
    feeds: Vec<PathBuf>,

    /// Address to answer on, UDP and TCP (repeatable; port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5353",
        env = "STSDNS_LISTEN"
    )]
    listen: Vec<SocketAddr>,

    #[command(flatten)]
    zone: ZoneArgs,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// A manifest file or directory. Default: the example cluster built into the binary.
    #[arg(value_name = "FEED")]
    feed: Option<PathBuf>,

    /// Also write each zone to DIR/<zone>.zone (for loading into Knot or BIND).
    #[arg(long, value_name = "DIR")]
    write_zones: Option<PathBuf>,

    #[command(flatten)]
    zone: ZoneArgs,
}

fn init_tracing(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "stsdns=error,warn",
        (false, 0) => "stsdns=info,warn",
        (false, 1) => "stsdns=debug,warn",
        (false, _) => "stsdns=trace,hickory_server=debug,warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let result = match &cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stsdns: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig {
        listen: args.listen.clone(),
        feeds: if args.feeds.is_empty() {
            vec![FeedSource::Embedded]
        } else {
            args.feeds.iter().cloned().map(FeedSource::Path).collect()
        },
        zone: args.zone.config()?,
    };
    let loaded = app::load(&config.feeds).context("cannot load the feed")?;
    app::log_problems(&loaded.problems);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let running = app::start(&config, shutdown.clone()).await?;
        let serial = app::publish(&running.writer, &loaded.state, &config.zone)?;
        let snapshot = running.reader.load().context("the snapshot was just published")?;
        let (objects, records) = app::describe(&snapshot);
        let addresses: Vec<String> = running.addresses.iter().map(ToString::to_string).collect();
        let zones: Vec<String> = config.zone.zones.iter().map(ToString::to_string).collect();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "stsdns listening on udp={list} tcp={list} zones={zones} objects={objects} records={records} serial={serial}",
                list = addresses.join(","),
                zones = zones.join(","),
            );
        }
        let task = running.task;
        tokio::pin!(task);
        tokio::select! {
            result = &mut task => {
                result.context("the server task failed")?.context("the server stopped")?;
            }
            signal = shutdown_signal() => {
                signal?;
                tracing::info!("shutting down");
                shutdown.cancel();
                task.await.context("the server task failed")?.context("the server stopped")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let zone = args.zone.config()?;
    let source = match &args.feed {
        Some(path) => FeedSource::Path(path.clone()),
        None => FeedSource::Embedded,
    };
    let loaded = app::load(std::slice::from_ref(&source)).context("cannot load the feed")?;
    let serial = app::next_serial(None);
    let snapshot =
        records::build(&loaded.state, &zone, serial).context("cannot build the records")?;

    let text = records::zone_text(&snapshot);
    #[allow(clippy::print_stdout)]
    {
        for (_, zone_text) in &text {
            print!("{zone_text}");
        }
    }
    if let Some(dir) = &args.write_zones {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (origin, zone_text) in &text {
            let file = dir.join(format!(
                "{}zone",
                origin.to_string().trim_start_matches('.')
            ));
            std::fs::write(&file, zone_text)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
    }

    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    let errors = loaded.errors();
    let warnings = loaded
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .count();
    eprintln!(
        "checked {files} file(s): {objects} objects, {records} records, {errors} error(s), {warnings} warning(s)",
        files = loaded.files,
        objects = loaded.state.len(),
        records = snapshot.record_count(),
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
