//! Service output: a byte stream made into sanitised lines, written to rotated log files under
//! `.devstack/logs/` and kept in bounded buffers, handed to the live view and to followers, and
//! read back. One module per part; this one only says where each is.

mod feed;
mod file;
mod hub;
mod lines;
mod read;
mod ring;
mod screen;

pub use feed::{Matcher, OutputFeed};
pub use file::{LOG_FILE_MAX, LOG_FILES_KEPT, LogLoss, RotatingFile, log_path, parse_file_line};
pub use hub::{LineTap, LogHub};
pub use lines::{CONTINUED, LineSplitter, LogLine, MAX_LINE, Stream, sanitize, strip_sgr};
pub use read::{FileLines, Source, Tail, read_files};
pub use ring::{BUFFER_BYTES, MERGED_BYTES, Ring};
