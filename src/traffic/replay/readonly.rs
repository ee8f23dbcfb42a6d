//! Which decoded commands and queries a replay may send again: a Redis command from a fixed list
//! of read-only ones, a single read-only PostgreSQL statement (read in its normalised form, so
//! that a literal, a comment or a dollar-quoted body can't pass for a keyword). What is refused
//! says why, in one line; the Postgres replay runs inside `BEGIN READ ONLY` … `ROLLBACK` as well.

use crate::traffic::decode::plain;

/// Redis commands that read and change nothing (the keyspace, the server's state, the
/// connection's beyond itself).
const REDIS: &[&str] = &[
    "GET",
    "MGET",
    "GETRANGE",
    "SUBSTR",
    "STRLEN",
    "EXISTS",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "TYPE",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "HGET",
    "HMGET",
    "HGETALL",
    "HEXISTS",
    "HLEN",
    "HKEYS",
    "HVALS",
    "HSTRLEN",
    "HRANDFIELD",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LPOS",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SRANDMEMBER",
    "SINTER",
    "SINTERCARD",
    "SUNION",
    "SDIFF",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZREVRANGEBYLEX",
    "ZSCORE",
    "ZMSCORE",
    "ZCARD",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANK",
    "ZREVRANK",
    "XRANGE",
    "XREVRANGE",
    "XLEN",
    "GEOPOS",
    "GEODIST",
    "GEOHASH",
    "SCAN",
    "HSCAN",
    "SSCAN",
    "ZSCAN",
    "KEYS",
    "RANDOMKEY",
    "DBSIZE",
    "PING",
    "ECHO",
    "INFO",
    "TIME",
];

/// Whether a Redis command (its name first) may be replayed; else why not.
pub fn redis(args: &[Vec<u8>]) -> Result<(), String> {
    let name = args
        .first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default();
    match REDIS.contains(&name.as_str()) {
        true => Ok(()),
        false => Err(format!(
            "`{name}` is not a read-only command: only reads are replayed (GET, MGET, HGETALL, \
             LRANGE, SMEMBERS, ZRANGE, SCAN, KEYS, EXISTS, TTL, TYPE, …)"
        )),
    }
}

/// How a read-only statement may begin.
const FIRST: &[&str] = &["SELECT", "WITH", "SHOW", "VALUES", "TABLE", "EXPLAIN"];
/// Words that make a statement that begins so write, lock or run something.
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "COPY", "CALL", "DO", "LOCK", "TRUNCATE",
    "ANALYZE", "ANALYSE",
];

/// Whether a PostgreSQL query is a single read-only statement; else why not.
pub fn postgres(query: &str) -> Result<(), String> {
    let plain = plain(query);
    let statements: Vec<&str> = plain
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [statement] = statements[..] else {
        return Err(match statements.len() {
            0 => "the query is empty: nothing to replay".into(),
            n => format!("it holds {n} statements: only a single read-only statement is replayed"),
        });
    };
    let words = words(statement);
    let first = words.first().map_or("", String::as_str);
    if !FIRST.contains(&first) {
        return Err(format!(
            "`{first}` is not read-only: only SELECT, WITH … SELECT, SHOW, VALUES, TABLE and \
             EXPLAIN (without ANALYZE) are replayed"
        ));
    }
    if let Some(write) = words.iter().find(|w| WRITES.contains(&w.as_str())) {
        return Err(format!(
            "it holds `{write}`: only a statement that reads (no INSERT, UPDATE, DELETE, \
             SELECT … INTO, EXPLAIN ANALYZE, …) is replayed"
        ));
    }
    if first != "EXPLAIN" && words.windows(2).any(|w| w[0] == "FOR" && is_lock(&w[1])) {
        return Err("it locks rows (`FOR UPDATE`/`SHARE`): only plain reads are replayed".into());
    }
    Ok(())
}

fn is_lock(word: &str) -> bool {
    matches!(word, "SHARE" | "NO" | "KEY")
}

/// A normalised statement's words, upper case: quoted identifiers (`"insert"`) left out.
fn words(statement: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut word = String::new();
    for c in statement.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_alphanumeric() || c == '_') {
            word.push(c.to_ascii_uppercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_redis_reads_pass() {
        for read in [
            "GET", "get", "MGET", "HGETALL", "ZRANGE", "SCAN", "PING", "KEYS",
        ] {
            assert_eq!(redis(&args(&[read, "k"])), Ok(()), "{read}");
        }
        for write in [
            "SET", "DEL", "INCR", "FLUSHALL", "EVAL", "SELECT", "AUTH", "CONFIG", "SORT", "LPOP",
            "GETDEL", "GETEX", "MULTI", "",
        ] {
            let e = redis(&args(&[write, "k"])).unwrap_err();
            assert!(e.contains("not a read-only command"), "{write}: {e}");
        }
        assert!(redis(&[]).is_err());
    }

    #[test]
    fn only_a_single_read_only_statement_passes() {
        for read in [
            "SELECT * FROM users WHERE id = $1",
            "  select 1;  ",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "SHOW search_path",
            "VALUES (1), (2)",
            "TABLE users",
            "EXPLAIN SELECT 1",
            "SELECT 'insert into t; delete' AS x",
            "SELECT \"update\" FROM t -- DELETE FROM t",
            "SELECT $$ DROP TABLE t; $$",
            "/* UPDATE */ SELECT 1",
        ] {
            assert_eq!(postgres(read), Ok(()), "{read}");
        }
        for (write, why) in [
            ("INSERT INTO t VALUES (1)", "`INSERT` is not read-only"),
            ("UPDATE t SET a = 1", "`UPDATE` is not read-only"),
            ("delete from t", "`DELETE` is not read-only"),
            ("SELECT 1; DELETE FROM t", "2 statements"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "`DELETE`",
            ),
            ("SELECT * INTO copy FROM t", "`INTO`"),
            ("EXPLAIN ANALYZE DELETE FROM t", "`ANALYZE`"),
            ("EXPLAIN (ANALYZE) SELECT 1", "`ANALYZE`"),
            ("SELECT * FROM t FOR UPDATE", "`UPDATE`"),
            ("SELECT * FROM t FOR SHARE", "locks rows"),
            ("BEGIN", "`BEGIN` is not read-only"),
            ("SET ROLE admin", "`SET` is not read-only"),
            ("", "empty"),
            (" ; ", "empty"),
        ] {
            let e = postgres(write).unwrap_err();
            assert!(e.contains(why), "{write}: {e}");
        }
    }
}
