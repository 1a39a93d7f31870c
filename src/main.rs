//! The `ovs-appliance` command line: parse, start logging, run, map the error to an exit code.

use clap::{Parser, Subcommand, ValueEnum};
use ovs_appliance::{app, supervisor};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ovs-appliance",
    version,
    about = "Open vSwitch as one supervised appliance"
)]
struct Cli {
    /// The config file (TOML). Without it, /etc/ovs-appliance/config.toml when present, else the
    /// embedded default (OVS up, no bridges).
    #[arg(long, global = true, env = "OVS_APPLIANCE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stdout.
    #[arg(
        long,
        global = true,
        env = "OVS_APPLIANCE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(flatten)]
    roots: Roots,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Host paths preflight reads; for tests, which point them at fake trees.
#[derive(clap::Args)]
struct Roots {
    #[arg(long, global = true, hide = true, env = "OVS_APPLIANCE_SYS_ROOT")]
    sys_root: Option<PathBuf>,
    #[arg(long, global = true, hide = true, env = "OVS_APPLIANCE_PROC_ROOT")]
    proc_root: Option<PathBuf>,
    #[arg(long, global = true, hide = true, env = "OVS_APPLIANCE_MODULES_ROOT")]
    modules_root: Option<PathBuf>,
    #[arg(long, global = true, hide = true, env = "OVS_APPLIANCE_DEV_ROOT")]
    dev_root: Option<PathBuf>,
    #[arg(long, global = true, hide = true, env = "OVS_APPLIANCE_MODPROBE")]
    modprobe: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check, start and supervise OVS (the default; PID 1 of the image).
    Run,
    /// Print the preflight report; exit non-zero with the fix when something is missing.
    Check,
    /// Check the config file only (exit 65 listing every error).
    Validate,
    /// Print what `run` would change in the live OVSDB now.
    Plan {
        /// Machine-readable: changes, conflicts and the exact OVSDB operations.
        #[arg(long)]
        json: bool,
    },
    /// Apply the config once against the live OVSDB, then exit.
    Apply,
    /// Daemons, bridges and ports (owned or not), drift and interface errors.
    Status,
    /// Exit 0 when the health endpoint answers 200 within 2 s, else 1 (the image's HEALTHCHECK).
    Healthcheck {
        #[arg(long, env = "OVS_APPLIANCE_HEALTH_URL", default_value = app::DEFAULT_HEALTH_URL)]
        url: String,
    },
    /// Print the Ignition config (Fedora CoreOS) that runs IMAGE with the --config file.
    Ignition {
        /// The image reference the host pulls, e.g. quay.io/you/ovs-appliance:0.1.0.
        #[arg(long)]
        image: String,
    },
    /// Print the Kubernetes manifests (DaemonSet for every Linux node) that run IMAGE with the
    /// --config file.
    Kubernetes {
        /// The image reference the nodes pull.
        #[arg(long)]
        image: String,
        #[arg(long, default_value = ovs_appliance::kubernetes::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Print the Grafana dashboard ConfigMap instead (for Grafana's dashboard sidecar).
        #[arg(long, conflicts_with = "podmonitor")]
        dashboard: bool,
        /// Print a PodMonitor for the Prometheus Operator instead.
        #[arg(long)]
        podmonitor: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // First: `run` handles SIGHUP, SIGINT and SIGTERM; until it can, they wait.
    let held = app::hold_signals();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // `run` logs to stdout (one stream for `docker logs`); the other commands print their
    // answer there, so their logs go to stderr.
    let to_stdout = matches!(cli.command, None | Some(Command::Run));
    // The other commands take signals as any program does.
    let held = to_stdout.then_some(held);
    // Held to the end of main: what is still queued is written before the exit (briefly).
    let _flush = match init_tracing(cli.log_format, to_stdout) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("failed to start the log writer thread: {e}");
            return ExitCode::from(70);
        }
    };
    let r = cli.roots;
    let paths = app::host_paths(
        r.sys_root,
        r.proc_root,
        r.modules_root,
        r.dev_root,
        r.modprobe,
    );
    let config = cli.config.as_deref();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => app::run(config, &paths, held.unwrap_or_else(app::hold_signals)),
        Command::Check => app::check(config, &paths),
        Command::Validate => app::validate(config).map(|config| {
            print!("{}", app::expansions_text(&config));
            println!("config is valid");
        }),
        Command::Plan { json } => app::plan(config, &paths.kernel, json),
        Command::Apply => app::apply(config, &paths.kernel),
        Command::Status => app::status(config, &paths.kernel),
        Command::Healthcheck { url } => app::healthcheck(&url, app::HEALTH_TIMEOUT),
        Command::Ignition { image } => app::ignition(config, &image),
        Command::Kubernetes {
            image,
            namespace,
            dashboard,
            podmonitor,
        } => {
            let part = match (dashboard, podmonitor) {
                (true, _) => ovs_appliance::kubernetes::Part::Dashboard,
                (_, true) => ovs_appliance::kubernetes::Part::PodMonitor,
                _ => ovs_appliance::kubernetes::Part::Node,
            };
            app::kubernetes(config, &image, &namespace, part)
        }
        Command::Version => {
            println!("ovs-appliance {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs go through a bounded queue that one thread writes out: whoever reads our output can
/// stall without stalling us or the daemons (lines are dropped and counted instead).
fn init_tracing(format: LogFormat, to_stdout: bool) -> std::io::Result<supervisor::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OVS_APPLIANCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let out: Box<dyn std::io::Write + Send> = if to_stdout {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::io::stderr())
    };
    let limits = supervisor::LogLimits::DEFAULT;
    let (sink, guard) = supervisor::LogSink::start(out, limits, supervisor::report_with_tracing())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(guard)
}
