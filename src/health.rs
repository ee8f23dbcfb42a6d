//! Health probes: `http` (GET, 2xx/3xx is healthy), `tcp` (a connection is accepted), `cmd` (exit
//! 0). The `log` probe is a regex over the service's output and lives with the output feed.
//! Each running service with a probe gets one task that probes and reports; the engine keeps the
//! counts (retries, start period) and decides what a result means.

use crate::config::Probe;
use crate::sync::Locked;
use crate::traffic::upstream::{Alpn, RemoteEnd};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

/// While a service has not been healthy yet it is probed this often (or at its `interval`, if
/// shorter), so that dependents start promptly; afterwards at its `interval`.
const STARTUP_INTERVAL: Duration = Duration::from_millis(50);
const STARTUP_INTERVAL_CMD: Duration = Duration::from_millis(200);

/// Everything a probe needs to reach one service.
#[derive(Clone)]
pub struct Target {
    /// The service probed (what its `cmd` probe leaves behind is known as its own).
    pub service: String,
    pub probe: Probe,
    pub port: Option<u16>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Probed at its remote end (`url`): `http` and `tcp` go there, not to a port here.
    pub remote: Option<crate::config::remote::Remote>,
}

/// Probe `target` forever, calling `report` with each result. Abort the handle to stop.
pub fn spawn_loop(
    target: Target,
    report: impl Fn(Result<(), String>) + Send + 'static,
) -> AbortHandle {
    tokio::spawn(async move {
        let startup = match target.probe {
            Probe::Cmd(_) => STARTUP_INTERVAL_CMD,
            _ => STARTUP_INTERVAL,
        }
        .min(target.interval);
        let mut healthy_once = false;
        // A remote end's TLS settings are made once, for every probe of it.
        let end = target.remote.as_ref().map(|r| {
            RemoteEnd::new(&r.host, r.port, r.tls, r.insecure)
                .map_err(|e| format!("{}: {e}", r.url))
        });
        loop {
            let result = match &end {
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(end)) => check(&target, Some(end)).await,
                None => check(&target, None).await,
            };
            healthy_once |= result.is_ok();
            report(result);
            tokio::time::sleep(if healthy_once {
                target.interval
            } else {
                startup
            })
            .await;
        }
    })
    .abort_handle()
}

/// Run the probe once, within its timeout. With `end` (a remote end's), `tcp` connects there
/// (TLS's handshake too, for https) and `http` GETs its path there (with the remote's own name
/// as `Host`); `cmd` runs here as always.
pub async fn check(target: &Target, end: Option<&RemoteEnd>) -> Result<(), String> {
    let url = target.remote.as_ref().map_or("", |r| r.url.as_str());
    let run = async {
        match (&target.probe, end) {
            (Probe::Tcp, Some(end)) => end
                .connect(Alpn::H1)
                .await
                .map(drop)
                .map_err(|e| format!("{url}: {e}")),
            (Probe::Http(path), Some(end)) => {
                let stream = end
                    .connect(Alpn::H1)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                get(stream, path, &end.authority, &format!("{url}{path}")).await
            }
            (Probe::Http(url), None) => http(url, target.port).await,
            (Probe::Tcp, None) => {
                let port = target.port.ok_or("the service has no port")?;
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp 127.0.0.1:{port}: {e}"))
            }
            (Probe::Cmd(cmd), _) => command(cmd, target).await,
            (Probe::Log(_), _) => Err("a log probe is matched by the output feed".into()),
        }
    };
    match tokio::time::timeout(target.timeout, run).await {
        Ok(result) => result,
        Err(_) => {
            let within = format!("no answer within {}", crate::format::secs(target.timeout));
            Err(match end {
                Some(_) => format!("{url}: {within}"),
                None => within,
            })
        }
    }
}

async fn http(url: &str, port: Option<u16>) -> Result<(), String> {
    let full = if url.starts_with('/') {
        format!(
            "http://127.0.0.1:{}{url}",
            port.ok_or("the service has no port")?
        )
    } else {
        url.to_string()
    };
    let uri: hyper::Uri = full
        .parse()
        .map_err(|e| format!("bad probe URL {full}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {full}"))?
        .to_string();
    let addr = (host.as_str(), uri.port_u16().unwrap_or(80));
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("GET {full}: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    get(stream, path, &authority, &full).await
}

/// GET `path` on `stream` as `authority`: 2xx and 3xx are healthy (`full`: the URL, to say).
async fn get<S>(stream: S, path: &str, authority: &str, full: &str) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("GET {full}: {e}"))?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "devstack-health")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {full}: {e}"))?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET {full}: HTTP {}", status.as_u16()))
    }
}

async fn command(cmd: &str, target: &Target) -> Result<(), String> {
    let spawned = {
        let mut own = crate::process::orphans::own();
        let mut child = tokio::process::Command::new("sh");
        child
            .arg("-c")
            .arg(cmd)
            .current_dir(&target.cwd)
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .env(crate::process::orphans::PROBE_MARK, "1")
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: `restore` makes one system call.
        let child = unsafe { child.pre_exec(crate::process::nofile::restore) }.spawn();
        if let Some(pid) = spawned_pid(&child) {
            own.add(pid, Some(&target.service), false);
        }
        child
    };
    let mut child = spawned.map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
    let pid = child.id();
    // However the probe ends (a timeout drops this future), its whole group goes with it:
    // `sh -c "server & exit 0"` must not leave a server behind per probe.
    let group = GroupGuard(pid);
    // Read stderr beside the wait: a background child keeps the pipe open, and must not turn
    // the probe's exit code into a timeout.
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = child.stderr.take().map(|mut stderr| {
        let tail = tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                let mut tail = tail.locked();
                tail.extend_from_slice(&buf[..n]);
                let extra = tail.len().saturating_sub(PROBE_OUTPUT_KEPT);
                tail.drain(..extra);
            }
        })
    });
    let status = child.wait().await.map_err(|e| e.to_string());
    drop(group);
    if let Some(reader) = reader {
        // The group is dead, so the pipe closes; a child that left the group may still hold it.
        let abort = reader.abort_handle();
        if tokio::time::timeout(Duration::from_millis(100), reader)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    let status = status?;
    if status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&tail.locked()).into_owned();
    let last = err.lines().last().unwrap_or("").trim().to_string();
    let code = status
        .code()
        .map_or("a signal".to_string(), |c| format!("code {c}"));
    Err(if last.is_empty() {
        format!("`{cmd}` exited with {code}")
    } else {
        format!(
            "`{cmd}` exited with {code}: {}",
            crate::logs::sanitize(last.as_bytes())
        )
    })
}

fn spawned_pid(child: &std::io::Result<tokio::process::Child>) -> Option<i32> {
    child.as_ref().ok()?.id().map(|p| p as i32)
}

/// The end of a failed `cmd` probe's error output kept for its message.
const PROBE_OUTPUT_KEPT: usize = 4096;

/// Kills a probe's process group when dropped, and forgets its leader.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            crate::process::signal_group(pid as i32, nix::sys::signal::Signal::SIGKILL);
            crate::process::orphans::own().remove(pid as i32);
        }
    }
}
