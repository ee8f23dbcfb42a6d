//! What is kept of a decoded exchange to send it again (`traffic replay`): a Redis command's
//! arguments (and the database the connection had selected), a PostgreSQL query's text with its
//! bound parameters and the startup's user and database. Kept only when the service's capture
//! is on ([`Decoder::keep`](super::Decoder::keep)), up to its body cap; never a credential
//! (`AUTH`, `HELLO … AUTH`, a password message, a query setting a password).

/// A decoded exchange as it can be sent again, or why it can't.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    Redis(Command),
    Postgres(Query),
    /// Not kept, and why (`its 70000 bytes are over the 65536 kept …`).
    Withheld(String),
}

/// A Redis command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Its name and arguments, as sent.
    pub args: Vec<Vec<u8>>,
    /// The database a `SELECT` chose before it on the connection (None: the default, 0).
    pub db: Option<u64>,
}

/// A PostgreSQL query (a simple one, or an extended-protocol execution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The startup's user and database.
    pub user: String,
    pub database: String,
    pub text: String,
    /// The extended protocol's: the parameters' type oids as `Parse` gave them (0: the server
    /// infers), their formats as `Bind` gave them (none: all text, one: all alike, or one
    /// each; 0 text, 1 binary), and their values (None: NULL). Empty for a simple query.
    pub types: Vec<u32>,
    pub formats: Vec<i16>,
    pub params: Vec<Option<Vec<u8>>>,
    /// Sent with the extended protocol (`Parse`/`Bind`/`Execute`), not as a simple `Query`.
    pub extended: bool,
}

impl Resend {
    /// Memory it holds, for the capture store's bounds.
    pub fn size(&self) -> usize {
        let vec = |v: &Vec<u8>| v.capacity() + std::mem::size_of::<Vec<u8>>();
        std::mem::size_of::<Resend>()
            + match self {
                Resend::Redis(c) => c.args.iter().map(vec).sum(),
                Resend::Postgres(q) => {
                    q.user.len()
                        + q.database.len()
                        + q.text.capacity()
                        + q.types.capacity() * 4
                        + q.formats.capacity() * 2
                        + q.params.iter().flatten().map(vec).sum::<usize>()
                        + q.params.capacity() * std::mem::size_of::<Option<Vec<u8>>>()
                }
                Resend::Withheld(why) => why.capacity(),
            }
    }

    /// Why a command or query of `size` bytes was not kept under `cap`.
    pub fn cut(size: u64, cap: usize) -> Resend {
        Resend::Withheld(format!(
            "it was cut: its {size} bytes are over the {cap} kept (raise `[stack.capture] \
             body`, at most {} for a command or query)",
            super::KEEP
        ))
    }

    /// A command or query carrying a credential: never kept.
    pub fn credential() -> Resend {
        Resend::Withheld("it carries a credential: it is never kept".into())
    }
}
