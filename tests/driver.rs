//! `e2e-driver`: the product's clients driven for xtask, which links none of the product's
//! crates and runs this binary instead (`cargo xtask docker-sweep`, and the `docker` and
//! `sandbox` measurements of `cargo xtask bench`). Each subcommand prints its results as
//! one JSON object per line on stdout.

use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::{Parser, Subcommand};
use oh_protocol::runtime::PullPolicy;
use oh_workspace_api::ApiRemoteWorkspace;
use oh_workspace_docker::DockerWorkspace;
use serde_json::{Value, json};

/// Drives the product's clients for `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "e2e-driver")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Remove the containers DockerWorkspace started whose owning process is gone; prints
    /// `{"removed": NAME}` per container.
    DockerSweep {
        /// Remove every one of them.
        #[arg(long)]
        all: bool,
        /// Only the containers of this owner process.
        #[arg(long, conflicts_with = "all")]
        owner: Option<u32>,
    },
    /// `DockerWorkspace` enter → ready on `image`, `starts` times; prints
    /// `{"enter_ready_ms": MS}` per start.
    DockerReady {
        #[arg(long)]
        image: String,
        #[arg(long, default_value_t = 1)]
        starts: usize,
    },
    /// One `ApiRemoteWorkspace` create → first `echo ok` against a runtime API; prints
    /// `{"ms": MS, "url": URL, "runtime_id": ID}`, then waits for a line on stdin (the caller
    /// inspects the sandbox meanwhile) and cleans up, printing `{"cleaned": true}`.
    ApiCreateEcho(Api),
    /// `count` creates at once until every one answered `echo ok`; all cleaned up. Prints
    /// `{"wall_ms": MS, "each_ms": [MS...]}`.
    ApiBurst {
        #[command(flatten)]
        api: Api,
        #[arg(long)]
        count: usize,
    },
}

/// A runtime API and the image its sandboxes run.
#[derive(Debug, Clone, clap::Args)]
struct Api {
    #[arg(long)]
    url: String,
    #[arg(long)]
    key: String,
    #[arg(long)]
    image: String,
}

impl Api {
    fn workspace(&self) -> oh_workspace_api::ApiRemoteWorkspaceBuilder {
        ApiRemoteWorkspace::builder(&self.url, self.key.as_str(), &self.image)
            .image_pull_policy(PullPolicy::Never)
            .startup_wait_timeout(Duration::from_secs(120))
    }
}

/// One JSON line on stdout.
#[allow(clippy::print_stdout, reason = "the results are this binary's output")]
fn emit(value: &Value) {
    println!("{value}");
}

/// Milliseconds, as the bench reports them.
fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// `echo ok` through the workspace; its output checked.
async fn echo(sandbox: &ApiRemoteWorkspace) -> Result<()> {
    let out = sandbox
        .workspace()
        .execute_command("echo ok", None, Duration::from_secs(30))
        .await
        .context("echo")?;
    ensure!(
        out.exit_code == 0 && out.stdout.trim() == "ok",
        "echo answered exit {} stdout {:?} stderr {:?}",
        out.exit_code,
        out.stdout,
        out.stderr
    );
    Ok(())
}

async fn run(task: Task) -> Result<()> {
    match task {
        Task::DockerSweep { all, owner } => {
            let removed = if all {
                oh_workspace_docker::sweep(None).await?
            } else if let Some(pid) = owner {
                oh_workspace_docker::sweep(Some(pid)).await?
            } else {
                let mut removed = Vec::new();
                for pid in oh_workspace_docker::owners().await? {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        removed.extend(oh_workspace_docker::sweep(Some(pid)).await?);
                    }
                }
                removed
            };
            for name in removed {
                emit(&json!({ "removed": name }));
            }
        }
        Task::DockerReady { image, starts } => {
            for _ in 0..starts.max(1) {
                let started = Instant::now();
                let workspace = DockerWorkspace::builder()
                    .image(&image)
                    .detach_logs(false)
                    .health_check_timeout(Duration::from_secs(180))
                    .start()
                    .await
                    .with_context(|| format!("starting a DockerWorkspace on {image}"))?;
                let took = ms(started.elapsed());
                workspace.cleanup().await?;
                emit(&json!({ "enter_ready_ms": took }));
            }
        }
        Task::ApiCreateEcho(api) => {
            let started = Instant::now();
            let workspace = api.workspace().start().await.context("start")?;
            let echoed = echo(&workspace).await;
            let took = ms(started.elapsed());
            if echoed.is_ok() {
                emit(&json!({
                    "ms": took,
                    "url": workspace.url(),
                    "runtime_id": workspace.runtime_id(),
                }));
                // The caller checks which container served the run, then says go on.
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
            }
            let cleaned = workspace.cleanup().await.context("cleanup");
            echoed?;
            cleaned?;
            emit(&json!({ "cleaned": true }));
        }
        Task::ApiBurst { api, count } => {
            let started = Instant::now();
            let tasks: Vec<_> = (0..count)
                .map(|_| {
                    let builder = api.workspace();
                    tokio::spawn(async move {
                        let workspace = builder.start().await.context("start")?;
                        let echoed = echo(&workspace).await;
                        let took = ms(started.elapsed());
                        Ok::<_, anyhow::Error>((workspace, echoed.map(|()| took)))
                    })
                })
                .collect();
            let joined = futures::future::join_all(tasks).await;
            let wall = ms(started.elapsed());
            let mut each = Vec::new();
            let mut first_error = None;
            let mut cleanups = Vec::new();
            for outcome in joined {
                match outcome.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok((workspace, echoed)) => {
                        match echoed {
                            Ok(took) => each.push(took),
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        }
                        cleanups.push(async move { workspace.cleanup().await });
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            for cleaned in futures::future::join_all(cleanups).await {
                if let Err(e) = cleaned {
                    first_error.get_or_insert(anyhow::Error::from(e).context("cleanup"));
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            emit(&json!({ "wall_ms": wall, "each_ms": each }));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e-driver: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.task)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-driver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
