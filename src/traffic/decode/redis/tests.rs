use super::*;
use crate::traffic::decode::script::{Caller, Service, every_cut, ex, feed, seen};
use std::time::Duration;

fn new() -> Box<dyn Decoder> {
    Box::new(Redis::new())
}

/// A command as clients send it: an array of bulk strings.
fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

#[test]
fn commands_with_their_replies_in_any_chunking() {
    let (set, get, miss, incr, bad, auth) = (
        cmd(&["SET", "user:42", "alice"]),
        cmd(&["get", "user:42"]),
        cmd(&["GET", "nope"]),
        cmd(&["INCR", "hits"]),
        cmd(&["NOPE"]),
        cmd(&["AUTH", "alice", "s3cret"]),
    );
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, set),
        (Service, b"+OK\r\n".to_vec()),
        (Caller, get),
        (Service, b"$5\r\nalice\r\n".to_vec()),
        (Caller, miss),
        (Service, b"$-1\r\n".to_vec()),
        (Caller, incr),
        (Service, b":7\r\n".to_vec()),
        (Caller, bad),
        (
            Service,
            b"-ERR unknown command 'NOPE', with args beginning with: \r\n".to_vec(),
        ),
        (Caller, auth),
        (Service, b"+OK\r\n".to_vec()),
        (Caller, b"PING\r\n".to_vec()),
        (Service, b"+PONG\r\n".to_vec()),
        (Caller, b"set 'a b' \"c\"\r\n".to_vec()),
        (Service, b"+OK\r\n".to_vec()),
    ];
    let got = every_cut(new, &script);
    assert_eq!(
        got,
        vec![
            ex("SET user:42", "SET", "OK", None),
            ex("GET user:42", "GET", "bulk 5B", None),
            ex("GET nope", "GET", "nil", None),
            ex("INCR hits", "INCR", "integer 7", None),
            ex(
                "NOPE",
                "NOPE",
                "error",
                Some("ERR unknown command 'NOPE', with args beginning with: ")
            ),
            ex("AUTH", "AUTH", "OK", None),
            ex("PING", "PING", "PONG", None),
            ex("SET a b", "SET", "OK", None),
        ]
    );
}

#[test]
fn pipelined_commands_are_matched_in_order_with_latencies() {
    let mut batch = cmd(&["SET", "a", "1"]);
    batch.extend(cmd(&["INCR", "a"]));
    batch.extend(cmd(&["GET", "a"]));
    let mut decoder = Redis::new();
    let t0 = Instant::now();
    decoder.caller_sent(&batch, t0);
    decoder.service_sent(b"+OK\r\n:2\r\n", t0 + Duration::from_millis(2));
    assert_eq!(decoder.take().len(), 2);
    decoder.service_sent(b"$1\r\n2\r\n", t0 + Duration::from_millis(5));
    let last = decoder.take();
    assert_eq!(seen(&last), vec![ex("GET a", "GET", "bulk 1B", None)]);
    assert_eq!(last[0].started, t0);
    assert_eq!(last[0].latency, Duration::from_millis(5));
}

#[test]
fn a_command_started_in_an_earlier_read_is_timed_from_it() {
    let get = cmd(&["GET", "k"]);
    let mut decoder = Redis::new();
    let t0 = Instant::now();
    decoder.caller_sent(&get[..3], t0);
    decoder.caller_sent(&get[3..], t0 + Duration::from_millis(1));
    decoder.service_sent(b"$-1\r\n", t0 + Duration::from_millis(4));
    let got = decoder.take();
    assert_eq!(got[0].started, t0);
    assert_eq!(got[0].latency, Duration::from_millis(4));
}

#[test]
fn pub_sub_messages_are_not_replies() {
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, cmd(&["SUBSCRIBE", "news", "sport"])),
        (
            Service,
            b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n".to_vec(),
        ),
        (
            Service,
            b"*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n".to_vec(),
        ),
        (
            Service,
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec(),
        ),
        (Caller, cmd(&["PSUBSCRIBE", "n*"])),
        (
            Service,
            b"*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$1\r\n0\r\n".to_vec(),
        ),
        (
            Service,
            b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n".to_vec(),
        ),
        (
            Service,
            b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nho\r\n".to_vec(),
        ),
        (Caller, cmd(&["PING"])),
        (Service, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n".to_vec()),
        (Caller, cmd(&["UNSUBSCRIBE"])),
        (
            Service,
            b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:2\r\n".to_vec(),
        ),
        (
            Service,
            b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:1\r\n".to_vec(),
        ),
        (Caller, cmd(&["PUNSUBSCRIBE"])),
        (
            Service,
            b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n".to_vec(),
        ),
        (Caller, cmd(&["UNSUBSCRIBE"])),
        (
            Service,
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n".to_vec(),
        ),
        (Caller, cmd(&["LRANGE", "l", "0", "-1"])),
        (Service, b"*2\r\n$7\r\nmessage\r\n$1\r\nx\r\n".to_vec()),
    ];
    let got = every_cut(new, &script);
    assert_eq!(
        got,
        vec![
            ex("SUBSCRIBE news", "SUBSCRIBE", "2 subscriptions", None),
            ex("PSUBSCRIBE n*", "PSUBSCRIBE", "3 subscriptions", None),
            ex("PING", "PING", "array 2", None),
            ex("UNSUBSCRIBE", "UNSUBSCRIBE", "1 subscription", None),
            ex("PUNSUBSCRIBE", "PUNSUBSCRIBE", "0 subscriptions", None),
            ex("UNSUBSCRIBE", "UNSUBSCRIBE", "0 subscriptions", None),
            ex("LRANGE l", "LRANGE", "array 2", None),
        ]
    );
}

#[test]
fn resp3_pushes_are_not_replies() {
    let hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n";
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, cmd(&["HELLO", "3", "AUTH", "default", "pw"])),
        (Service, hello.to_vec()),
        (Caller, cmd(&["CLIENT", "TRACKING", "on"])),
        (Service, b"+OK\r\n".to_vec()),
        (Caller, cmd(&["GET", "k"])),
        (
            Service,
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n".to_vec(),
        ),
        (Service, b"_\r\n".to_vec()),
        (Caller, cmd(&["SUBSCRIBE", "c"])),
        (
            Service,
            b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n".to_vec(),
        ),
        (
            Service,
            b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n".to_vec(),
        ),
        (Caller, cmd(&["HGETALL", "h"])),
        (
            Service,
            b"|1\r\n+ttl\r\n:5\r\n%1\r\n+f\r\n,1.5\r\n".to_vec(),
        ),
        (Caller, cmd(&["LRANGE", "l", "0", "1"])),
        (Service, b"*2\r\n$7\r\nmessage\r\n$1\r\nx\r\n".to_vec()),
        (Caller, cmd(&["EXISTS", "k"])),
        (Service, b"#f\r\n".to_vec()),
    ];
    assert_eq!(
        every_cut(new, &script),
        vec![
            ex("HELLO 3", "HELLO", "map 2", None),
            ex("CLIENT TRACKING", "CLIENT TRACKING", "OK", None),
            ex("GET k", "GET", "nil", None),
            ex("SUBSCRIBE c", "SUBSCRIBE", "1 subscription", None),
            ex("HGETALL h", "HGETALL", "map 1", None),
            ex("LRANGE l", "LRANGE", "array 2", None),
            ex("EXISTS k", "EXISTS", "false", None),
        ]
    );
}

#[test]
fn transactions_monitor_and_silenced_replies() {
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, cmd(&["MULTI"])),
        (Service, b"+OK\r\n".to_vec()),
        (Caller, cmd(&["INCR", "a"])),
        (Service, b"+QUEUED\r\n".to_vec()),
        (Caller, cmd(&["EXEC"])),
        (Service, b"*1\r\n:1\r\n".to_vec()),
        (Caller, cmd(&["CLIENT", "REPLY", "OFF"])),
        (Caller, cmd(&["SET", "x", "1"])),
        (Caller, cmd(&["CLIENT", "REPLY", "ON"])),
        (Service, b"+OK\r\n".to_vec()),
        (Caller, cmd(&["CLIENT", "REPLY", "SKIP"])),
        (Caller, cmd(&["SET", "y", "1"])),
        (Caller, cmd(&["GET", "y"])),
        (Service, b"$1\r\n1\r\n".to_vec()),
        (Caller, cmd(&["MONITOR"])),
        (Service, b"+OK\r\n".to_vec()),
        (
            Service,
            b"+1700000000.1 [0 127.0.0.1:5] \"get\" \"y\"\r\n".to_vec(),
        ),
    ];
    assert_eq!(
        every_cut(new, &script),
        vec![
            ex("MULTI", "MULTI", "OK", None),
            ex("INCR a", "INCR", "QUEUED", None),
            ex("EXEC", "EXEC", "array 1", None),
            ex("CLIENT REPLY", "CLIENT REPLY", "no reply", None),
            ex("SET x", "SET", "no reply", None),
            ex("CLIENT REPLY", "CLIENT REPLY", "OK", None),
            ex("CLIENT REPLY", "CLIENT REPLY", "no reply", None),
            ex("SET y", "SET", "no reply", None),
            ex("GET y", "GET", "bulk 1B", None),
            ex("MONITOR", "MONITOR", "OK", None),
        ]
    );
}

#[test]
fn names_and_keys() {
    let cases: &[(&[&str], &str)] = &[
        (&["EVAL", "return 1", "1", "k1", "a"], "EVAL k1"),
        (&["EVALSHA", "abc", "0"], "EVALSHA"),
        (&["XREAD", "COUNT", "2", "STREAMS", "s1", "0"], "XREAD s1"),
        (&["OBJECT", "encoding", "k"], "OBJECT ENCODING k"),
        (&["CONFIG", "SET", "requirepass", "secret"], "CONFIG SET"),
        (&["CLIENT", "SETNAME", "me"], "CLIENT SETNAME"),
        (&["HELLO", "3", "AUTH", "u", "p"], "HELLO 3"),
        (&["HELLO", "AUTH", "u", "p"], "HELLO"),
        (&["AUTH", "pw"], "AUTH"),
        (&["SELECT", "2"], "SELECT"),
        (&["PUBLISH", "news", "hi"], "PUBLISH news"),
        (&["BITOP", "AND", "dest", "a"], "BITOP dest"),
        (&["GET", "bin\x00\n"], "GET bin\\x00\\x0a"),
    ];
    for (args, want) in cases {
        let mut decoder = Redis::new();
        let t = Instant::now();
        decoder.caller_sent(&cmd(args), t);
        decoder.service_sent(b"+OK\r\n", t);
        assert_eq!(decoder.take()[0].request, *want, "{args:?}");
    }
}

#[test]
fn a_huge_value_is_counted_not_kept() {
    let mut decoder = Redis::new();
    let t = Instant::now();
    let value = vec![b'v'; 3 << 20];
    decoder.caller_sent(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$3145728\r\n", t);
    for chunk in value.chunks(64 * 1024) {
        decoder.caller_sent(chunk, t);
    }
    decoder.caller_sent(b"\r\n", t);
    decoder.caller_sent(&cmd(&["GET", "big"]), t);
    decoder.service_sent(b"+OK\r\n$3145728\r\n", t);
    for chunk in value.chunks(100_000) {
        decoder.service_sent(chunk, t);
    }
    decoder.service_sent(b"\r\n", t);
    assert_eq!(
        seen(&decoder.take()),
        vec![
            ex("SET big", "SET", "OK", None),
            ex("GET big", "GET", "bulk 3.1MB", None)
        ]
    );
    assert!(decoder.commands.held() <= 2 * KEEP_BOUND);
    assert!(decoder.replies.held() <= 2 * KEEP_BOUND);
}

const KEEP_BOUND: usize = crate::traffic::decode::KEEP;

#[test]
fn a_flood_of_pipelined_commands_is_given_up_past_the_bound() {
    let mut decoder = Redis::new();
    let one = cmd(&["INCR", "n"]);
    let flood = one.repeat(MAX_PENDING);
    decoder.caller_sent(&flood, Instant::now());
    assert_eq!(decoder.state(), State::Decoding);
    decoder.caller_sent(&one, Instant::now());
    assert_eq!(decoder.state(), State::GaveUp);
    assert!(decoder.matcher.pending.is_empty());
}

#[test]
fn what_cannot_be_matched_or_read_is_given_up() {
    let mut decoder = Redis::new();
    decoder.service_sent(b"+OK\r\n", Instant::now());
    assert_eq!(decoder.state(), State::GaveUp, "a reply to nothing");
    let mut decoder = Redis::new();
    decoder.caller_sent(&cmd(&["GET", "a"]), Instant::now());
    decoder.service_sent(b"HTTP/1.1 200 OK\r\n", Instant::now());
    assert_eq!(decoder.state(), State::GaveUp);
    assert!(decoder.take().is_empty());
    decoder.service_sent(b"+OK\r\n", Instant::now());
    assert!(decoder.take().is_empty(), "nothing once given up");
}

#[test]
fn what_had_no_reply_is_told_at_the_end() {
    let mut decoder = Redis::new();
    let t = Instant::now();
    decoder.caller_sent(&cmd(&["BLPOP", "q", "0"]), t);
    decoder.end(t + Duration::from_secs(1));
    let got = decoder.take();
    assert_eq!(seen(&got), vec![ex("BLPOP q", "BLPOP", "no reply", None)]);
    assert_eq!(got[0].latency, Duration::from_secs(1));
}

#[test]
fn empty_commands_are_skipped() {
    let script: Vec<(_, Vec<u8>)> = vec![
        (Caller, b"\r\n*0\r\n".to_vec()),
        (Caller, cmd(&["PING"])),
        (Service, b"+PONG\r\n".to_vec()),
    ];
    assert_eq!(
        every_cut(new, &script),
        vec![ex("PING", "PING", "PONG", None)]
    );
}

#[test]
fn no_input_panics() {
    // A few shapes the fuzzer would try first; `fuzz/fuzz_targets/redis.rs` tries the rest.
    let inputs: &[&[u8]] = &[
        b"*1\r\n$-1\r\n",
        b"*2\r\n:1\r\n+x\r\n",
        b"*1\r\n$3\r\nab",
        b"*9999999999999999999\r\n",
        b"*-9223372036854775808\r\n",
        b"$9223372036854775807\r\n",
        b"*1\r\n*1\r\n*1\r\n",
        b"\"unbalanced\r\n",
        b"%1\r\n*1\r\n:1\r\n:2\r\n",
        b"=3\r\nab\r\n",
    ];
    for input in inputs {
        for side in [true, false] {
            let mut decoder = Redis::new();
            let t = Instant::now();
            if side {
                decoder.caller_sent(input, t);
                decoder.service_sent(input, t);
            } else {
                decoder.service_sent(input, t);
                decoder.caller_sent(input, t);
            }
            decoder.end(t);
            let _ = feed(&mut decoder, t, &[(Caller, input), (Service, input)]);
        }
    }
}

#[test]
fn a_command_is_kept_to_resend_only_when_asked_within_the_cap_and_never_a_credential() {
    use crate::traffic::decode::resend::{Command, Resend};
    let script = [
        cmd(&["GET", "k"]),
        cmd(&["SELECT", "3"]),
        cmd(&["HMGET", "h", "a b", "c"]),
        cmd(&["AUTH", "alice", "s3cret"]),
        cmd(&["HELLO", "3", "AUTH", "alice", "s3cret"]),
        cmd(&["SET", "k", &"x".repeat(100)]),
        b"get 'a b'\r\n".to_vec(),
    ]
    .concat();
    let kept = |cap: Option<usize>| {
        let mut decoder = Redis::new();
        if let Some(cap) = cap {
            decoder.keep(cap);
        }
        let at = Instant::now();
        decoder.caller_sent(&script, at);
        decoder.service_sent(&b"+OK\r\n".repeat(7), at);
        let taken = decoder.take();
        taken.into_iter().map(|e| e.resend).collect::<Vec<_>>()
    };
    assert!(kept(None).iter().all(Option::is_none), "not asked: nothing");
    let kept: Vec<Resend> = kept(Some(64))
        .into_iter()
        .map(|r| (*r.unwrap()).clone())
        .collect();
    let redis = |args: &[&str], db| {
        let args = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        Resend::Redis(Command { args, db })
    };
    assert_eq!(kept[0], redis(&["GET", "k"], None));
    assert_eq!(kept[1], redis(&["SELECT", "3"], Some(3)));
    assert_eq!(kept[2], redis(&["HMGET", "h", "a b", "c"], Some(3)));
    assert_eq!(kept[3], Resend::credential());
    assert_eq!(kept[4], Resend::credential());
    let Resend::Withheld(cut) = &kept[5] else {
        panic!("{:?}", kept[5])
    };
    assert!(
        cut.contains("it was cut") && cut.contains("over the 64 kept"),
        "{cut}"
    );
    assert_eq!(kept[6], redis(&["get", "a b"], Some(3)), "inline");
}

#[test]
fn frames_tell_where_each_command_or_reply_ends_in_any_chunking() {
    let sent = [
        cmd(&["client", "reply", "off"]),
        cmd(&["GET", "k"]),
        b"PING\r\n".to_vec(),
    ]
    .concat();
    for cut in 1..sent.len() {
        let mut frames = Frames::commands();
        let (a, b) = sent.split_at(cut);
        let mut ends: Vec<(usize, String)> = Vec::new();
        for (offset, chunk) in [(0, a), (cut, b)] {
            let ended = frames.ends(chunk).unwrap();
            ends.extend(ended.into_iter().map(|e| (offset + e.at, e.name)));
        }
        let first = cmd(&["client", "reply", "off"]).len();
        let second = first + cmd(&["GET", "k"]).len();
        let want = [
            (first, "CLIENT REPLY"),
            (second, "GET"),
            (sent.len(), "PING"),
        ];
        let want: Vec<(usize, String)> = want.iter().map(|(at, n)| (*at, n.to_string())).collect();
        assert_eq!(ends, want, "cut at {cut}");
        assert!(!frames.mid_frame());
    }
    let mut replies = Frames::replies();
    let said = b"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*0\r\n:1\r\n";
    let ended = replies.ends(said).unwrap();
    let pushes: Vec<(usize, bool)> = ended.iter().map(|e| (e.at, e.push)).collect();
    assert_eq!(pushes, [(5, false), (30, true), (34, false)]);
    assert!(Frames::commands().ends(b"*x\r\n").is_err());
}
