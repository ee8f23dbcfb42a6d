//! The line splitter and sanitiser: any bytes, in any chunks, split into lines that join back
//! to the input; sanitised lines carry no control sequence but SGR colours.
#![no_main]

use devstack::logs::{LineSplitter, MAX_LINE, sanitize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, bytes)) = data.split_first() else {
        return;
    };
    // Chunk sizes from the first byte: 1..=256 bytes, a PTY read's worth of variety.
    let step = cuts as usize + 1;
    let mut splitter = LineSplitter::default();
    let mut joined = Vec::with_capacity(bytes.len());
    let mut ended = true;
    let mut emit = |line: &[u8], cut: bool| {
        assert!(line.len() <= MAX_LINE);
        assert!(!line.contains(&b'\n'));
        joined.extend_from_slice(line);
        if !cut {
            joined.push(b'\n');
        }
        ended = !cut;
        let shown = sanitize(line);
        check_sanitized(&shown);
    };
    for chunk in bytes.chunks(step) {
        splitter.push(chunk, &mut emit);
    }
    splitter.finish(&mut emit);
    // Every byte comes back: the final piece gets a newline the input may not have had.
    if !bytes.ends_with(b"\n") && !bytes.is_empty() && joined.last() == Some(&b'\n') {
        joined.pop();
    }
    assert_eq!(joined, bytes);
    let _ = ended;
});

/// Only printable characters, tabs and complete SGR sequences (`ESC [ digits ; : m`).
fn check_sanitized(text: &str) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            assert_eq!(chars.next(), Some('['), "{text:?}");
            loop {
                match chars.next() {
                    Some('m') => break,
                    Some(d) if d.is_ascii_digit() || d == ';' || d == ':' => {}
                    other => panic!("not an SGR sequence ({other:?}) in {text:?}"),
                }
            }
        } else {
            assert!(c == '\t' || !c.is_control(), "{c:?} in {text:?}");
        }
    }
}
