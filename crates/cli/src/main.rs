//! berth: a command line client with docker's commands, flags and output, talking to berthd
//! (or any Docker Engine API) over a unix socket.

mod cmd;

use clap::{Parser, Subcommand};

use cmd::network;
use cmd::registry;
use cmd::{
    Cli, build, containers, cp, events, exec, images, inspect, logs, ps, run, stats, system,
    volumes,
};

#[derive(Parser)]
#[command(
    name = "berth",
    about = "A self-sufficient runtime for containers",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Root {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    /// Set the logging level
    #[arg(short = 'l', long = "log-level", hide = true)]
    _log_level: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug", hide = true)]
    _debug: bool,
    /// Location of client config files
    #[arg(long = "config", hide = true)]
    _config: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Container(ContainerOps),
    /// List containers
    Ps(ps::PsArgs),
    /// Return low-level information on Docker objects
    Inspect(inspect::InspectArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// List images
    Images(images::LsArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Manage builds
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Manage containers
    #[command(name = "container")]
    ContainerGroup {
        #[command(subcommand)]
        command: ContainerCommand,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Authenticate to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Search Docker Hub for images
    Search(registry::SearchArgs),
    /// Show the Docker version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Manage Docker
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: volumes::VolumeCommand,
    },
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: network::NetworkCommand,
    },
    /// Run berth's own OCI registry server (`berth registry serve --addr … --root …`)
    Registry {
        /// Arguments for berth-registry (serve, gc, htpasswd)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The container commands that exist both at the top level and under `container`.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ContainerOps {
    /// Attach local standard input, output, and error streams to a running container
    Attach(run::AttachArgs),
    /// Create a new image from a container's changes
    Commit(containers::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(run::CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(containers::OneArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(containers::ExportArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Pause all processes within one or more containers
    Pause(containers::NamesArgs),
    /// List port mappings or a specific mapping for the container
    Port(containers::PortArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(containers::RmArgs),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(run::RunArgs),
    /// Start one or more stopped containers
    Start(run::StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::NamesArgs),
    /// Update configuration of one or more containers
    Update(containers::UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::NamesArgs),
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ContainerCommand {
    #[command(flatten)]
    Ops(ContainerOps),
    /// List containers
    #[command(aliases = ["ps", "list"])]
    Ls(ps::PsArgs),
    /// Display detailed information on one or more containers
    Inspect(inspect::ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(containers::PruneArgs),
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Remove build cache
    Prune(build::PruneArgs),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// List images
    #[command(alias = "list")]
    Ls(images::LsArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive
    Save(images::SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(images::RmArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::ImageInspectArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Show docker disk usage
    Df(system::DfArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
}

fn container_op(cli: &Cli, op: ContainerOps) -> cmd::CmdResult {
    match op {
        ContainerOps::Attach(a) => run::attach(cli, a),
        ContainerOps::Commit(a) => containers::commit(cli, a),
        ContainerOps::Cp(a) => cp::cp(cli, a),
        ContainerOps::Create(a) => run::create(cli, a),
        ContainerOps::Diff(a) => containers::diff(cli, a),
        ContainerOps::Exec(a) => exec::exec(cli, a),
        ContainerOps::Export(a) => containers::export(cli, a),
        ContainerOps::Kill(a) => containers::kill(cli, a),
        ContainerOps::Logs(a) => logs::logs(cli, a),
        ContainerOps::Pause(a) => containers::pause(cli, a),
        ContainerOps::Port(a) => containers::port(cli, a),
        ContainerOps::Rename(a) => containers::rename(cli, a),
        ContainerOps::Restart(a) => containers::restart(cli, a),
        ContainerOps::Rm(a) => containers::rm(cli, a),
        ContainerOps::Run(a) => run::run(cli, a),
        ContainerOps::Start(a) => run::start(cli, a),
        ContainerOps::Stats(a) => stats::stats(cli, a),
        ContainerOps::Stop(a) => containers::stop(cli, a),
        ContainerOps::Top(a) => containers::top(cli, a),
        ContainerOps::Unpause(a) => containers::unpause(cli, a),
        ContainerOps::Update(a) => containers::update(cli, a),
        ContainerOps::Wait(a) => containers::wait(cli, a),
    }
}

fn main() {
    let root = match Root::try_parse() {
        Ok(r) => r,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 125,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if root.version {
        println!("berth version {}", berth_api::VERSION);
        return;
    }
    let Some(command) = root.command else {
        let _ = <Root as clap::CommandFactory>::command().print_help();
        return;
    };
    // The registry server is its own binary next to this one; it needs no daemon.
    if let Command::Registry { args } = &command {
        use std::os::unix::process::CommandExt;
        let bin = std::env::current_exe()
            .map(|p| p.with_file_name("berth-registry"))
            .unwrap_or_else(|_| "berth-registry".into());
        let err = std::process::Command::new(&bin).args(args).exec();
        eprintln!("berth: cannot run {}: {err}", bin.display());
        std::process::exit(127);
    }
    let cli = match Cli::new(root.host.as_deref()) {
        Ok(c) => c,
        Err(e) => cmd::fail(e.into()),
    };
    let result = match command {
        Command::Container(op) => container_op(&cli, op),
        Command::Ps(a) => ps::ps(&cli, a),
        Command::Events(a) => events::events(&cli, a),
        Command::ContainerGroup { command } => match command {
            ContainerCommand::Ops(op) => container_op(&cli, op),
            ContainerCommand::Ls(a) => ps::ps(&cli, a),
            ContainerCommand::Inspect(a) => inspect::container_inspect(&cli, a),
            ContainerCommand::Prune(a) => containers::prune(&cli, a),
        },
        Command::Images(a) => images::ls(&cli, a),
        Command::Build(a) => build::build(&cli, a),
        Command::Builder { command } => match command {
            BuilderCommand::Prune(a) => build::prune(&cli, a),
            BuilderCommand::Build(a) => build::build(&cli, *a),
        },
        Command::Import(a) => images::import(&cli, a),
        Command::Load(a) => images::load(&cli, a),
        Command::Save(a) => images::save(&cli, a),
        Command::Tag(a) => images::tag(&cli, a),
        Command::Rmi(a) => images::rm(&cli, a),
        Command::History(a) => images::history(&cli, a),
        Command::Inspect(a) => inspect::inspect(&cli, a),
        Command::Image { command } => match command {
            ImageCommand::Build(a) => build::build(&cli, a),
            ImageCommand::Ls(a) => images::ls(&cli, a),
            ImageCommand::Import(a) => images::import(&cli, a),
            ImageCommand::Load(a) => images::load(&cli, a),
            ImageCommand::Save(a) => images::save(&cli, a),
            ImageCommand::Tag(a) => images::tag(&cli, a),
            ImageCommand::Rm(a) => images::rm(&cli, a),
            ImageCommand::History(a) => images::history(&cli, a),
            ImageCommand::Inspect(a) => inspect::image_inspect(&cli, a),
            ImageCommand::Prune(a) => images::prune(&cli, a),
            ImageCommand::Pull(a) => registry::pull(&cli, a),
            ImageCommand::Push(a) => registry::push(&cli, a),
        },
        Command::Pull(a) => registry::pull(&cli, a),
        Command::Push(a) => registry::push(&cli, a),
        Command::Login(a) => registry::login(&cli, a),
        Command::Logout(a) => registry::logout(&cli, a),
        Command::Search(a) => registry::search(&cli, a),
        Command::Version(a) => system::version(&cli, a),
        Command::Info(a) => system::info(&cli, a),
        Command::System { command } => match command {
            SystemCommand::Df(a) => system::df(&cli, a),
            SystemCommand::Info(a) => system::info(&cli, a),
            SystemCommand::Events(a) => events::events(&cli, a),
        },
        Command::Volume { command } => volumes::run(&cli, command),
        Command::Network { command } => network::run(&cli, command),
        Command::Registry { .. } => unreachable!("handled before connecting"),
    };
    if let Err(e) = result {
        cmd::fail(e);
    }
}
