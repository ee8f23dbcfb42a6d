//! Errors devstack goes on without, said rather than dropped in silence: a send to a receiver
//! that may be gone, a best-effort cleanup, a signal to a process that may have exited. Each is
//! `.or_say("why it does not matter")`, which writes the error and the reason as a `debug`
//! event of devstack's own log (`-v`, `DEVSTACK_LOG`; target `devstack::ignored`), with where it
//! was ignored. Nothing else happens: the caller goes on as if it had worked.
//!
//! What cannot fail is written so that there is nothing to ignore (text is pushed onto a
//! `String`, not `write!`n into it), and a value that is not wanted is `drop`ped.

/// An outcome whose failure devstack goes on without.
pub trait Ignore {
    /// Goes on whatever the outcome; a failure is said in devstack's log with `why` it does not
    /// matter.
    fn or_say(self, why: &str);
}

impl<T, E: std::fmt::Debug> Ignore for Result<T, E> {
    #[track_caller]
    fn or_say(self, why: &str) {
        if let Err(error) = self {
            let at = std::panic::Location::caller();
            tracing::debug!(%at, ?error, "ignored: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_outcome_goes_on_whatever_it_is() {
        Ok::<u8, std::io::Error>(1).or_say("nothing to say");
        Err::<(), _>(std::io::Error::other("gone")).or_say("it may be gone");
    }
}
