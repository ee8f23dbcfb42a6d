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
            _ => Action::Quit,
        });
    }
    match mode {
        Mode::Search(_) | Mode::Filter(_) => Some(match key.code {
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
        Mode::Help => Some(Action::CloseOverlay),
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

fn normal(focus: Focus, key: KeyEvent, ctrl: bool) -> Option<Action> {
    let logs = focus == Focus::Logs;
    Some(match key.code {
        KeyCode::Char('d') if ctrl => Action::PageDown,
        KeyCode::Char('u') if ctrl => Action::PageUp,
        _ if ctrl => return None,
        KeyCode::Char('q') => Action::AskQuit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Enter | KeyCode::Tab | KeyCode::BackTab => Action::ToggleFocus,
        KeyCode::Char('j') | KeyCode::Down if logs => Action::ScrollDown(1),
        KeyCode::Char('k') | KeyCode::Up if logs => Action::ScrollUp(1),
        KeyCode::Char('j') | KeyCode::Down => Action::SelectNext,
        KeyCode::Char('k') | KeyCode::Up => Action::SelectPrev,
        KeyCode::Char('g') | KeyCode::Home if logs => Action::ScrollTop,
        KeyCode::Char('G') | KeyCode::End if logs => Action::ScrollBottom,
        KeyCode::Char('g') | KeyCode::Home => Action::SelectFirst,
        KeyCode::Char('G') | KeyCode::End => Action::SelectLast,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('r') => Action::Restart,
        KeyCode::Char('s') => Action::StartStop,
        KeyCode::Char('b') => Action::Rebuild,
        KeyCode::Char('x') => Action::Kill,
        KeyCode::Char('R') => Action::RestartAll,
        KeyCode::Char('a') => Action::ToggleAll,
        KeyCode::Char('f') => Action::ToggleFollow,
        KeyCode::Char('w') => Action::ToggleWrap,
        KeyCode::Char('T') => Action::ToggleTimestamps,
        KeyCode::Char('z') => Action::Zoom,
        KeyCode::Char('/') => Action::SearchStart,
        KeyCode::Char('&') => Action::FilterStart,
        KeyCode::Char('n') => Action::NextMatch,
        KeyCode::Char('N') => Action::PrevMatch,
        KeyCode::Esc => Action::ClearSearch,
        KeyCode::Char('y') => Action::Copy,
        KeyCode::Char('t') => Action::Traffic,
        KeyCode::Char('i') => Action::EnterInput,
        KeyCode::Char('m') => Action::ToggleAuto,
        _ => return None,
    })
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
            assert_eq!(
                map(&Mode::Normal, focus, key(KeyCode::Enter)),
                Some(Action::ToggleFocus)
            );
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
            Some(Action::Quit)
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

    #[test]
    fn help_closes_on_any_key() {
        assert_eq!(
            map(&Mode::Help, Focus::Logs, key(KeyCode::Char('j'))),
            Some(Action::CloseOverlay)
        );
    }
}
