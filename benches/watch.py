#!/usr/bin/env python3
"""File-watch benchmarks of devstack (run: benches/watch.py).

1. Edit-to-restart overhead: a watched service whose build is `true`; write a source file and
   time until the new process prints its start time. Overhead = that latency minus the debounce
   (50 ms here) minus the build's own time (from its "build finished in" line). Target <= 50 ms.
2. Watch cost: the same stack beside a `target/` of 100,000 files in 1,000 folders (ignored):
   inotify watches in use, and time from start to "watching N folders", with and without it.
"""
import os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
BIN = os.path.join(ROOT, "target/release/devstack")
CONFIG = """
[stack]
debounce = "50ms"
[services.app]
build = "true"
run = "echo started=$(date +%s%N); exec sleep 300"
watch = ["src/**"]
"""


def start(folder):
    proc = subprocess.Popen([BIN, "up", "--headless"], cwd=folder, stdout=subprocess.PIPE, text=True, bufsize=1)
    return proc


def wait_line(proc, pattern, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return m, line
    raise SystemExit(f"no line matching {pattern!r}")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def startup(folder):
    t0 = time.time()
    proc = start(folder)
    m, _ = wait_line(proc, r"watching (\d+) folders?")
    took = time.time() - t0
    wait_line(proc, r"started=\d")
    stop(proc)
    return int(m.group(1)), took


with tempfile.TemporaryDirectory() as work:
    os.makedirs(os.path.join(work, "src"))
    with open(os.path.join(work, "devstack.toml"), "w") as f:
        f.write(CONFIG)
    with open(os.path.join(work, "src/main.rs"), "w") as f:
        f.write("fn main() {}\n")

    # 1. latency
    proc = start(work)
    wait_line(proc, r"started=\d")
    overheads = []
    for i in range(15):
        time.sleep(0.3)
        t0 = time.time_ns()
        with open(os.path.join(work, "src/main.rs"), "w") as f:
            f.write(f"fn main() {{ /* {i} */ }}\n")
        build_ms = None
        while True:
            line = proc.stdout.readline()
            b = re.search(r"build finished in (\d+)ms", line)
            if b:
                build_ms = int(b.group(1))
            s = re.search(r"started=(\d+)", line)
            if s:
                break
        latency_ms = (int(s.group(1)) - t0) / 1e6
        overheads.append(latency_ms - 50 - (build_ms or 0))
    stop(proc)
    print(f"edit -> new process running, minus 50 ms debounce and the build: median {statistics.median(overheads):.1f} ms, "
          f"max {max(overheads):.1f} ms over {len(overheads)} edits (target <= 50 ms)")

    # 2. watch cost
    shutil.rmtree(os.path.join(work, ".devstack"), ignore_errors=True)
    watches_small, t_small = min((startup(work) for _ in range(3)), key=lambda r: r[1])
    target = os.path.join(work, "target")
    for d in range(1000):
        sub = os.path.join(target, f"d{d:04}")
        os.makedirs(sub)
        for n in range(100):
            open(os.path.join(sub, f"f{n}.o"), "w").close()
    watches_big, t_big = min((startup(work) for _ in range(3)), key=lambda r: r[1])
    print(f"without target/: {watches_small} inotify watches, watching after {t_small * 1000:.0f} ms")
    print(f"with a 100,000-file target/ (1,000 folders, ignored): {watches_big} inotify watches, watching after {t_big * 1000:.0f} ms")
