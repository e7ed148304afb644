//! `flightrec-cluster`: one process of an Apache DataFusion Ballista cluster, the scheduler or an
//! executor, for `flightrec-analyze sql --cluster df://HOST:PORT LAKE`.
//!
//! It is Ballista's own scheduler and executor (the `ballista-scheduler` and `ballista-executor`
//! libraries, version 55, on the DataFusion the analyzer embeds), started with the few settings a
//! flightrec lake needs, so that the cluster and the analyzer plan and execute the same views with
//! the same engine. Executors read the lake's files by the paths the client registered: on every
//! executor the lake must be at the same path (a shared file system), or in object storage.
use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, Result};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::{
    cluster::BallistaCluster,
    config::{SchedulerConfig, TaskDistributionPolicy},
    scheduler_process::start_server,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flightrec-cluster", version, about)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// The scheduler: plans jobs from clients (`flightrec-analyze sql --cluster df://HOST:PORT`)
    /// and hands their tasks to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Port to listen on (the PORT of df://HOST:PORT).
        #[arg(long, default_value_t = 50050)]
        port: u16,
        /// Host name executors and clients reach this scheduler by.
        #[arg(long, default_value = "localhost")]
        external_host: String,
        /// Executors that must have registered before a job starts.
        #[arg(long, default_value_t = 1)]
        min_executors: usize,
    },
    /// An executor: runs tasks given by the scheduler on the lake files they name.
    Executor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Arrow Flight port (other executors and clients fetch results from it).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port of the executor's gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Host name the scheduler, other executors and clients reach this executor by
        /// (default: the --bind address).
        #[arg(long)]
        external_host: Option<String>,
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        /// Tasks run at once (default: the CPUs).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Directory for shuffle files (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
        /// Name of this executor in the scheduler and the logs.
        #[arg(long)]
        id: Option<String>,
    },
}

fn scheduler_config(external_host: String, port: u16, min_executors: usize) -> SchedulerConfig {
    let mut config = SchedulerConfig::default()
        .with_hostname(external_host)
        .with_port(port)
        .with_scheduler_policy(TaskSchedulingPolicy::PushStaged)
        // Spread a job's tasks over the executors instead of filling the first one's slots.
        .with_task_distribution(TaskDistributionPolicy::RoundRobin);
    config.min_ready_executors = min_executors;
    config
}

async fn run(role: Role) -> Result<()> {
    match role {
        Role::Scheduler {
            bind,
            port,
            external_host,
            min_executors,
        } => {
            let addr: SocketAddr = format!("{bind}:{port}")
                .parse()
                .with_context(|| format!("--bind {bind} --port {port} is not an address"))?;
            let config = scheduler_config(external_host, port, min_executors);
            let cluster = BallistaCluster::new_from_config(&config).await?;
            start_server(cluster, addr, Arc::new(config)).await?;
        }
        Role::Executor {
            bind,
            port,
            grpc_port,
            external_host,
            scheduler,
            concurrent_tasks,
            work_dir,
            id,
        } => {
            let (host, sched_port) = scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--scheduler {scheduler} is not HOST:PORT"))?;
            let defaults = ExecutorProcessConfig::default();
            let config = ExecutorProcessConfig {
                executor_id: id.unwrap_or(defaults.executor_id.clone()),
                bind_host: bind,
                external_host,
                port,
                grpc_port,
                scheduler_host: host,
                scheduler_port: sched_port,
                scheduler_connect_timeout_seconds: 30,
                vcores: concurrent_tasks.unwrap_or(defaults.vcores),
                task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
                work_dir,
                ..defaults
            };
            start_executor_process(Arc::new(config)).await?;
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Ballista's planner recurses deeply on window plans.
        .thread_stack_size(32 * 1024 * 1024)
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli.role)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("flightrec-cluster: {e:#}");
        std::process::exit(1);
    }
}
