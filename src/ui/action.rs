//! Everything a user can do in the dashboard, as data: keys and mouse map to these, and
//! `App::update` applies them.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SelectNext,
    SelectPrev,
    SelectFirst,
    SelectLast,
    /// A click on a row of the service list.
    SelectRow(u16),
    ScrollUp(usize),
    ScrollDown(usize),
    PageUp,
    PageDown,
    ScrollTop,
    /// Jump to the newest line and follow again.
    ScrollBottom,
    ToggleFocus,
    /// Enter: in the traffic pane, open the picked request; elsewhere, move focus.
    Open,
    /// In the inspector: the request as a curl command line, copied.
    CopyCurl,
    /// In the inspector: send the request again, its answer shown beside the original's.
    Replay,
    /// In the traffic pane: pick the next (or, negative, previous) edge of the table; the tail
    /// then shows its requests.
    PickEdge(isize),
    Restart,
    StartStop,
    Rebuild,
    Kill,
    RestartAll,
    ToggleAll,
    ToggleFollow,
    ToggleWrap,
    ToggleTimestamps,
    Zoom,
    Help,
    CloseOverlay,
    AskQuit,
    /// Stop the stack and leave.
    Quit,
    ForceQuit,
    /// Ctrl-C: quit (stopping the stack), or, attached, detach.
    Interrupt,
    /// Leave the dashboard; the stack keeps running (attached).
    Detach,
    SearchStart,
    FilterStart,
    /// Set a fault (`F`): typed as `devstack fault add` takes it, the picked edge (or the
    /// selected service) written first.
    FaultStart,
    InputChar(char),
    InputBackspace,
    InputSubmit,
    InputCancel,
    NextMatch,
    PrevMatch,
    ClearSearch,
    Copy,
    Traffic,
    /// Type into the selected service's terminal (`i`).
    EnterInput,
    /// Back from typing (`Ctrl-a`).
    LeaveInput,
    /// Bytes for the service's terminal.
    Type(Vec<u8>),
    /// Rebuild on file changes, or only by hand (`m`).
    ToggleAuto,
    /// Serve it by its remote end (`url`), or by its process again (`U`).
    ToggleEnd,
}
