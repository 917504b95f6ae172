//! The `nimbus` binary: argument parsing and wiring. Everything else lives in the crates.

mod admin;
mod apigateway_regions;
mod batch_wiring;
mod cfn_wiring;
mod cloudcontrol;
mod console_wiring;
mod dynamodb_open;
mod ecr_accounts;
mod home;
mod lambda_regions;
mod lazy;
mod lock;
mod logs_home;
mod metrics_home;
mod probes;
mod regional;
mod regions;
mod sfn_wiring;
mod sqs_home;
mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nimbus_api::clock::{Clock, SystemClock, VirtualClock};
use nimbus_api::{Api, Identity, Protocol, Service};
use nimbus_eventbridge::EventBridge;
use nimbus_functions::{ApiAcceptor, Engine, EngineConfig};
use nimbus_lambda::{Lambda, LambdaOptions};
use nimbus_sandbox::{Isolation, Sandbox};
use nimbus_store::code::CodeStore;
use nimbus_store::{Blobs, Cluster, Database, LambdaStore};

#[derive(Parser)]
#[command(name = "nimbus", version, about = "AWS's compute services for data work, on your machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run nimbus in the foreground until interrupted.
    Up(UpArgs),
    #[command(flatten)]
    Client(nimbus_cli::ClientCommand),
}

#[derive(clap::Args)]
struct UpArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 4566)]
    port: u16,
    /// Where the database, code packages and environments' files live.
    #[arg(long, default_value = "./.nimbus")]
    data_dir: PathBuf,
    /// Keep every service's state in this PostgreSQL database
    /// (`postgres://user:password@host:port/db`) instead of SQLite files in the data directory:
    /// several nimbus nodes on one database serve the same functions, buckets and events.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// With several nodes: a directory every node mounts (NFS, say) for code packages, object
    /// bytes and log segments. Without it they stay in the data directory.
    #[arg(long, value_name = "DIR")]
    shared_dir: Option<PathBuf>,
    /// This node's name among several; default `<host name>-<port>` on PostgreSQL, `local` on
    /// SQLite.
    #[arg(long)]
    node: Option<String>,
    /// Seconds without a heartbeat after which a node counts as gone and others take over its
    /// unfinished asynchronous invocations.
    #[arg(long, default_value_t = 10)]
    node_expiry: u64,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "000000000000")]
    account: String,
    /// Seconds an idle execution environment is kept warm.
    #[arg(long, default_value_t = 600)]
    keep_alive: u64,
    /// Invocations running at once across all functions (AWS's account concurrency).
    #[arg(long, default_value_t = 1000)]
    max_concurrency: usize,
    /// Share of the host's memory that running environments' MemorySize may add up to.
    #[arg(long, default_value_t = 0.5)]
    memory_share: f64,
    /// Seconds running invocations get to finish when nimbus stops.
    #[arg(long, default_value_t = 10)]
    grace: u64,
    /// Multiplies AWS's delays between retries of failed asynchronous invocations (about one
    /// minute, then two): 0.01 makes them 0.6 s and 1.2 s for local work and tests.
    #[arg(long, default_value_t = 1.0)]
    retry_delay_scale: f64,
    /// Do not echo functions' output on nimbus's stderr.
    #[arg(long)]
    quiet: bool,
    /// How environments are isolated: `auto` uses namespaces and cgroups where the host allows
    /// them and says so when it falls back to plain processes.
    #[arg(long, value_enum, default_value_t = IsolationArg::Auto)]
    isolation: IsolationArg,
    /// Seconds between DynamoDB's TTL sweeps (AWS deletes expired items within days; tests want
    /// seconds).
    #[arg(long, default_value_t = 30, hide = true)]
    dynamodb_ttl_sweep_seconds: u64,
    /// Let functions reach services listening on the host's loopback (a local database, say)
    /// at 10.0.2.2; by default each environment's network reaches only the outside world and
    /// nimbus's API.
    #[arg(long)]
    host_loopback: bool,
    /// Answer Kinesis puts past a shard's write limits (1 MiB/s, 1,000 records/s) with
    /// `ProvisionedThroughputExceededException`, as AWS does; off, nothing is throttled.
    #[arg(long)]
    kinesis_limits: bool,
    /// `virtual`: schedules, retries and windows follow a clock that `POST
    /// /_nimbus/clock/advance?seconds=N` (or `nimbus clock advance`) moves forward, for tests
    /// that jump an hour without waiting one. Real time still passes between jumps.
    #[arg(long, value_enum, default_value_t = ClockArg::Real)]
    clock: ClockArg,
    /// What this host lends to EC2 instances: `vcpus=N,memory=GiB[,scale=F]` (default: the
    /// host's CPUs and memory). Launches past it fail with `InsufficientInstanceCapacity`. With
    /// `scale=8` an instance holds (and is limited to) an eighth of its type's vCPUs and memory,
    /// so a 96-vCPU type fits a laptop.
    #[arg(long, value_name = "vcpus=N,memory=GiB[,scale=F]")]
    capacity: Option<String>,
    /// Seconds between a spot interruption notice and the interruption (AWS: 120); the wait
    /// follows nimbus's clock, so `--clock virtual` can skip it.
    #[arg(long, default_value_t = 120)]
    spot_notice_seconds: u64,
    /// Chance per hour (0-1) that a running spot instance is interrupted, checked every minute
    /// of nimbus's clock; 0 (default): only `POST /_nimbus/ec2/interrupt` and the spot price
    /// passing an instance's max price interrupt.
    #[arg(long, default_value_t = 0.0)]
    spot_interruption_rate: f64,
    /// Seconds (nimbus's clock) a Batch instance stays idle before it is retired down to its
    /// compute environment's `minvCpus` (unless `minScaleDownDelayMinutes` says otherwise).
    #[arg(long, default_value_t = 300)]
    batch_idle_seconds: u64,
    /// Runs the jobs of UNMANAGED Batch compute environments on a Slurm cluster:
    /// `partition=NAME` (environments without the `nimbus:slurm-partition` tag go there; empty:
    /// the cluster's default), `conf=PATH` (SLURM_CONF for sbatch/squeue/scancel), `spool=DIR`
    /// (jobs' scripts and output, on a file system the nodes share); `--slurm default` alone.
    #[arg(long)]
    slurm: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClockArg {
    Real,
    Virtual,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum IsolationArg {
    Auto,
    Namespaces,
    Process,
}

fn main() -> anyhow::Result<ExitCode> {
    // Step Functions' JSONata worker: nimbus runs itself, bounded, to evaluate expressions.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == nimbus_stepfunctions::asl::jsonata::workers::WORKER_ARG)
    {
        return Ok(nimbus_stepfunctions::asl::jsonata::workers::serve());
    }
    match Cli::parse().command {
        Command::Up(args) => {
            // SAFETY: geteuid has no arguments and cannot fail.
            if unsafe { libc::geteuid() } == 0 && !matches!(args.isolation, IsolationArg::Process) {
                if let Err(error) = nimbus_sandbox::own_mount_namespace() {
                    eprintln!("nimbus: no mount namespace of its own ({error}); leftovers are cleared at the next start");
                }
            }
            nimbus_stepfunctions::asl::jsonata::workers::enable(PathBuf::from("/proc/self/exe"));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            if let Err(error) = runtime.block_on(up(args)) {
                eprintln!("nimbus: {error:#}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        // The client commands are blocking and need no runtime.
        Command::Client(command) => Ok(nimbus_cli::run(command)),
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let address: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid address {}:{}", args.host, args.port))?;
    let mut lock = lock::DataDirLock::acquire(&data_dir)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    lock.record(address)?;
    let endpoint_url = format!("http://{address}");

    let database = match &args.database {
        None => Database::sqlite(&data_dir),
        Some(url) => Database::postgres(url).context("cannot open the database")?,
    };
    // Several nodes only on PostgreSQL; on SQLite this node is alone and pays nothing for them.
    let (node, cluster) = match &database {
        Database::Sqlite { .. } => (args.node.clone().unwrap_or_else(|| "local".to_owned()), None),
        Database::Postgres(_) => {
            let instance = data_dir_instance(&data_dir)?;
            // Stable across restarts on any port: its events and metrics are found again.
            let node = args.node.clone().unwrap_or_else(|| format!("{}-{}", host_name(), &instance[..8]));
            let expiry = Duration::from_secs(args.node_expiry.max(1));
            let cluster = Cluster::join(&database, &node, &instance, &endpoint_url, expiry)
                .context("cannot join the cluster")?;
            (node, Some(cluster))
        }
    };
    let blobs = match &args.shared_dir {
        Some(dir) => Blobs::new(dir, &node, true),
        None => Blobs::new(&data_dir, &node, false),
    };
    let identity = identity_of(&args);
    // Which other regions and accounts hold state (one look at the data directory or the schema
    // names): their services resume from it, and none is asked about otherwise.
    let stored = regional::Stored::scan(&database, &identity);
    let state = State { args: &args, database: &database, blobs: &blobs, node: &node, identity: &identity };
    let Opened { store, code, sandbox, logs, sqs } = open_state(&state)?;
    let virtual_clock = (args.clock == ClockArg::Virtual).then(|| Arc::new(VirtualClock::default()));
    let clock: Arc<dyn Clock> = match &virtual_clock {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let ecr = ecr_service(&state, &stored, address.port(), clock.clone());
    let kinesis = kinesis_service(&state, cluster.as_ref(), clock.clone());
    kinesis.resume(&stored, &nimbus_kinesis::SCHEMA, regions::kinesis_streams);
    // With several nodes SQS and Logs are served by one node each (see `home`).
    let sqs = Arc::new(match (&cluster, sqs) {
        (None, Some(sqs)) => home::Home::alone(sqs_home::shape(), regions::sqs(&database, &identity, sqs)),
        (cluster, _) => {
            let cluster = cluster.clone().context("SQS is opened where it is held")?;
            let (database, identity) = (database.clone(), identity.clone());
            home::Home::shared(sqs_home::shape(), cluster, move || {
                let sqs = nimbus_sqs::Sqs::open(&database, &identity.region, &identity.account)
                    .map_err(|e| e.to_string())?;
                Ok(regions::sqs(&database, &identity, sqs))
            })
        }
    });
    let log_subscriber = regions::LogSubscriber::default();
    let logs = Arc::new(match (&cluster, logs) {
        (None, Some(logs)) => {
            let regional = regions::logs(&database, &blobs, &identity, logs, log_subscriber.clone());
            home::Home::alone(logs_home::shape(), regional)
        }
        (cluster, _) => {
            let cluster = cluster.clone().context("Logs is opened where it is held")?;
            let (database, blobs, identity) = (database.clone(), blobs.clone(), identity.clone());
            let subscriber = log_subscriber.clone();
            home::Home::shared(logs_home::shape(), cluster, move || {
                let logs =
                    nimbus_logs::open(&database, &blobs, identity.clone()).map_err(|e| e.to_string())?;
                Ok(regions::logs(&database, &blobs, &identity, logs, subscriber.clone()))
            })
        }
    });
    // Serve them here from the start when no other node does.
    sqs.balance().await;
    logs.balance().await;
    let log_sink = logs_home::LogsSink::new(logs.clone());
    // Environments' private directories from a previous run are garbage now.
    let tmp_root = data_dir.join("tmp");
    let _ = std::fs::remove_dir_all(&tmp_root);
    // So are the stand-ins that answered read-only calls to regions that hold nothing.
    regional::set_probe_root(tmp_root.join("probes"));
    let api_acceptor: ApiAcceptor = Arc::default();
    // With several nodes one node keeps the figures (one snapshot); the others send it theirs.
    let metrics = Arc::new(match &cluster {
        None => {
            let figures = nimbus_metrics::Metrics::open(&blobs, &node).context("cannot open metrics")?;
            home::Home::alone(metrics_home::shape(), metrics_home::Served::new(figures, None))
        }
        Some(cluster) => {
            let (blobs, secret) = (blobs.clone(), cluster.secret().to_owned());
            home::Home::shared(metrics_home::shape(), cluster.clone(), move || {
                let figures = nimbus_metrics::Metrics::open(&blobs, "shared").map_err(|e| e.to_string())?;
                Ok(metrics_home::Served::new(figures, Some(secret.clone())))
            })
        }
    });
    metrics.balance().await;
    let secret = cluster.as_ref().map(|cluster| cluster.secret().to_owned());
    let metrics_sink = metrics_home::MetricsSinkHome::new(metrics.clone(), secret);
    let engine = Engine::new(
        EngineConfig {
            runtime_dir: data_dir.join("runtime"),
            tmp_root,
            keep_alive: Duration::from_secs(args.keep_alive),
            max_concurrency: args.max_concurrency,
            memory_budget_mb: (host_memory_mb() as f64 * args.memory_share) as u64,
            init_timeout: Duration::from_secs(10),
            echo_output: !args.quiet,
            api_acceptor: api_acceptor.clone(),
            log_sink: Some(log_sink.clone()),
            metrics: Some(metrics_sink),
        },
        sandbox.clone(),
    )?;
    let options = LambdaOptions {
        identity,
        endpoint_url: endpoint_url.clone(),
        file_systems: data_dir.join("file-systems"),
        retry_delay_scale: args.retry_delay_scale,
        queues: Some(sqs.clone()),
    };
    let region = options.identity.region.clone();
    let account = options.identity.account.clone();
    if let Some(announcer) = cluster.clone() {
        store.on_change(move || announcer.notify(&format!("lambda:{}", announcer.node())));
    }
    // Other regions' (and accounts') Lambda, opened on first use, is made with these parts.
    let lambda_parts = Arc::new(lambda_regions::Parts {
        node: node.clone(),
        code: code.clone(),
        engine: engine.clone(),
        endpoint_url: endpoint_url.clone(),
        file_systems: options.file_systems.clone(),
        retry_delay_scale: options.retry_delay_scale,
        queues: options.queues.clone(),
        logs: log_sink.clone(),
        metrics: metrics.clone(),
        shared: cluster.is_some(),
        objects: Default::default(),
        images: Default::default(),
        destinations: Default::default(),
        streams: Default::default(),
    });
    let lambda = Lambda::start(store.clone(), code, engine.clone(), options)?;
    let lambda_regions =
        lambda_regions::regions(&database, &identity_of(&args), lambda.clone(), lambda_parts.clone());
    let functions = Arc::new(lambda_regions::Functions(lambda_regions.clone()));
    // SNS opens on its first request, or now when HTTP/S deliveries wait in its outbox.
    let sns = {
        let deliveries: Arc<dyn nimbus_sns::Deliver> =
            Arc::new(wiring::SnsDeliveries { lambda: functions.clone(), sqs: sqs.clone() });
        let (opening, endpoint_url) = (database.clone(), endpoint_url.clone());
        let (region, account) = (region.clone(), account.clone());
        let open = move |database: &Database, identity: &Identity| {
            nimbus_sns::Sns::open(
                database,
                &identity.region,
                &identity.account,
                &endpoint_url,
                deliveries.clone(),
            )
        };
        let home_open = open.clone();
        let home = lazy::Lazy::new("sns", nimbus_api::Protocol::Query, move || {
            home_open(&opening, &Identity { region: region.clone(), account: account.clone() })
        });
        regional::Regional::new(home, &database, &identity_of(&args), open)
    };
    sns.resume(&stored, &nimbus_sns::SCHEMA, regions::sns_pending);
    // Deliveries waiting from a previous run are made without waiting for a request; a nimbus
    // that never used SNS has nothing to ask (and starts no thread to ask it).
    if database.is_shared() || database.has_schema(&nimbus_sns::SCHEMA) {
        let (sns, database) = (sns.home().clone(), database.clone());
        tokio::spawn(async move {
            let pending = tokio::task::spawn_blocking(move || nimbus_sns::Sns::has_pending(&database)).await;
            if matches!(pending, Ok(true)) {
                if let Err(error) = sns.get().await {
                    eprintln!("nimbus: cannot open SNS to make its pending deliveries: {error}");
                }
            }
        });
    }
    // Step Functions opens on its first request, or at start when executions were left running.
    let (stepfunctions, sfn_services) = sfn_wiring::service(sfn_wiring::Opening {
        database: &database,
        identity: identity_of(&args),
        clock: clock.clone(),
        cluster: cluster.clone(),
        node: &node,
        sns: sns.clone(),
    });
    let event_targets = Arc::new(wiring::EventTargets {
        lambda: functions.clone(),
        sqs: sqs.clone(),
        sns: sns.clone(),
        kinesis: kinesis.clone(),
        batch: std::sync::OnceLock::new(),
        stepfunctions: stepfunctions.clone(),
    });
    let events = {
        let (database, identity, clock, node) =
            (database.clone(), identity_of(&args), clock.clone(), node.clone());
        let targets: Arc<dyn nimbus_eventbridge::Targets> = event_targets.clone();
        let open = move |database: &Database, identity: &Identity| {
            EventBridge::open(database, identity.clone(), clock.clone(), targets.clone(), &node)
                .map_err(|e| e.to_string())
        };
        let (home_open, opening, home_identity) = (open.clone(), database.clone(), identity.clone());
        let home = lazy::Lazy::new("events", Protocol::Json, move || home_open(&opening, &home_identity));
        regional::Regional::new(home, &database, &identity, open)
    };
    events.resume(&stored, &nimbus_eventbridge::SCHEMA, regions::any_state);
    let notifications = Arc::new(wiring::S3Notifications {
        lambda: functions.clone(),
        sqs: sqs.clone(),
        sns: sns.clone(),
        events: events.clone(),
        account: account.clone(),
    });
    let s3 = nimbus_s3::S3::open_on(&database, &blobs, Some(notifications), &region, &account)
        .context("cannot open S3")?;
    s3.run_lifecycle(clock.clone());
    let seen_nodes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cluster_work = wiring::run_cluster(
        cluster.clone(),
        lambda.clone(),
        store.clone(),
        [sqs.clone(), logs.clone(), metrics.clone()],
        seen_nodes.clone(),
        events.home().clone(),
    );
    let objects: Arc<dyn nimbus_lambda::Objects> = Arc::new(wiring::S3Objects(s3.clone()));
    let images: Arc<dyn nimbus_lambda::images::ImageStore> = Arc::new(wiring::LambdaImages(ecr.clone()));
    lambda.set_objects(objects.clone());
    lambda.set_images(images.clone());
    let _ = (lambda_parts.objects.set(objects), lambda_parts.images.set(images));
    // Logs subscription filters invoke functions (on a node alone; see the README).
    if let Some(regional) = logs.local() {
        let subscriptions: Arc<dyn nimbus_logs::Subscriber> = Arc::new(wiring::LogSubscriptions {
            lambda: functions.clone(),
            s3: s3.clone(),
            kinesis: kinesis.clone(),
            metrics: metrics.clone(),
        });
        let _ = log_subscriber.set(subscriptions.clone());
        for opened in regional.opened() {
            opened.set_subscriber(subscriptions.clone());
        }
    }
    let scheduler = {
        let home_events = events.home().clone();
        let home = lazy::Lazy::new("scheduler", Protocol::RestJson, move || {
            let opened = tokio::runtime::Handle::current().block_on(home_events.get())?;
            Ok(opened.scheduler())
        });
        regions::scheduler(&database, &identity_of(&args), home, events.clone())
    };
    // Rules and schedules stored earlier fire without waiting for a request.
    if nimbus_eventbridge::has_state(&database) {
        if let Err(why) = events.home().get().await {
            eprintln!("nimbus: cannot open EventBridge: {why}");
        }
    }
    let destinations: Arc<dyn nimbus_lambda::Destinations> =
        Arc::new(wiring::LambdaDestinations { events: events.clone(), sns: sns.clone() });
    lambda.set_destinations(destinations.clone());
    let _ = lambda_parts.destinations.set(destinations);
    let ttl_sweep = Duration::from_secs(args.dynamodb_ttl_sweep_seconds.max(1));
    let (dynamodb, dynamodb_streams) = regions::dynamodb(
        &database,
        &identity_of(&args),
        ttl_sweep,
        dynamodb_open::services(&database, identity_of(&args), ttl_sweep),
    );
    dynamodb_open::resume_background(&database, dynamodb.home().clone());
    dynamodb.resume(&stored, &nimbus_dynamodb::SCHEMA, regions::dynamodb_background);
    let streams: Arc<dyn nimbus_lambda::Streams> = Arc::new(wiring::LambdaStreams {
        kinesis: kinesis.clone(),
        dynamodb: dynamodb.clone(),
        sqs: sqs.clone(),
        clock: clock.clone(),
        identity: identity_of(&args),
        woken: tokio::sync::watch::Sender::new(0),
        forwarding: Default::default(),
    });
    lambda.set_streams(streams.clone());
    let _ = lambda_parts.streams.set(streams);
    // API Gateway opens on its first call (its front door is told by host or path, so it needs
    // no open service to claim requests), or now in every region that holds APIs: their first
    // request then pays no opening, and the front door knows every API id.
    let apigateway =
        apigateway_regions::regions(&database, &identity_of(&args), lambda_regions.clone(), log_sink.clone());
    apigateway.resume(&stored).await;
    let (ec2, autoscaling) = ec2_services(Ec2Wiring {
        args: &args,
        database: &database,
        node: &node,
        endpoint_url: &endpoint_url,
        clock: clock.clone(),
        sandbox: sandbox.clone(),
        acceptor: &api_acceptor,
        events: &events,
        alarms: Arc::new(wiring::ScalingAlarms(metrics.clone(), account.clone())),
        function_usage: Arc::new(wiring::FunctionUsage(metrics.clone())),
    })?;
    // CloudWatch alarms take their actions (on a node alone; see the README).
    if let Some(served) = metrics.local() {
        let actions =
            Arc::new(wiring::AlarmActions { sns: sns.clone(), lambda: functions.clone(), ec2: ec2.clone() });
        served.metrics().set_identity(&region, &account);
        served.metrics().set_clock(clock.clone());
        served.metrics().set_alarm_sink(actions.clone(), regions::ALARM_EVALUATION);
        let home = served.metrics().clone();
        let regional =
            regions::metrics(&database, &blobs, &node, &identity_of(&args), home, clock.clone(), actions);
        regions::resume_metrics(&regional, &stored, &blobs, &identity_of(&args));
        served.set_regions(regional);
    }
    // Instances that were running when nimbus stopped are settled (and replaced) from the start.
    if nimbus_ec2::Ec2::has_instances(&database) {
        if let Err(error) = ec2.get().await {
            eprintln!("nimbus: cannot open EC2: {error}");
        }
    }
    batch_wiring::slurm_settings(args.slurm.as_deref())?;
    let batch = batch_wiring::service(
        &args,
        &database,
        cluster.as_ref(),
        clock.clone(),
        &ec2,
        &log_sink,
        &events,
        &ecr,
    );
    let _ = event_targets.batch.set(batch.clone());
    // Jobs queued or running, or instances held, when nimbus stopped: settled from the start.
    if nimbus_batch::Batch::has_work(&database) {
        if let Err(error) = batch.get().await {
            eprintln!("nimbus: cannot open Batch: {error}");
        }
    }
    let admin = Arc::new(admin::Admin {
        clock: clock.clone(),
        virtual_clock,
        events: events.home().clone(),
        apigateway: apigateway.clone(),
        lambda: lambda.clone(),
        lambda_regions: lambda_regions.clone(),
        port: address.port(),
    });
    // Streams already on disk: their retention sweep runs from the start.
    if !database.is_shared() && data_dir.join(nimbus_kinesis::SQLITE_FILE).exists() {
        if let Err(error) = kinesis.home().get().await {
            eprintln!("nimbus: cannot open Kinesis: {error}");
        }
    }
    // IAM and STS: stores, opened by their first request.
    let iam = {
        let (database, account) = (database.clone(), account.clone());
        lazy::Lazy::new("iam", Protocol::Query, move || nimbus_iam::Iam::open(&database, &account))
    };
    let sts = {
        let iam = iam.clone();
        lazy::Lazy::new("sts", Protocol::Query, move || {
            let opened = tokio::runtime::Handle::current().block_on(iam.get())?;
            Ok(opened.sts())
        })
    };
    // CodeDeploy opens with the first stack that names it (or its first request).
    let codedeploy = {
        let (database, clock) = (database.clone(), clock.clone());
        let targets = Arc::new(cfn_wiring::CodeDeployTargets {
            lambda: lambda_regions.clone(),
            metrics: metrics.clone(),
        });
        lazy::Lazy::new("codedeploy", Protocol::Json, move || {
            nimbus_codedeploy::CodeDeploy::open(&database, clock.clone(), targets.clone()).map(Arc::new)
        })
    };
    let cloudcontrol = {
        let lambda: Arc<dyn Service> = lambda_regions.clone();
        lazy::Lazy::new("cloudcontrol", Protocol::Json, move || {
            Ok(Arc::new(cloudcontrol::CloudControl { lambda: lambda.clone() }))
        })
    };
    // CloudFormation opens on its first request, or now when a stop interrupted a stack's
    // operation (it is then rolled back or finished). Its providers open their services on use.
    let cloudformation = cloudformation_service(CfnWiring {
        database: &database,
        identity: identity_of(&args),
        endpoint_url: &endpoint_url,
        node: &node,
        lambda: lambda_regions.clone(),
        s3: s3.clone(),
        codedeploy: codedeploy.clone(),
        providers: vec![
            {
                let regions = lambda_regions.clone();
                let home = Arc::new(nimbus_lambda::provider::FunctionProvider::new(lambda.clone()));
                cfn_wiring::PerRegion::new(home, move |region, account| {
                    let lambda: Arc<dyn Service> = regions.at(region, account)?;
                    Ok(Arc::new(nimbus_lambda::provider::FunctionProvider::new(lambda)))
                })
            },
            Arc::new(nimbus_s3::provider::BucketProvider::new(s3.clone())),
            {
                let (sqs, host) = (sqs.clone(), address.to_string());
                let home = Arc::new(nimbus_sqs::provider::QueueProvider::new(sqs.clone(), &host));
                cfn_wiring::PerRegion::new(home, move |region, account| {
                    let signed = cfn_wiring::SignedFor::wrap(sqs.clone(), region, account)?;
                    Ok(Arc::new(nimbus_sqs::provider::QueueProvider::new(signed, &host)))
                })
            },
            {
                let logs = logs.clone();
                let home = Arc::new(nimbus_logs::provider::LogGroupProvider::new(logs.clone()));
                cfn_wiring::PerRegion::new(home, move |region, account| {
                    let signed = cfn_wiring::SignedFor::wrap(logs.clone(), region, account)?;
                    Ok(Arc::new(nimbus_logs::provider::LogGroupProvider::new(signed)))
                })
            },
            Arc::new(nimbus_metrics::provider::AlarmProvider(metrics.clone())),
            Arc::new(nimbus_iam::provider::IamProvider::new(iam.clone())),
            cfn_wiring::PerRegion::lazy(sns.clone(), nimbus_sns::provider::RESOURCE_TYPES),
            cfn_wiring::PerRegion::lazy(kinesis.clone(), nimbus_kinesis::provider::RESOURCE_TYPES),
            cfn_wiring::PerRegion::lazy(dynamodb.clone(), nimbus_dynamodb::provider::RESOURCE_TYPES),
            cfn_wiring::PerRegion::lazy(events.clone(), nimbus_eventbridge::provider::RESOURCE_TYPES),
            cfn_wiring::PerRegion::lazy(
                stepfunctions.clone(),
                nimbus_stepfunctions::provider::RESOURCE_TYPES,
            ),
            cfn_wiring::S3Bodies::new(
                cfn_wiring::PerRegion::lazy(
                    apigateway.regional().clone(),
                    nimbus_apigateway::provider::RESOURCE_TYPES,
                ),
                s3.clone(),
            ),
            cfn_wiring::LazyProvider::new(ec2.clone(), nimbus_ec2::provider::RESOURCE_TYPES),
            cfn_wiring::LazyProvider::new(
                autoscaling.clone(),
                nimbus_ec2::provider::AUTOSCALING_RESOURCE_TYPES,
            ),
            cfn_wiring::LazyProvider::new(batch.clone(), nimbus_batch::provider::RESOURCE_TYPES),
            {
                // Repositories are made in the stack's region (ECR's own) of the stack's account.
                let (ecr, types) = (ecr.clone(), nimbus_ecr::provider::RESOURCE_TYPES);
                let home = cfn_wiring::LazyProvider::new(ecr.home().clone(), types);
                cfn_wiring::PerRegion::new(home, move |_region, account| {
                    Ok(cfn_wiring::LazyProvider::new(ecr.for_account(account)?, types))
                })
            },
            cfn_wiring::LazyProvider::new(codedeploy.clone(), nimbus_codedeploy::provider::RESOURCE_TYPES),
        ],
    });
    if nimbus_cloudformation::CloudFormation::has_unfinished(&database) {
        if let Err(error) = cloudformation.home().get().await {
            eprintln!("nimbus: cannot open CloudFormation: {error}");
        }
    }
    cloudformation.resume(
        &stored,
        &nimbus_cloudformation::SCHEMA,
        nimbus_cloudformation::CloudFormation::has_unfinished,
    );
    // The console: static assets, and a live feed that runs only while a browser listens.
    let console_reach = Arc::new(console_wiring::ConsoleReach::default());
    let console = Arc::new(nimbus_console::Console::new(console_reach.clone()));
    // S3 claims every request that looks like a path: it goes last.
    let services: Vec<Arc<dyn Service>> = vec![
        admin,
        console,
        Arc::new(lambda_regions::LambdaFront(lambda_regions.clone())),
        sqs.clone(),
        logs.clone(),
        metrics.clone(),
        sns.clone(),
        kinesis,
        dynamodb.clone(),
        dynamodb_streams,
        events,
        scheduler,
        apigateway.clone(),
        Arc::new(apigateway_regions::GatewayV2(apigateway)),
        ec2.clone(),
        autoscaling,
        batch.clone(),
        iam,
        sts,
        ecr,
        stepfunctions.clone(),
        cloudformation,
        codedeploy,
        cloudcontrol,
        s3,
    ];
    let _ = sfn_services.services.set(services.clone());
    let _ = console_reach.services.set(services.clone());
    if nimbus_stepfunctions::has_unfinished(&database) {
        if let Err(error) = stepfunctions.home().get().await {
            eprintln!("nimbus: cannot open Step Functions: {error}");
        }
    }
    stepfunctions.resume(&stored, &nimbus_stepfunctions::SCHEMA, nimbus_stepfunctions::has_unfinished);
    // Other regions' functions: their pending asynchronous invocations, pollers and URLs.
    lambda_regions.resume(&stored, &nimbus_store::LAMBDA_SCHEMA, regions::any_state);

    let names: Vec<&'static str> = services.iter().map(|s| s.name()).collect();
    let health_engine = engine.clone();
    let health_sandbox = sandbox.clone();
    let (health_database, health_node, health_cluster) = (database.label(), node.clone(), cluster.clone());
    let health_ec2 = ec2.clone();
    let health = Arc::new(move || {
        serde_json::json!({
            "status": "ready",
            "version": env!("CARGO_PKG_VERSION"),
            "services": names,
            "isolation": health_engine.stats().isolation,
            // Live: a relay that fails later turns this to "own, no outside".
            "network": health_sandbox.network_label(),
            "environments": health_engine.stats(),
            "database": health_database,
            "node": health_node,
            // False when this node's heartbeat has not reached the database within the expiry:
            // it claims no work then (others may be taking over its own).
            "database_reachable": health_cluster.as_ref().is_none_or(|cluster| cluster.healthy()),
            "nodes": nodes_now(&seen_nodes.lock().unwrap_or_else(|p| p.into_inner())),
            // Instances running on this node; null while EC2 is unopened (asking does not open it).
            "instances": health_ec2.opened().map(|ec2| ec2.live_instances()),
        })
    });
    let _ = console_reach.health.set(health.clone());
    let open_files = nimbus_api::raise_open_files_limit();
    let api =
        Api::new(services, health).with_limits(nimbus_api::Limits::default().fit_open_files(open_files));
    let serving = api.clone();
    let _ = api_acceptor.set(Box::new(move |listener| serving.serve_extra(listener)));
    let on_database = match &database {
        Database::Sqlite { .. } => String::new(),
        Database::Postgres(_) => format!(", database: {}, node: {node}", database.label()),
    };
    println!(
        "nimbus listening on {endpoint_url} (data: {}, isolation: {}, network: {}{on_database}; console: {endpoint_url}{})",
        data_dir.display(),
        sandbox.label(),
        sandbox.network_label(),
        nimbus_console::UI_PATH,
    );

    let grace = Duration::from_secs(args.grace);
    api.serve(listener, stop_signal(), grace).await;
    let cut = engine.shutdown(Duration::from_millis(200)).await;
    if cut > 0 {
        eprintln!("nimbus: stopped {cut} invocation(s) still running after the grace period");
    }
    if let Some(batch) = batch.opened() {
        batch.shutdown();
    }
    if let Some(ec2) = ec2.opened() {
        ec2.shutdown().await;
    }
    // The lease steps first, so that none opens a service again after it is closed here.
    cluster_work.stop().await;
    logs.close().await;
    sqs.close().await;
    metrics.close().await; // saves the figures
    for dynamodb in dynamodb.opened() {
        dynamodb.close();
    }
    if let Some(cluster) = &cluster {
        tokio::task::block_in_place(|| cluster.leave());
    }
    eprintln!("nimbus: stopped");
    Ok(())
}

/// What CloudFormation is opened with.
struct CfnWiring<'a> {
    database: &'a Database,
    identity: Identity,
    endpoint_url: &'a str,
    node: &'a str,
    /// Lambda of every region.
    lambda: Arc<dyn Service>,
    s3: Arc<nimbus_s3::S3>,
    codedeploy: Arc<lazy::Lazy<nimbus_codedeploy::CodeDeploy>>,
    /// Every service's resource provider (a simple list; each opens its service on first use).
    providers: Vec<Arc<dyn nimbus_api::provider::ResourceProvider>>,
}

fn cloudformation_service(
    wiring: CfnWiring<'_>,
) -> Arc<regional::Regional<nimbus_cloudformation::CloudFormation>> {
    let CfnWiring { database, identity, endpoint_url, node, lambda, s3, codedeploy, providers } = wiring;
    let (endpoint_url, node) = (endpoint_url.to_owned(), node.to_owned());
    // Each region's stacks, made by the providers in that region.
    let open = move |database: &Database,
                     identity: &Identity|
          -> Result<Arc<nimbus_cloudformation::CloudFormation>, String> {
        let opened = nimbus_cloudformation::CloudFormation::open(
            database,
            &identity.region,
            &identity.account,
            &endpoint_url,
            providers.clone(),
            &node,
        )?;
        opened.set_templates(Arc::new(wiring::S3Templates(s3.clone())));
        opened.set_transforms(Arc::new(cfn_wiring::SamTransform));
        opened.set_functions(Arc::new(wiring::CfnFunctions(lambda.clone())));
        opened.set_deployments(Arc::new(cfn_wiring::CodeDeployShifts(codedeploy.clone())));
        opened.recover();
        Ok(opened)
    };
    let (home_open, home_database, home_identity) = (open.clone(), database.clone(), identity.clone());
    let home =
        lazy::Lazy::with_paths("cloudformation", Protocol::Query, "/_nimbus/cloudformation/", move || {
            home_open(&home_database, &home_identity)
        });
    regional::Regional::new(home, database, &identity, open)
}

/// Kinesis, opened by its first request (or at start when it holds streams). With several nodes
/// each tells the others when it commits records, so that their readers wake at once.
fn kinesis_service(
    state: &State<'_>,
    cluster: Option<&Arc<Cluster>>,
    clock: Arc<dyn Clock>,
) -> Arc<regional::Regional<nimbus_kinesis::Kinesis>> {
    let (database, identity) = (state.database.clone(), state.identity.clone());
    let announce = cluster.cloned().map(|cluster| {
        Arc::new(move || cluster.notify(wiring::KINESIS_TOPIC)) as Arc<dyn Fn() + Send + Sync>
    });
    let now: nimbus_kinesis::Clock = Arc::new(move || clock.now_ms());
    let options = nimbus_kinesis::Options {
        write_limits: state.args.kinesis_limits,
        announce,
        clock: Some(now),
        ..Default::default()
    };
    let open = move |database: &Database, identity: &Identity| {
        nimbus_kinesis::Kinesis::open(database, identity.clone(), options.clone())
    };
    let (home_open, opening, home_identity) = (open.clone(), database.clone(), identity.clone());
    let home =
        lazy::Lazy::new("kinesis", nimbus_api::Protocol::Json, move || home_open(&opening, &home_identity));
    let kinesis = regional::Regional::new(home, &database, &identity, open);
    if let Some(cluster) = cluster {
        wiring::wake_kinesis_readers(cluster, kinesis.clone());
    }
    kinesis
}

/// ECR and its registry (`/v2/`), with the image store under them, opened by their first
/// request (or a `nimbus images` command); one per account (see `ecr_accounts`).
/// An account whose store holds images opens it at start, for its lifecycle policies' sweep.
fn ecr_service(
    state: &State<'_>,
    stored: &regional::Stored,
    port: u16,
    clock: Arc<dyn Clock>,
) -> Arc<ecr_accounts::Registries> {
    let images = move |database: &Database, blobs: &Blobs, identity: &Identity| {
        let mut options = nimbus_images::Options::new(&identity.region, &identity.account);
        options.port = Some(port);
        let images = nimbus_images::Images::open(database, blobs, options).map_err(|e| e.to_string())?;
        Ok(nimbus_ecr::Ecr::new(images, identity.clone(), port, clock.clone()))
    };
    let (home_images, blobs, default) = (images.clone(), state.blobs.clone(), state.identity.clone());
    // Another account's blobs under its scope directory, as its database.
    let open = move |database: &Database, identity: &Identity| {
        images(database, &regional::blobs_for(&blobs, database, &default, identity), identity)
    };
    let (database, blobs, identity) = (state.database.clone(), state.blobs.clone(), state.identity.clone());
    let home = lazy::Lazy::with_paths("ecr", Protocol::Json, nimbus_ecr::ADMIN_PREFIX, move || {
        home_images(&database, &blobs, &identity)
    });
    let ecr = ecr_accounts::Registries::new(home, state.database, state.identity, open);
    if state.database.has_schema(&nimbus_images::SCHEMA) {
        let home = ecr.home().clone();
        tokio::spawn(async move {
            if let Err(error) = home.get().await {
                eprintln!("nimbus: cannot open ECR for its lifecycle policies: {error}");
            }
        });
    }
    ecr.resume(stored);
    ecr
}

type Ec2Services = (Arc<lazy::Lazy<nimbus_ec2::Ec2>>, Arc<lazy::Lazy<nimbus_ec2::AutoScaling>>);

/// EC2 and Auto Scaling, opened by their first request (or at start when instances were running).
/// What EC2 is opened with.
struct Ec2Wiring<'a> {
    args: &'a UpArgs,
    database: &'a Database,
    node: &'a str,
    endpoint_url: &'a str,
    clock: Arc<dyn Clock>,
    sandbox: Arc<Sandbox>,
    acceptor: &'a ApiAcceptor,
    events: &'a Arc<regional::Regional<EventBridge>>,
    /// Where target tracking policies keep their alarms (CloudWatch).
    alarms: Arc<dyn nimbus_ec2::ScalingAlarms>,
    /// What functions used, for the meter's what-if comparison (CloudWatch's figures).
    function_usage: Arc<dyn nimbus_ec2::FunctionUsage>,
}

fn ec2_services(wiring: Ec2Wiring<'_>) -> anyhow::Result<Ec2Services> {
    let Ec2Wiring {
        args,
        database,
        node,
        endpoint_url,
        clock,
        sandbox,
        acceptor,
        events,
        alarms,
        function_usage,
    } = wiring;
    let (vcpus, memory_mib, scale) = capacity_of(args.capacity.as_deref())?;
    let config = nimbus_ec2::Config {
        vcpus,
        memory_mib,
        scale,
        spot_notice_seconds: args.spot_notice_seconds,
        spot_interruption_rate: args.spot_interruption_rate,
        endpoint_url: endpoint_url.to_owned(),
        data_dir: args.data_dir.canonicalize().unwrap_or_else(|_| args.data_dir.clone()).join("ec2"),
        node: node.to_owned(),
        market: true,
    };
    let (database, identity, acceptor) = (database.clone(), identity_of(args), acceptor.clone());
    let sink: Arc<dyn nimbus_ec2::Ec2Events> = Arc::new(wiring::Ec2Events { events: events.clone() });
    let ec2 = lazy::Lazy::with_paths("ec2", Protocol::Ec2, nimbus_ec2::ADMIN_PREFIX, move || {
        let (sandbox, clock, acceptor, sink) =
            (sandbox.clone(), clock.clone(), acceptor.clone(), sink.clone());
        let ec2 = nimbus_ec2::Ec2::open(
            &database,
            identity.clone(),
            config.clone(),
            clock,
            sandbox,
            acceptor,
            sink,
        )?;
        ec2.set_alarms(alarms.clone());
        ec2.set_function_usage(function_usage.clone());
        Ok(ec2)
    });
    let over = ec2.clone();
    let autoscaling = lazy::Lazy::new("autoscaling", Protocol::Query, move || {
        Ok(Arc::new(nimbus_ec2::AutoScaling(over.get_blocking()?)))
    });
    Ok((ec2, autoscaling))
}

/// `--capacity vcpus=N,memory=GiB`, each part defaulting to the host's own.
fn capacity_of(arg: Option<&str>) -> anyhow::Result<(u32, u64, f64)> {
    let host_vcpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let (mut vcpus, mut memory_mib, mut scale) = (host_vcpus, host_memory_mb(), 1.0);
    for part in arg.unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=').context("--capacity takes vcpus=N,memory=GiB")?;
        match key.trim() {
            "vcpus" => vcpus = value.trim().parse().context("--capacity vcpus must be a whole number")?,
            "memory" => {
                let gib: f64 =
                    value.trim().trim_end_matches("GiB").parse().context("--capacity memory is in GiB")?;
                memory_mib = (gib * 1024.0) as u64;
            }
            "scale" => {
                scale = value.trim().parse().context("--capacity scale is a number ≥ 1")?;
                anyhow::ensure!(scale >= 1.0 && f64::is_finite(scale), "--capacity scale is a number ≥ 1");
            }
            other => anyhow::bail!("--capacity knows vcpus, memory and scale, not {other}"),
        }
    }
    Ok((vcpus, memory_mib, scale))
}

/// What every service opens its state from.
struct State<'a> {
    args: &'a UpArgs,
    database: &'a Database,
    blobs: &'a Blobs,
    node: &'a str,
    identity: &'a Identity,
}

fn identity_of(args: &UpArgs) -> Identity {
    Identity { region: args.region.clone(), account: args.account.clone() }
}

/// The durable state and the sandbox, opened side by side: each waits mostly on its disk.
struct Opened {
    store: Arc<LambdaStore>,
    code: Arc<CodeStore>,
    sandbox: Arc<Sandbox>,
    /// None with several nodes, as `sqs`.
    logs: Option<Arc<nimbus_logs::Logs>>,
    /// None with several nodes: SQS opens where its lease is held (see `sqs_home`).
    sqs: Option<Arc<nimbus_sqs::Sqs>>,
}

fn open_state(state: &State<'_>) -> anyhow::Result<Opened> {
    let State { args, database, blobs, node, identity } = state;
    let data_dir = &args.data_dir;
    let forced = match args.isolation {
        IsolationArg::Auto => None,
        IsolationArg::Namespaces => Some(Isolation::Namespaces),
        IsolationArg::Process => Some(Isolation::Process),
    };
    let runtime = tokio::runtime::Handle::current();
    let runtime = &runtime;
    std::thread::scope(|scope| {
        let store = scope.spawn(|| LambdaStore::open(database, node));
        let code = scope.spawn(|| CodeStore::in_area(&blobs.area("code")?));
        let sandbox =
            scope.spawn(|| Sandbox::new(data_dir, forced).map(|s| s.with_host_loopback(args.host_loopback)));
        // Both start background tasks, so they open inside the runtime.
        let logs = scope.spawn(|| {
            let _runtime = runtime.enter();
            (!database.is_shared())
                .then(|| nimbus_logs::open(database, blobs, (*identity).clone()))
                .transpose()
        });
        let sqs = scope.spawn(|| {
            let _runtime = runtime.enter();
            (!database.is_shared())
                .then(|| nimbus_sqs::Sqs::open(*database, &identity.region, &identity.account))
                .transpose()
        });
        Ok(Opened {
            store: Arc::new(joined(store)?.context("cannot open the database")?),
            code: Arc::new(joined(code)?.context("cannot open the code store")?),
            sandbox: Arc::new(joined(sandbox)?.context("cannot set up the sandbox")?),
            logs: joined(logs)?.context("cannot open the log store")?,
            sqs: joined(sqs)?.context("cannot open SQS")?,
        })
    })
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> anyhow::Result<T> {
    handle.join().map_err(|_| anyhow::anyhow!("a startup thread panicked"))
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("nimbus: stopping (no new invocations; running ones get the grace period)");
}

/// The nodes as the last heartbeat saw them, each with the age of its heartbeat now.
fn nodes_now(nodes: &[nimbus_store::cluster::NodeInfo]) -> serde_json::Value {
    let now = nimbus_store::cluster::now_ms();
    let nodes = nodes.iter().map(|node| {
        serde_json::json!({
            "name": node.name,
            "address": node.address,
            "alive": node.alive,
            "heartbeat_age_ms": now - node.heartbeat_ms,
            "work": node.work,
        })
    });
    serde_json::Value::Array(nodes.collect())
}

/// The data directory's identity, made at its first start: a node restarting on the same
/// directory is the same node (the directory's lock proves the previous process gone).
fn data_dir_instance(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if id.trim().len() >= 8 {
            return Ok(id.trim().to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let staged = data_dir.join("instance.new");
    std::fs::write(&staged, &id)
        .and_then(|()| std::fs::File::open(&staged)?.sync_all())
        .and_then(|()| std::fs::rename(&staged, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// The host's name, for default node names.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "nimbus".to_owned())
}

/// Total memory of the host in MB, from /proc/meminfo.
fn host_memory_mb() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(4096, |kib| kib / 1024)
}
