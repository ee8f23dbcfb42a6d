//! The engine never waits on the disk: a service's log file that takes nothing (a FIFO nobody
//! reads) holds up that service's output, not the engine.

use super::*;
use crate::logs::{LogLine, Stream};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

const WEB: &str = r#"
[services.web]
run = "web"
"#;

/// Lines of 1 kB: far more than a pipe and the service's queue hold.
const FLOOD: usize = 8_000;

#[test]
fn the_engine_answers_commands_while_a_log_file_is_stuck() {
    // The engine runs on a runtime of its own thread: if it blocked, only the wait below would
    // tell (a blocked test runtime could not).
    let (answered, answers) = std::sync::mpsc::channel();
    let (fifo_tx, fifo_rx) = std::sync::mpsc::channel();
    let flooded = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (f, d) = (flooded.clone(), done.clone());
    let engine = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let rig = rig(WEB);
            let fifo = rig.dir.join("logs").join("web.log");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
            fifo_tx.send(fifo).unwrap();
            rig.until_state("web", State::Running).await;
            // The service floods its output from a thread of its own, as a PTY reader does;
            // the log file takes 64 kB, then nothing.
            let (logs, web) = (rig.logs.clone(), rig.id("web"));
            let (count, end) = (f.clone(), d.clone());
            let flood = std::thread::spawn(move || {
                for n in 0..FLOOD {
                    let line = LogLine {
                        service: web,
                        stream: Stream::Out,
                        time: SystemTime::now(),
                        text: format!("{n} {}", "x".repeat(1000)),
                    };
                    logs.push(web, vec![line]);
                    count.store(n + 1, Ordering::Relaxed);
                }
                end.store(true, Ordering::Relaxed);
            });
            // Until the flood is held up (its count stands still).
            let mut last = usize::MAX;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let now = f.load(Ordering::Relaxed);
                assert!(
                    !d.load(Ordering::Relaxed),
                    "the log file took the whole flood"
                );
                if now == last {
                    break;
                }
                last = now;
            }
            // The engine still applies commands, each said in the service's log.
            rig.send(|service| Command::Restart { service }, "web")
                .await;
            rig.until("web started again", |r| r.fake.count("web") == 2)
                .await;
            rig.send(|service| Command::Stop { service }, "web").await;
            rig.until_state("web", State::Stopped).await;
            answered.send(()).unwrap();
            flood.join().unwrap();
        });
    });
    let fifo = fifo_rx.recv().unwrap();
    let result = answers.recv_timeout(Duration::from_secs(60));
    // Read the FIFO now, which lets the writer and the flood go on.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut file = std::fs::File::open(fifo).unwrap();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        text
    });
    assert!(
        result.is_ok(),
        "the engine did not answer while the log file was stuck (flooded {} lines)",
        flooded.load(Ordering::Relaxed)
    );
    engine.join().unwrap();
    // Once the file took lines again, every line reached it, in the order logged.
    let text = reader.join().unwrap();
    let flood: Vec<usize> = text
        .lines()
        .filter(|l| !l.contains("[devstack]"))
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(flood, (0..FLOOD).collect::<Vec<_>>(), "a line was lost");
    let said = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("never said {needle:?}"))
    };
    assert!(said("[devstack] restarting") < said("[devstack] stopped ("));
}
