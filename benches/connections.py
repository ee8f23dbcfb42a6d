#!/usr/bin/env python3
"""The proxy under many connections (issue 23, item 2 and the RSS part of item 10), through the
release binary: a stack of two services (fixtures/http_echo.rs) started under `ulimit -Sn 1024`.

1. 2,000 idle connections to one service: how long `devstack ps` takes, whether the other
   service answers, whether `restart` and `down` work.
2. 2,000 slowloris connections (an unfinished head, a byte every 3 s): the same, and
   devstack's RSS while they are held and once the head timeout has cut them.
3. A burst of 5,000 connections each making one request: devstack's RSS before, at the peak
   and after they closed.

Targets: `ps` under 100 ms with 2,000 idle or slowloris connections; the other service served;
`restart` and `down` working; RSS back near where it was after the burst.
Usage: benches/connections.py   (builds the release binary and the fixture first)
"""
import os, resource, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "devstack",
                "--example", "http_echo"], cwd=ROOT, check=True)
BIN = os.path.join(ROOT, "target/release/devstack")
ECHO = os.path.join(ROOT, "target/release/examples/http_echo")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data.split(b" ")[1].decode() if data else "closed"
    except OSError as e:
        return f"error: {e}"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed(args, folder):
    start = time.monotonic()
    done = subprocess.run([BIN] + args, cwd=folder, capture_output=True, timeout=60)
    return (time.monotonic() - start) * 1000, done.returncode


def start_stack():
    folder = tempfile.mkdtemp()
    api, web = free_port(), free_port()
    with open(os.path.join(folder, "devstack.toml"), "w") as f:
        f.write(f'[services.api]\nrun = "{ECHO} $PORT 1"\nport = {api}\n'
                f'[services.web]\nrun = "{ECHO} $PORT 1"\nport = {web}\n')
    stack = subprocess.Popen([BIN, "up", "--headless"], cwd=folder,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: resource.setrlimit(
                                 resource.RLIMIT_NOFILE, (1024, hard)))
    for _ in range(300):
        if get(api) == "200" and get(web) == "200":
            break
        time.sleep(0.1)
    return stack, folder, api, web


def check(label, stack, folder, api, web):
    ps_ms, ps_rc = timed(["ps"], folder)
    print(f"{label}: ps {ps_ms:.0f} ms (exit {ps_rc}); web answers {get(web)}; "
          f"devstack RSS {rss_mb(stack.pid):.1f} MB")


def idle(n, port):
    conns = []
    for _ in range(n):
        conns.append(socket.create_connection(("127.0.0.1", port)))
    return conns


def main():
    stack, folder, api, web = start_stack()
    try:
        time.sleep(1)
        print(f"started: devstack RSS {rss_mb(stack.pid):.1f} MB, soft limit given 1024")
        conns = idle(2000, api)
        time.sleep(1)
        check("2,000 idle connections to api", stack, folder, api, web)
        ms, rc = timed(["restart", "api"], folder)
        print(f"  restart api: {ms:.0f} ms (exit {rc}); api answers {get(api)}")
        for c in conns:
            c.close()
        time.sleep(1)

        slow = idle(2000, api)
        for c in slow:
            c.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
        start = time.monotonic()
        cut = 0
        while time.monotonic() - start < 45:
            for c in slow:
                try:
                    c.send(b"a")
                except OSError:
                    pass
            if time.monotonic() - start > 3 and time.monotonic() - start < 6:
                check("2,000 slowloris connections to api", stack, folder, api, web)
            time.sleep(3)
        for c in slow:
            c.setblocking(False)
            try:
                if c.recv(100).startswith(b"HTTP/1.1 408"):
                    cut += 1
            except OSError:
                pass
            c.close()
        print(f"  after 45 s: {cut} of 2,000 answered 408 (head timeout 30 s); "
              f"devstack RSS {rss_mb(stack.pid):.1f} MB")

        before = rss_mb(stack.pid)
        burst = idle(5000, api)
        refused = 0
        for c in burst:
            try:
                c.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            except OSError:
                pass
        for c in burst:
            try:
                if not c.recv(65536).startswith(b"HTTP/1.1 200"):
                    refused += 1
            except OSError:
                refused += 1
        peak = rss_mb(stack.pid)
        for c in burst:
            c.close()
        time.sleep(3)
        print(f"burst of 5,000 connections ({refused} not answered 200: the service itself keeps "
              f"1024 files): RSS {before:.1f} MB "
              f"before, {peak:.1f} MB with them open, {rss_mb(stack.pid):.1f} MB 3 s after they "
              f"closed")
        ms, rc = timed(["down"], folder)
        print(f"down: {ms:.0f} ms (exit {rc})")
        stack.wait(timeout=30)
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGINT)
            stack.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
