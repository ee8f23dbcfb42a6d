//! Keys → actions, per mode: what a user of mprocs, process-compose, less and vim expects.

use super::action::Action;
use super::app::{Focus, Mode};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub fn map(mode: &Mode, focus: Focus, key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if let Mode::Input = mode {
        // Everything goes to the service, Ctrl-C included; only Ctrl-a comes back.
        if ctrl && key.code == KeyCode::Char('a') {
            return Some(Action::LeaveInput);
        }
        return key_bytes(key).map(Action::Type);
    }
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(match mode {
            Mode::ShuttingDown => Action::ForceQuit,
            _ => Action::Interrupt,
        });
    }
    match mode {
        Mode::Search(_) | Mode::Filter(_) | Mode::Fault(_) => Some(match key.code {
            KeyCode::Enter => Action::InputSubmit,
            KeyCode::Esc => Action::InputCancel,
            KeyCode::Backspace => Action::InputBackspace,
            KeyCode::Char(c) if !ctrl => Action::InputChar(c),
            _ => return None,
        }),
        Mode::ConfirmQuit => match key.code {
            KeyCode::Char('y') | KeyCode::Char('q') | KeyCode::Enter => Some(Action::Quit),
            KeyCode::Char('n') | KeyCode::Esc => Some(Action::CloseOverlay),
            _ => None,
        },
        Mode::ConfirmDetach => match key.code {
            KeyCode::Char('d') | KeyCode::Char('q') | KeyCode::Enter => Some(Action::Detach),
            KeyCode::Char('s') => Some(Action::Quit),
            KeyCode::Char('n') | KeyCode::Esc => Some(Action::CloseOverlay),
            _ => None,
        },
        Mode::Help => Some(Action::CloseOverlay),
        Mode::Inspect(_) => find(key, ctrl).and_then(|b| b.inspect.clone()),
        Mode::ShuttingDown => match key.code {
            KeyCode::Char('q') | KeyCode::Char('x') => Some(Action::ForceQuit),
            _ => None,
        },
        Mode::Normal => normal(focus, key, ctrl),
        Mode::Input => unreachable!("handled above"),
    }
}

/// What a terminal sends for a key.
pub fn key_bytes(key: KeyEvent) -> Option<Vec<u8>> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut bytes = match key.code {
        KeyCode::Char(c) if ctrl && c.is_ascii_alphabetic() => {
            vec![(c.to_ascii_lowercase() as u8) & 0x1f]
        }
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => b"\r".to_vec(),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Tab => b"\t".to_vec(),
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Esc => b"\x1b".to_vec(),
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        _ => return None,
    };
    if alt {
        bytes.insert(0, 0x1b);
    }
    Some(bytes)
}

/// A key as the table names it: a key code, with or without Ctrl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(pub KeyCode, pub bool);

const fn k(c: char) -> Key {
    Key(KeyCode::Char(c), false)
}

const fn code(c: KeyCode) -> Key {
    Key(c, false)
}

const fn ctrl_key(c: char) -> Key {
    Key(KeyCode::Char(c), true)
}

/// One row of the dashboard's keys: what the keys do in the service list, in the log and in the
/// inspector, how the footer shows them (per pane), and the line in `?` help. The keymap, the
/// footer and the help are all read from `KEYS`, so they can't disagree.
pub struct Binding {
    pub keys: &'static [Key],
    /// The action in the service list, and in the log pane.
    pub list: Option<Action>,
    pub log: Option<Action>,
    /// In the footer, per pane: the keys as shown, and a word.
    pub list_footer: Option<(&'static str, &'static str)>,
    pub log_footer: Option<(&'static str, &'static str)>,
    /// In the help: the keys as shown and what they do (None: covered by the row above).
    pub help: Option<(&'static str, &'static str)>,
    /// The action inside a request (the inspector), and how its footer and help show it.
    pub inspect: Option<Action>,
    pub inspect_footer: Option<(&'static str, &'static str)>,
}

/// A row with what its keys do in the inspector, and how its footer shows it.
macro_rules! inspecting {
    ($row:expr, $action:expr, $footer:expr $(,)?) => {
        Binding {
            inspect: Some($action),
            inspect_footer: $footer,
            ..$row
        }
    };
}

/// A row whose keys do the same in both panes.
macro_rules! both {
    ($keys:expr, $action:expr, $help:expr $(,)?) => {
        Binding {
            keys: $keys,
            list: Some($action),
            log: Some($action),
            list_footer: None,
            log_footer: None,
            help: Some($help),
            inspect: None,
            inspect_footer: None,
        }
    };
}

impl Binding {
    const fn footer(
        mut self,
        list: Option<(&'static str, &'static str)>,
        log: Option<(&'static str, &'static str)>,
    ) -> Binding {
        self.list_footer = list;
        self.log_footer = log;
        self
    }

    /// The footer entry in `focus`, if it shows one there.
    pub fn footer_in(&self, focus: Focus) -> Option<(&'static str, &'static str)> {
        match focus {
            Focus::Services => self.list_footer,
            Focus::Logs => self.log_footer,
        }
    }

    fn action_in(&self, focus: Focus) -> Option<&Action> {
        match focus {
            Focus::Services => self.list.as_ref(),
            Focus::Logs => self.log.as_ref(),
        }
    }
}

use Action as A;

pub const KEYS: &[Binding] = &[
    Binding {
        keys: &[k('j'), code(KeyCode::Down)],
        list: Some(A::SelectNext),
        log: Some(A::ScrollDown(1)),
        list_footer: Some(("j/k", "select")),
        log_footer: Some(("j/k", "scroll")),
        help: Some((
            "j/k ↑/↓",
            "select a service, scroll, pick a request; mouse: click, wheel",
        )),
        inspect: Some(A::ScrollDown(1)),
        inspect_footer: Some(("j/k PgUp/PgDn", "scroll")),
    },
    Binding {
        keys: &[k('k'), code(KeyCode::Up)],
        list: Some(A::SelectPrev),
        log: Some(A::ScrollUp(1)),
        list_footer: None,
        log_footer: None,
        help: None,
        inspect: Some(A::ScrollUp(1)),
        inspect_footer: None,
    },
    both!(
        &[code(KeyCode::Tab), code(KeyCode::BackTab)],
        A::ToggleFocus,
        ("Enter/Tab", "move focus between the list and the log"),
    )
    .footer(Some(("Tab", "logs")), Some(("Tab", "list"))),
    Binding {
        keys: &[code(KeyCode::Enter)],
        list: Some(A::ToggleFocus),
        log: Some(A::Open),
        list_footer: None,
        log_footer: None,
        help: Some((
            "Enter",
            "traffic pane: open the request picked with j/k (G: newest)",
        )),
        inspect: Some(A::CloseOverlay),
        inspect_footer: None,
    },
    Binding {
        list_footer: Some(("r", "restart")),
        inspect: Some(A::Replay),
        inspect_footer: Some(("r", "replay it")),
        ..both!(
            &[k('r')],
            A::Restart,
            ("r", "restart the service (inspecting: replay)")
        )
    },
    Binding {
        keys: &[k('c')],
        list: None,
        log: None,
        list_footer: None,
        log_footer: None,
        help: None,
        inspect: Some(A::CopyCurl),
        inspect_footer: Some(("c", "copy as curl")),
    },
    Binding {
        keys: &[k('e')],
        list: None,
        log: Some(A::PickEdge(1)),
        list_footer: None,
        log_footer: None,
        help: Some((
            "e  E",
            "traffic pane: pick the next/previous edge, its requests",
        )),
        inspect: None,
        inspect_footer: None,
    },
    Binding {
        keys: &[k('E')],
        list: None,
        log: Some(A::PickEdge(-1)),
        list_footer: None,
        log_footer: None,
        help: None,
        inspect: None,
        inspect_footer: None,
    },
    both!(&[k('s')], A::StartStop, ("s", "start or stop it"))
        .footer(Some(("s", "start/stop")), None),
    both!(
        &[k('b')],
        A::Rebuild,
        (
            "b",
            "rebuild it (the old process keeps running if the build fails)",
        ),
    )
    .footer(Some(("b", "rebuild")), None),
    both!(
        &[k('x')],
        A::Kill,
        ("x", "kill its process group (SIGKILL)")
    )
    .footer(Some(("x", "kill")), None),
    both!(
        &[k('R')],
        A::RestartAll,
        (
            "R",
            "restart every service, dependencies first (tasks don't run again)",
        ),
    ),
    both!(
        &[k('a')],
        A::ToggleAll,
        ("a", "all services' logs merged, or the selected one's"),
    )
    .footer(Some(("a", "all logs")), None),
    both!(&[k('z')], A::Zoom, ("z", "zoom the focused pane")).footer(Some(("z", "zoom")), None),
    both!(
        &[k('/')],
        A::SearchStart,
        ("/  n  N", "search (ignoring case); older / newer match"),
    )
    .footer(None, Some(("/", "search"))),
    Binding {
        keys: &[k('n')],
        list: Some(A::NextMatch),
        log: Some(A::NextMatch),
        list_footer: None,
        log_footer: Some(("n/N", "match")),
        help: None,
        inspect: None,
        inspect_footer: None,
    },
    Binding {
        keys: &[k('N')],
        list: Some(A::PrevMatch),
        log: Some(A::PrevMatch),
        list_footer: None,
        log_footer: None,
        help: None,
        inspect: None,
        inspect_footer: None,
    },
    both!(
        &[k('F')],
        A::FaultStart,
        (
            "F",
            "set a fault on the picked edge or the selected service (as `fault add`)",
        ),
    ),
    both!(
        &[k('&')],
        A::FilterStart,
        ("&", "filter: show only matching lines"),
    )
    .footer(None, Some(("&", "filter"))),
    inspecting!(
        both!(
            &[code(KeyCode::Esc)],
            A::ClearSearch,
            (
                "Esc",
                "clear search and filter; let go of a picked request/edge"
            ),
        ),
        A::CloseOverlay,
        Some(("Esc", "close")),
    ),
    both!(
        &[k('f')],
        A::ToggleFollow,
        ("f  G/End", "follow on/off; jump to the end and follow"),
    ),
    Binding {
        keys: &[k('G'), code(KeyCode::End)],
        list: Some(A::SelectLast),
        log: Some(A::ScrollBottom),
        list_footer: None,
        log_footer: Some(("G", "follow")),
        help: None,
        inspect: Some(A::ScrollBottom),
        inspect_footer: None,
    },
    Binding {
        keys: &[k('g'), code(KeyCode::Home)],
        list: Some(A::SelectFirst),
        log: Some(A::ScrollTop),
        list_footer: None,
        log_footer: None,
        help: Some(("g/Home", "top of the log (first service in the list)")),
        inspect: Some(A::ScrollTop),
        inspect_footer: None,
    },
    inspecting!(
        both!(
            &[code(KeyCode::PageUp), ctrl_key('u')],
            A::PageUp,
            ("PgUp/PgDn ^u/^d", "scroll half a page"),
        ),
        A::PageUp,
        None,
    ),
    Binding {
        keys: &[
            code(KeyCode::PageDown),
            ctrl_key('d'),
            code(KeyCode::Char(' ')),
        ],
        list: Some(A::PageDown),
        log: Some(A::PageDown),
        list_footer: None,
        log_footer: None,
        help: None,
        inspect: Some(A::PageDown),
        inspect_footer: None,
    },
    both!(&[k('w')], A::ToggleWrap, ("w", "wrap long lines")).footer(None, Some(("w", "wrap"))),
    both!(&[k('T')], A::ToggleTimestamps, ("T", "timestamps")).footer(None, Some(("T", "time"))),
    both!(
        &[k('y')],
        A::Copy,
        (
            "y",
            "copy the visible lines (OSC 52, wl-copy, xclip, pbcopy)",
        ),
    )
    .footer(None, Some(("y", "copy"))),
    both!(
        &[k('t')],
        A::Traffic,
        ("t", "traffic between the services, in place of the logs")
    ),
    both!(
        &[k('i')],
        A::EnterInput,
        ("i", "type into the service's terminal; Ctrl-a leaves"),
    ),
    both!(
        &[k('m')],
        A::ToggleAuto,
        ("m", "rebuild on file change on/off (⏸ = off)"),
    ),
    both!(
        &[k('U')],
        A::ToggleEnd,
        (
            "U",
            "serve it by its remote end (`url`), or by its process again"
        ),
    ),
    Binding {
        // Not in the help it opens.
        help: None,
        ..both!(&[k('?')], A::Help, ("?", "these keys"))
    }
    .footer(Some(("?", "help")), Some(("?", "help"))),
    Binding {
        list_footer: Some(("q", "quit")),
        log_footer: Some(("q", "quit")),
        inspect: Some(A::CloseOverlay),
        ..both!(
            &[k('q')],
            A::AskQuit,
            ("q  Ctrl-C", "stop the stack and quit (again: kill at once)"),
        )
    },
];

fn normal(focus: Focus, key: KeyEvent, ctrl: bool) -> Option<Action> {
    find(key, ctrl).and_then(|b| b.action_in(focus).cloned())
}

/// The row of `KEYS` a key is in.
fn find(key: KeyEvent, ctrl: bool) -> Option<&'static Binding> {
    let pressed = Key(key.code, ctrl);
    KEYS.iter().find(|b| b.keys.contains(&pressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn arrows_and_vim_keys_select_in_the_list_and_scroll_in_the_logs() {
        for (code, list, logs) in [
            (
                KeyCode::Char('j'),
                Action::SelectNext,
                Action::ScrollDown(1),
            ),
            (KeyCode::Down, Action::SelectNext, Action::ScrollDown(1)),
            (KeyCode::Char('k'), Action::SelectPrev, Action::ScrollUp(1)),
            (KeyCode::Up, Action::SelectPrev, Action::ScrollUp(1)),
            (KeyCode::Char('G'), Action::SelectLast, Action::ScrollBottom),
            (KeyCode::End, Action::SelectLast, Action::ScrollBottom),
            (KeyCode::Char('g'), Action::SelectFirst, Action::ScrollTop),
        ] {
            assert_eq!(
                map(&Mode::Normal, Focus::Services, key(code)),
                Some(list),
                "{code:?}"
            );
            assert_eq!(
                map(&Mode::Normal, Focus::Logs, key(code)),
                Some(logs),
                "{code:?}"
            );
        }
    }

    #[test]
    fn service_actions_work_from_either_pane() {
        for focus in [Focus::Services, Focus::Logs] {
            for (c, action) in [
                ('r', Action::Restart),
                ('s', Action::StartStop),
                ('b', Action::Rebuild),
                ('x', Action::Kill),
                ('R', Action::RestartAll),
                ('a', Action::ToggleAll),
                ('z', Action::Zoom),
                ('f', Action::ToggleFollow),
                ('w', Action::ToggleWrap),
                ('/', Action::SearchStart),
                ('n', Action::NextMatch),
                ('N', Action::PrevMatch),
                ('?', Action::Help),
                ('q', Action::AskQuit),
                ('m', Action::ToggleAuto),
                ('U', Action::ToggleEnd),
            ] {
                assert_eq!(
                    map(&Mode::Normal, focus, key(KeyCode::Char(c))),
                    Some(action)
                );
            }
            assert_eq!(
                map(&Mode::Normal, focus, key(KeyCode::Tab)),
                Some(Action::ToggleFocus)
            );
            // Enter moves focus from the list; in the log pane it opens (the traffic pane's
            // picked request; elsewhere it moves focus back: `App::update`).
            let enter = match focus {
                Focus::Services => Action::ToggleFocus,
                Focus::Logs => Action::Open,
            };
            assert_eq!(map(&Mode::Normal, focus, key(KeyCode::Enter)), Some(enter));
        }
    }

    #[test]
    fn typing_a_search_takes_every_character() {
        let mode = Mode::Search(String::new());
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Char('q'))),
            Some(Action::InputChar('q'))
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Char('r'))),
            Some(Action::InputChar('r'))
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Enter)),
            Some(Action::InputSubmit)
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Esc)),
            Some(Action::InputCancel)
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Backspace)),
            Some(Action::InputBackspace)
        );
    }

    #[test]
    fn an_attached_dashboard_asks_detach_or_stop() {
        let m = |c| map(&Mode::ConfirmDetach, Focus::Services, key(c));
        assert_eq!(m(KeyCode::Char('d')), Some(Action::Detach));
        assert_eq!(m(KeyCode::Enter), Some(Action::Detach));
        assert_eq!(m(KeyCode::Char('s')), Some(Action::Quit));
        assert_eq!(m(KeyCode::Esc), Some(Action::CloseOverlay));
        assert_eq!(m(KeyCode::Char('y')), None);
    }

    #[test]
    fn quitting_asks_first_and_a_second_ctrl_c_kills() {
        assert_eq!(
            map(&Mode::Normal, Focus::Services, key(KeyCode::Char('q'))),
            Some(Action::AskQuit)
        );
        assert_eq!(
            map(&Mode::ConfirmQuit, Focus::Services, key(KeyCode::Char('y'))),
            Some(Action::Quit)
        );
        assert_eq!(
            map(&Mode::ConfirmQuit, Focus::Services, key(KeyCode::Esc)),
            Some(Action::CloseOverlay)
        );
        assert_eq!(
            map(&Mode::Normal, Focus::Services, ctrl('c')),
            Some(Action::Interrupt)
        );
        assert_eq!(
            map(&Mode::ShuttingDown, Focus::Services, ctrl('c')),
            Some(Action::ForceQuit)
        );
        assert_eq!(
            map(
                &Mode::ShuttingDown,
                Focus::Services,
                key(KeyCode::Char('r'))
            ),
            None
        );
    }

    #[test]
    fn typing_mode_sends_every_key_to_the_service_until_ctrl_a() {
        let mode = Mode::Input;
        assert_eq!(
            map(&Mode::Normal, Focus::Services, key(KeyCode::Char('i'))),
            Some(Action::EnterInput)
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Char('q'))),
            Some(Action::Type(b"q".to_vec()))
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Enter)),
            Some(Action::Type(b"\r".to_vec()))
        );
        assert_eq!(
            map(&mode, Focus::Logs, ctrl('c')),
            Some(Action::Type(vec![3]))
        );
        assert_eq!(
            map(&mode, Focus::Logs, key(KeyCode::Up)),
            Some(Action::Type(b"\x1b[A".to_vec()))
        );
        assert_eq!(map(&mode, Focus::Logs, ctrl('a')), Some(Action::LeaveInput));
    }

    fn event(key: Key) -> KeyEvent {
        let mods = if key.1 {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        KeyEvent::new(key.0, mods)
    }

    #[test]
    fn every_key_of_the_table_does_what_the_table_says_and_none_is_bound_twice() {
        let mut seen = Vec::new();
        for b in KEYS {
            for &key in b.keys {
                assert!(!seen.contains(&key), "{key:?} is bound twice");
                seen.push(key);
                for focus in [Focus::Services, Focus::Logs] {
                    assert_eq!(
                        map(&Mode::Normal, focus, event(key)),
                        b.action_in(focus).cloned(),
                        "{key:?} in {focus:?}"
                    );
                }
                let inspecting = Mode::Inspect(Box::default());
                assert_eq!(
                    map(&inspecting, Focus::Logs, event(key)),
                    b.inspect.clone(),
                    "{key:?} in the inspector"
                );
            }
            if b.inspect_footer.is_some() {
                assert!(b.inspect.is_some(), "a footer for a key that does nothing");
            }
        }
        let inspector: Vec<_> = KEYS.iter().filter_map(|b| b.inspect_footer).collect();
        for key in ["r", "c", "Esc"] {
            assert!(inspector.iter().any(|(k, _)| *k == key), "{key}");
        }
    }

    #[test]
    fn the_footer_and_the_help_show_only_keys_that_work() {
        for b in KEYS {
            for focus in [Focus::Services, Focus::Logs] {
                if b.footer_in(focus).is_some() {
                    assert!(!b.keys.is_empty() && b.action_in(focus).is_some());
                }
            }
            if b.help.is_none() {
                assert!(!b.keys.is_empty(), "a row nobody can see or press");
            }
        }
        let footer = |focus| {
            KEYS.iter()
                .filter_map(|b| b.footer_in(focus))
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert!(footer(Focus::Services).contains(&"r"));
        assert!(footer(Focus::Logs).contains(&"/"));
    }

    #[test]
    fn help_closes_on_any_key() {
        assert_eq!(
            map(&Mode::Help, Focus::Logs, key(KeyCode::Char('j'))),
            Some(Action::CloseOverlay)
        );
    }
}
