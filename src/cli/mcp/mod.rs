//! `devstack mcp`: a Model Context Protocol server on stdio (rmcp), for coding agents. A thin
//! client of the running stack's control socket: each tool finds the stack as the CLI does
//! (`remote::locate`) and asks it through the same functions. When no stack runs, a tool says
//! so as a tool error and the server stays up; `logs` then reads the log files, as the CLI's
//! (`logs.rs`: the `logs` tool's lines, searched and cut to fit). The fault tools answer with
//! the lines `devstack fault` prints (`cli/fault.rs`). stdout carries MCP messages
//! only: nothing here prints, and no `tracing` subscriber is installed (rmcp's logs go nowhere).

mod logs;
mod requests;

use super::fault;
use super::remote::{self, Action, Running};
use devstack::control::Readiness;
use devstack::ignored::Ignore;
use logs::{LogsParams, file_lines};
use requests::{FailedParams, RequestParams, failed_requests, replay, request};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `wait_ready`'s timeout unless told, and the longest it takes.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Serve MCP on stdin/stdout until the client hangs up.
pub fn serve(file: Option<&Path>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            super::note(&format!("cannot start the MCP server: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let server = Devstack::new(file.map(Path::to_path_buf));
    runtime.block_on(async move {
        let (stdin, stdout) = rmcp::transport::stdio();
        let pipes = super::mcp_stdio::spawn(stdin, stdout);
        let served = match server.serve((pipes.read, pipes.write)).await {
            Ok(running) => running.waiting().await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        // rmcp has closed its end: what it wrote last (and any refusal) reaches stdout.
        let written = tokio::time::timeout(Duration::from_secs(5), pipes.written).await;
        written
            .map(|w| w.or_say("the writer of stdout panicked"))
            .or_say("stdout did not take what rmcp wrote last within 5 s");
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                super::note(&format!("MCP server: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}

#[derive(Clone)]
pub struct Devstack {
    /// `-f PATH`, if given: the stack is PATH's folder's; otherwise found from the server's
    /// working folder up, as the CLI finds it, anew for each call.
    file: Option<Arc<PathBuf>>,
    tool_router: ToolRouter<Self>,
}

/// A tool's outcome: text for the agent, or the text of a tool error.
type Outcome = Result<String, String>;

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ServicesParams {
    /// Service names, as `ps` lists them
    services: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FaultParams {
    /// The fault's words: `orders->users latency=200ms jitter=50ms`, `users error=503 first=3`, `external->users reset rate=0.3`
    fault: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ScenarioParams {
    /// The scenario's name, as declared in devstack.toml (`[faults.slow-users]`: `slow-users`)
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UseParams {
    /// The service's name, as `ps` lists it
    service: String,
    /// `remote`: its `url` serves it (its local processes stop); `local`: its `run` again
    end: End,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
pub enum End {
    Local,
    Remote,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FaultIdParams {
    /// The fault's number (`fault 2: …`)
    id: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct WaitParams {
    /// Services to wait for (default: every service the stack means to run)
    #[serde(default)]
    services: Vec<String>,
    /// How long to wait, as `30s` or `2m` (default 60s, at most 10m)
    timeout: Option<String>,
}

#[tool_router]
impl Devstack {
    fn new(file: Option<PathBuf>) -> Devstack {
        Devstack {
            file: file.map(Arc::new),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Every service of the running stack: state, health, pid, port, uptime, restarts, CPU and memory (the JSON of `devstack ps --json`)",
        annotations(read_only_hint = true)
    )]
    async fn ps(&self) -> Result<CallToolResult, ErrorData> {
        self.with_stack(|mut stack| {
            let services = stack.client.ps().map_err(|e| stack.describe(&e))?;
            Ok(remote::ps_json(&services))
        })
        .await
    }

    #[tool(
        description = "Log lines of the running stack (when none runs, from the log files of the last one), oldest first, as `TIME SERVICE | TEXT` (TIME in UTC; `[build]` marks build output, `[devstack]` devstack's own lines): the last `lines` (default 100, at most 2000, and at most the newest 512 KiB: the answer says when it was cut) of the named services (default all), optionally only those since a time and matching a regex",
        annotations(read_only_hint = true)
    )]
    async fn logs(
        &self,
        Parameters(p): Parameters<LogsParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let file = self.file.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let file = file.as_deref().map(PathBuf::as_path);
            match remote::locate(file) {
                Err(refusal) => Err(refusal),
                Ok(Some(mut stack)) => logs::logs(
                    p,
                    Box::new(|services, n, each| {
                        stack
                            .client
                            .logs_each(services, n, each)
                            .map_err(|e| stack.describe(&e))
                    }),
                ),
                // As `devstack logs` does: the log files of the stack that ran here.
                Ok(None) => logs::logs(
                    p,
                    Box::new(|services, n, each| file_lines(file, services, n, each)),
                ),
            }
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(outcome_result(outcome))
    }

    #[tool(
        description = "Start services of the running stack (and what they depend on); returns once each is ready, or says why it is not"
    )]
    async fn start(
        &self,
        Parameters(p): Parameters<ServicesParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(Action::Start, p.services).await
    }

    #[tool(description = "Stop services of the running stack; returns once each has stopped")]
    async fn stop(
        &self,
        Parameters(p): Parameters<ServicesParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(Action::Stop, p.services).await
    }

    #[tool(
        description = "Restart services of the running stack; returns once each new process is ready (with its pid), or says why it is not"
    )]
    async fn restart(
        &self,
        Parameters(p): Parameters<ServicesParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(Action::Restart, p.services).await
    }

    #[tool(
        description = "Run the build of services of the running stack again and restart them on success; returns once the new process runs. A failed build leaves the old process running and returns the build's last lines as a tool error"
    )]
    async fn rebuild(
        &self,
        Parameters(p): Parameters<ServicesParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.act(Action::Rebuild, p.services).await
    }

    #[tool(
        description = "Serve a service that has both a local `run` and a remote `url` by its remote end (its local processes stop; callers keep its port) or by its local process again; returns once it is ready so"
    )]
    async fn use_end(
        &self,
        Parameters(p): Parameters<UseParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let remote = matches!(p.end, End::Remote);
        self.with_stack(move |mut stack| {
            remote::use_on(&mut stack, &p.service, remote).map_err(|e| stack.describe(&e))
        })
        .await
    }

    #[tool(
        description = "Wait until the running stack, or the named services, are ready (running and healthy, tasks completed). Returns as soon as one fails (naming it, with its last log lines) or the timeout passes (naming what is not ready and why)",
        annotations(read_only_hint = true)
    )]
    async fn wait_ready(
        &self,
        Parameters(p): Parameters<WaitParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let timeout = match p.timeout.as_deref().map(humantime::parse_duration) {
            None => DEFAULT_WAIT,
            Some(Ok(t)) => t.min(MAX_WAIT),
            Some(Err(e)) => {
                return Ok(tool_error(format!(
                    "bad timeout: {e} (write e.g. 30s or 2m)"
                )));
            }
        };
        self.with_stack(move |stack| wait_ready(stack, timeout, &p.services))
            .await
    }

    #[tool(
        description = "Who calls whom in the running stack, busiest first: one row per caller → callee edge with requests, requests/s over 10 s and 1 min, errors (HTTP 5xx, gRPC non-OK, stopped, refused, reset, timed out) and their share of the last minute, p50/p95/p99 latency, bytes each way. Callers are services, `external` (outside the stack) or `unknown`",
        annotations(read_only_hint = true)
    )]
    async fn traffic(&self) -> Result<CallToolResult, ErrorData> {
        self.with_stack(|mut stack| {
            let (snapshot, _) = stack
                .client
                .traffic(0, false)
                .map_err(|e| stack.describe(&e))?;
            Ok(super::traffic::edge_lines(&snapshot)
                .map_or(super::traffic::NO_TRAFFIC.to_string(), |l| l.join("\n")))
        })
        .await
    }

    #[tool(
        description = "Recent requests between services that failed (HTTP 5xx, gRPC non-OK, stopped, refused, reset, timed out), oldest first, from the last 1000 requests the stack recorded: `TIME CALLER → CALLEE METHOD PATH STATUS LATENCY (error)`",
        annotations(read_only_hint = true)
    )]
    async fn failed_requests(
        &self,
        Parameters(p): Parameters<FailedParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |stack| failed_requests(stack, p))
            .await
    }

    #[tool(
        description = "One request the proxy kept, by its #id (as failed_requests and `devstack traffic -f` show it): request and response heads (secrets' values redacted), bodies (the first 64 KiB of each; JSON pretty-printed, binary as a hex dump), a gRPC call's method, status and messages, and timings",
        annotations(read_only_hint = true)
    )]
    async fn request(
        &self,
        Parameters(p): Parameters<RequestParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |stack| request(stack, p.id)).await
    }

    #[tool(
        description = "Send a kept request (by #id) again through the proxy, as its caller would, recorded as `replay → SERVICE`; returns its answer beside the original's (status, the header fields that differ, whether the body does). `request` (optional) replaces it: the request as text (start line, fields, a blank line, the body), a field left `…redacted…` keeping its captured value. A kept Redis command or PostgreSQL query is replayed only when it reads (GET, HGETALL …; a single SELECT inside a read-only transaction), as it was (no `request`); its outcome beside the original's, then its value or rows"
    )]
    async fn replay(
        &self,
        Parameters(p): Parameters<requests::ReplayParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |stack| replay(stack, p)).await
    }

    #[tool(
        description = "Set a fault on the running stack, to see what a service does when another is slow, fails or is gone (\"what happens to orders when users fails?\"): the proxy in front of the callee then delays, fails, resets or holds the requests it touches. `fault` is its words: where (`orders->users` for the requests orders sends users, `users` for every caller's, `external->users` for those from outside the stack), one effect (`latency=200ms` with optional `jitter=50ms`; `error=503` with optional `body=TEXT`, answered without reaching the service; `reset`; `timeout`: held unanswered; `bandwidth=100KB`: bytes per second; `cut`: new connections reset; `slow_close=2s`: the close passed on late) and optional triggers, all of which must hold (`rate=0.3`, `first=3`, `for=30s`, `method=GET`, `path=/api`). Returns `fault ID: WORDS`. It lasts until removed (remove_fault, clear_faults), its `first` or `for` runs out, or the stack stops; remove it when done"
    )]
    async fn add_fault(
        &self,
        Parameters(p): Parameters<FaultParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |mut stack| {
            let said = fault::add(&mut stack.client, &p.fault);
            said.map_err(|e| stack.describe(&e))
        })
        .await
    }

    #[tool(
        description = "The faults set on the running stack, oldest first: `ID  FAULT  TOUCHED` (its number, its words as add_fault takes them, how many requests it touched so far; `(spent)` once its `first` or `for` ran out)",
        annotations(read_only_hint = true)
    )]
    async fn faults(&self) -> Result<CallToolResult, ErrorData> {
        self.with_stack(|mut stack| {
            let said = fault::list(&mut stack.client);
            said.map(|lines| lines.join("\n"))
                .map_err(|e| stack.describe(&e))
        })
        .await
    }

    #[tool(
        description = "Remove one fault from the running stack, by its number (as add_fault and faults show it)"
    )]
    async fn remove_fault(
        &self,
        Parameters(p): Parameters<FaultIdParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |mut stack| {
            let said = fault::remove(&mut stack.client, p.id);
            said.map_err(|e| stack.describe(&e))
        })
        .await
    }

    #[tool(
        description = "Set every fault of a scenario declared in the stack's devstack.toml (`[faults.NAME]` with `users = { latency = \"2s\" }`, ...), e.g. `slow-users`: returns a `fault ID: WORDS` line for each, as add_fault does; an unknown name is a tool error listing the scenarios there are. They last until removed (remove_fault, clear_faults) or the stack stops; remove them when done"
    )]
    async fn apply_faults(
        &self,
        Parameters(p): Parameters<ScenarioParams>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_stack(move |mut stack| {
            let said = fault::apply(&mut stack.client, &p.name);
            said.map(|lines| lines.join("\n"))
                .map_err(|e| stack.describe(&e))
        })
        .await
    }

    #[tool(
        description = "Remove every fault from the running stack: its edges behave as they did before"
    )]
    async fn clear_faults(&self) -> Result<CallToolResult, ErrorData> {
        self.with_stack(|mut stack| {
            let said = fault::clear(&mut stack.client);
            said.map_err(|e| stack.describe(&e))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Devstack {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("devstack", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "devstack runs a stack of local services (devstack.toml). These tools act on the stack running in this project's folder (started with `devstack up -d`): see services and their health (ps), read and search logs (logs), start/stop/restart/rebuild services and wait for them (wait_ready), and see the traffic between them (traffic, failed_requests), look inside a request (request) and send it again (replay), and set faults on the edges between services to see how the others cope (add_fault, apply_faults for a scenario of devstack.toml, faults, remove_fault, clear_faults).",
            )
    }
}

impl Devstack {
    /// Run `job` on the running stack, off the runtime's thread (the socket client blocks,
    /// and actions wait for their effect); no stack is a tool error.
    async fn with_stack(
        &self,
        job: impl FnOnce(Running) -> Outcome + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let file = self.file.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let file = file.as_deref().map(PathBuf::as_path);
            match remote::locate(file) {
                Err(refusal) => Err(refusal),
                Ok(None) => Err(format!(
                    "no stack runs in {}; start it with `devstack up -d`",
                    remote::home(file).display()
                )),
                Ok(Some(stack)) => job(stack),
            }
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(outcome_result(outcome))
    }

    async fn act(
        &self,
        action: Action,
        services: Vec<String>,
    ) -> Result<CallToolResult, ErrorData> {
        if services.is_empty() {
            return Ok(tool_error("name at least one service".to_string()));
        }
        self.with_stack(move |mut stack| {
            let mut said = Vec::new();
            for name in &services {
                match remote::act_on(&mut stack, action, name) {
                    Ok(done) => said.push(done),
                    Err(failed) => {
                        said.push(format!("{name}: {}", stack.describe(&failed.error)));
                        if !failed.build.is_empty() {
                            said.push(format!(
                                "last {} lines of the build of `{name}`:",
                                failed.build.len()
                            ));
                            said.extend(failed.build.iter().map(|l| format!("  {l}")));
                        }
                        return Err(said.join("\n"));
                    }
                }
            }
            Ok(said.join("\n"))
        })
        .await
    }
}

fn tool_error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

impl Running {
    fn describe(&self, e: &devstack::control::client::Error) -> String {
        remote::describe(&self.state, e)
    }
}

fn outcome_result(outcome: Outcome) -> CallToolResult {
    match outcome {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(text) => tool_error(text),
    }
}

/// A count the agent may give: absent is `default`; 0 is refused (it would answer "none",
/// as if there were none to show).
fn at_least_one(given: Option<usize>, default: usize, what: &str) -> Result<usize, String> {
    match given {
        None => Ok(default),
        Some(0) => Err(format!(
            "`{what}` must be 1 or more (leave it out for {default})"
        )),
        Some(n) => Ok(n),
    }
}

fn wait_ready(stack: Running, timeout: Duration, services: &[String]) -> Outcome {
    let what = if services.is_empty() {
        "every service".to_string()
    } else {
        services
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let state = &stack.state;
    let tail = |service: &str, lines: &[String]| -> String {
        if lines.is_empty() {
            return String::new();
        }
        let mut text = format!(
            "\nlast {} of `{service}`:",
            devstack::format::plural(lines.len(), "line")
        );
        for l in lines {
            text.push_str(&format!("\n  {l}"));
        }
        text
    };
    match remote::await_ready(state, timeout, services) {
        Err(e) => Err(remote::describe(state, &e)),
        Ok(Readiness::Ready { took_ms }) => Ok(format!(
            "{what} ready (took {})",
            devstack::format::secs(Duration::from_millis(took_ms))
        )),
        Ok(Readiness::Stopped) => Err("the stack stopped before it was ready".to_string()),
        Ok(Readiness::Unwanted { service, detail }) => Err(format!(
            "`{service}` is not meant to run ({detail}); start it with the `start` tool"
        )),
        Ok(Readiness::Failed {
            service,
            why,
            lines,
        }) => Err(format!(
            "`{service}` failed: {why}{}",
            tail(&service, &lines)
        )),
        Ok(Readiness::TimedOut { waiting }) => {
            let mut text = format!("not ready after {}:", devstack::format::secs(timeout));
            for w in &waiting {
                text.push_str(&format!("\n  `{}` is {}", w.service, w.what));
            }
            for w in &waiting {
                text.push_str(&tail(&w.service, &w.lines));
            }
            Err(text)
        }
    }
}
