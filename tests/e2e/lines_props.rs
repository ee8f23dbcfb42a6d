//! Properties of how service output becomes lines (proptest): splitting then joining gives back
//! every byte, whatever the chunks a PTY read hands over; sanitising drops exactly the control
//! sequences and keeps every printable character and SGR colour, in order.

use devstack::logs::{LineSplitter, MAX_LINE, sanitize};
use proptest::prelude::*;

/// Split `bytes`, fed in chunks of the given sizes (cycled); the pieces and whether each was cut.
fn split(bytes: &[u8], sizes: &[usize]) -> Vec<(Vec<u8>, bool)> {
    let mut splitter = LineSplitter::default();
    let mut out = Vec::new();
    let mut emit = |line: &[u8], cut: bool| out.push((line.to_vec(), cut));
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        splitter.push(&rest[..n], &mut emit);
        rest = &rest[n..];
        i += 1;
    }
    splitter.finish(&mut emit);
    out
}

/// Output-like bytes: text, newlines, CRLFs, escapes, invalid UTF-8, and now and then a line
/// longer than `MAX_LINE`.
fn output() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 ]{0,40}".prop_map(String::into_bytes),
        2 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\x1b[31m".to_vec()),
        1 => Just(b"\x1b]0;title\x07".to_vec()),
        1 => "é|日本|🦀".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..8),
        1 => (MAX_LINE - 3..MAX_LINE + 70_000).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn splitting_then_joining_gives_back_every_byte(
        bytes in output(),
        sizes in prop::collection::vec(1usize..5000, 1..8),
    ) {
        let pieces = split(&bytes, &sizes);
        let mut joined = Vec::with_capacity(bytes.len());
        for (piece, cut) in &pieces {
            prop_assert!(piece.len() <= MAX_LINE);
            prop_assert!(!piece.contains(&b'\n'));
            joined.extend_from_slice(piece);
            if !cut {
                joined.push(b'\n');
            }
        }
        // The last line may have had no newline of its own.
        if !bytes.ends_with(b"\n") && !bytes.is_empty() {
            prop_assert_eq!(joined.pop(), Some(b'\n'));
        }
        prop_assert_eq!(joined, bytes);
    }

    #[test]
    fn chunking_never_changes_the_lines(
        bytes in output(),
        sizes in prop::collection::vec(1usize..300, 1..8),
    ) {
        prop_assert_eq!(split(&bytes, &sizes), split(&bytes, &[usize::MAX]));
    }
}

/// A piece of a line: what a terminal shows (kept) or a control sequence (dropped), and what
/// sanitising must leave of it.
fn segment() -> impl Strategy<Value = (Vec<u8>, String)> {
    prop_oneof![
        4 => "[ -~]{1,20}|[é日本🦀\t]{1,4}".prop_map(|s| (s.clone().into_bytes(), s)),
        // SGR colours are kept as they are (`ESC [ m` comes back as its equal `ESC [ 0 m`).
        2 => prop::collection::vec(0u16..108, 1..4).prop_map(|params| {
            let p: Vec<String> = params.iter().map(u16::to_string).collect();
            let sgr = format!("\x1b[{}m", p.join(";"));
            (sgr.clone().into_bytes(), sgr)
        }),
        // Everything else that drives a terminal goes.
        1 => Just((b"\x1b]0;a window title\x07".to_vec(), String::new())),
        1 => Just((b"\x1b]52;c;aGVsbG8=\x1b\\".to_vec(), String::new())),
        1 => Just((b"\x1b[2J\x1b[H".to_vec(), String::new())),
        1 => (1u8..60, 1u8..60).prop_map(|(r, c)| (format!("\x1b[{r};{c}H").into_bytes(), String::new())),
        1 => Just((b"\x1b[?1049h".to_vec(), String::new())),
        1 => Just((b"\x07\x08\x00\x0b\x0c".to_vec(), String::new())),
        1 => Just(("\u{9b}".as_bytes().to_vec(), String::new())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn sanitising_drops_exactly_the_control_sequences(
        segments in prop::collection::vec(segment(), 0..20),
    ) {
        let raw: Vec<u8> = segments.iter().flat_map(|(b, _)| b.clone()).collect();
        let kept: String = segments.iter().map(|(_, k)| k.as_str()).collect();
        prop_assert_eq!(sanitize(&raw), kept);
    }

    #[test]
    fn nothing_but_sgr_and_printable_text_survives(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = sanitize(&raw);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                prop_assert_eq!(chars.next(), Some('['));
                loop {
                    match chars.next() {
                        Some('m') => break,
                        Some(d) if d.is_ascii_digit() || d == ';' || d == ':' => {}
                        other => prop_assert!(false, "not SGR: {:?} in {:?}", other, text),
                    }
                }
            } else {
                prop_assert!(c == '\t' || !c.is_control(), "{:?} in {:?}", c, text);
            }
        }
    }
}
