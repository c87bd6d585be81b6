//! The hash chain of a trace file: every line names the line before it, so
//! that a line edited, deleted, inserted or moved shows; and the record of
//! a finished world keeps the chain's end ([`ChainEnd`]), so that a trace
//! cut short or added to shows too.
//!
//! Line `n` (counted from 1) of a chained trace is a span's line with two
//! fields put in front of the span's own:
//!
//! ```text
//! {"seq":n,"prev":"<hex SHA-256 of line n-1>","v":"1.1","span_id":…}
//! ```
//!
//! - `seq` is the line's number in the file as written;
//! - `prev` is the lowercase hex SHA-256 of the exact bytes of line `n-1`
//!   (without its `\n`); line 1's is the SHA-256 of [`GENESIS_TAG`]
//!   followed by the world's id, so that no trace passes for another
//!   world's.
//!
//! A verifier hashes the bytes as they are on disk, never a re-serialized
//! span. Only a whole line is chained: a line its writer did not finish
//! (a crash) is hashed as it is by whoever continues the trace
//! ([`Chain::resume`]), so the next line vouches for it.
//!
//! The chain is a checksum, not a signature: whoever can rewrite both the
//! trace and the record can forge both. What it guarantees rests on that
//! (a world can write neither: see `docs/trace-spans.md`).

use std::fmt::{self, Write as _};
use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::span::{Span, SpanError, MAX_LINE_BYTES};

/// What line 1's `prev` hashes, followed by the world's id.
pub const GENESIS_TAG: &str = "substrate.trace.chain/v1:";

type Hash = [u8; 32];

/// The `prev` of line 1 of world `world_id`'s trace.
fn genesis(world_id: &str) -> Hash {
    Sha256::new()
        .chain_update(GENESIS_TAG)
        .chain_update(world_id)
        .finalize()
        .into()
}

fn hex(hash: &Hash) -> String {
    let mut text = String::with_capacity(64);
    for byte in hash {
        write!(text, "{byte:02x}").expect("writing to a String");
    }
    text
}

/// A hash in lowercase hex, as the chain writes it (nothing else is one).
fn unhex(text: &str) -> Option<Hash> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        hash[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(hash)
}

/// Where a trace's chain ends: what the world record keeps once the trace
/// is closed (`trace_chain` in `world.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEnd {
    /// Lines in the trace.
    pub lines: u64,
    /// The lowercase hex SHA-256 of the last line (without its `\n`); of
    /// the chain's start ([`GENESIS_TAG`] and the world id) when the trace
    /// has no line.
    pub last: String,
}

/// The writing end of a trace's chain: turns each span into its chained
/// line.
#[derive(Clone, Debug)]
pub struct Chain {
    lines: u64,
    last: Hash,
}

impl Chain {
    /// The chain of a new (empty) trace of world `world_id`.
    pub fn start(world_id: &str) -> Chain {
        Chain {
            lines: 0,
            last: genesis(world_id),
        }
    }

    /// The chain of world `world_id`'s trace whose lines so far `reader`
    /// holds, to write more lines after them. Every line counts, whatever
    /// it holds: an unfinished last line (its writer died while writing
    /// it) is a line the caller must end with `\n` before its first own
    /// line, and the next line vouches for it as it is.
    pub fn resume<R: BufRead>(world_id: &str, mut reader: R) -> io::Result<Chain> {
        let mut chain = Chain::start(world_id);
        let mut hasher = Sha256::new();
        let mut open = false;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            let mut rest = chunk;
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                hasher.update(&rest[..i]);
                chain.last = hasher.finalize_reset().into();
                chain.lines += 1;
                rest = &rest[i + 1..];
            }
            open = !rest.is_empty();
            hasher.update(rest);
            reader.consume(len);
        }
        if open {
            chain.last = hasher.finalize().into();
            chain.lines += 1;
        }
        Ok(chain)
    }

    /// `span`'s line (without a newline), chained to the lines before it;
    /// the chain then ends with it. Err (and the chain unchanged) when the
    /// line would be over [`MAX_LINE_BYTES`].
    pub fn link(&mut self, span: &Span) -> Result<String, SpanError> {
        let body = span.to_line()?;
        // A span is a JSON object with fields: `{"v":…}`.
        let fields = body
            .strip_prefix('{')
            .expect("a span's line is a JSON object");
        let seq = self.lines + 1;
        let mut line = String::with_capacity(body.len() + 96);
        write!(line, r#"{{"seq":{seq},"prev":"{}""#, hex(&self.last)).expect("a String");
        if fields != "}" {
            line.push(',');
        }
        line.push_str(fields);
        if line.len() > MAX_LINE_BYTES {
            return Err(SpanError::TooLarge {
                len: line.len(),
                max: MAX_LINE_BYTES,
            });
        }
        self.last = Sha256::digest(line.as_bytes()).into();
        self.lines = seq;
        Ok(line)
    }

    /// Lines in the trace so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Where the chain ends now.
    pub fn end(&self) -> ChainEnd {
        ChainEnd {
            lines: self.lines,
            last: hex(&self.last),
        }
    }
}

/// Who says a line is not what was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Witness {
    /// The line after it holds another hash for it.
    NextLine,
    /// The record's end ([`ChainEnd::last`]) holds another hash for it.
    Record,
    /// Its own `seq` or `prev` no longer fits the line before it, and
    /// nothing after it vouches for it.
    Itself,
}

/// The first line of a trace that is not as it was written, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Not a line of the chain (bad JSON, no `seq` or `prev`, blank, too
    /// long), and nothing vouches for it.
    NotChained { line: u64, reason: String },
    /// Line 1 does not start this world's chain.
    Foreign { world: String },
    /// The line was written as line `written_as` (greater): lines before
    /// it were deleted or moved away.
    Missing { line: u64, written_as: u64 },
    /// Lines `line..found` were inserted (or copied): line `found` was
    /// written as line `line`.
    Inserted { line: u64, found: u64 },
    /// The line's bytes are not the ones written.
    Altered { line: u64, witness: Witness },
    /// The trace ends before line `line`; the record says it has
    /// `recorded` lines.
    Truncated {
        line: u64,
        recorded: u64,
        cut_mid_line: bool,
    },
    /// Line `line` comes after the end the record holds.
    Appended { line: u64, recorded: u64 },
    /// The record's end was altered: it does not hold the hash of line
    /// `line`, its last line, which the line after it vouches for.
    EndAltered { line: u64 },
}

impl Broken {
    /// The first line (counted from 1) that is not as written.
    pub fn line(&self) -> u64 {
        match self {
            Broken::Foreign { .. } => 1,
            Broken::NotChained { line, .. }
            | Broken::Missing { line, .. }
            | Broken::Inserted { line, .. }
            | Broken::Altered { line, .. }
            | Broken::Truncated { line, .. }
            | Broken::Appended { line, .. }
            | Broken::EndAltered { line } => *line,
        }
    }
}

impl Broken {
    /// A name for what is wrong, for machines (`substrate-cli verify
    /// --json`).
    pub fn kind(&self) -> &'static str {
        match self {
            Broken::NotChained { .. } => "not_chained",
            Broken::Foreign { .. } => "foreign",
            Broken::Missing { .. } => "missing",
            Broken::Inserted { .. } => "inserted",
            Broken::Altered { .. } => "altered",
            Broken::Truncated { .. } => "truncated",
            Broken::Appended { .. } => "appended",
            Broken::EndAltered { .. } => "end_altered",
        }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::NotChained { line, reason } => {
                write!(f, "line {line} is not a line of the chain: {reason}")
            }
            Broken::Foreign { world } => write!(
                f,
                "line 1 does not start world {world}'s trace (it was chained for \
                 another world, or its `prev` was altered)"
            ),
            Broken::Missing { line, written_as } => {
                let gone = written_as - line;
                write!(
                    f,
                    "line {line} was written as line {written_as}: {gone} line{} before \
                     it {} missing (deleted or moved)",
                    if gone == 1 { "" } else { "s" },
                    if gone == 1 { "is" } else { "are" },
                )
            }
            Broken::Inserted { line, found } if found - line == 1 => write!(
                f,
                "line {line} was inserted (or copied): line {found} was written as line {line}"
            ),
            Broken::Inserted { line, found } => write!(
                f,
                "lines {line} to {} were inserted (or copied): line {found} was written \
                 as line {line}",
                found - 1
            ),
            Broken::Altered { line, witness } => match witness {
                Witness::NextLine => write!(
                    f,
                    "line {line} was altered: line {} holds another hash for it",
                    line + 1
                ),
                Witness::Record => write!(
                    f,
                    "line {line} was altered: the record holds another hash for the \
                     last line (or the record's `trace_chain` was altered)"
                ),
                Witness::Itself => write!(
                    f,
                    "line {line} was altered: its own `seq` or `prev` no longer fits \
                     the line before it, and nothing after it holds its hash"
                ),
            },
            Broken::Truncated {
                line,
                recorded,
                cut_mid_line,
            } => {
                if *cut_mid_line {
                    write!(f, "line {line} is cut short")?;
                } else {
                    write!(f, "line {line} is missing")?;
                }
                match line - 1 {
                    0 => write!(f, ": the trace was truncated to nothing")?,
                    whole => write!(f, ": the trace was truncated after line {whole}")?,
                }
                write!(f, " (the record says it has {recorded} lines)")
            }
            Broken::Appended { line, recorded } => write!(
                f,
                "line {line} was added after the trace was closed (the record ends it \
                 at line {recorded})"
            ),
            Broken::EndAltered { line } => write!(
                f,
                "the record's `trace_chain` was altered: it does not hold the hash of \
                 line {line}, its last line, which line {} vouches for",
                line + 1
            ),
        }
    }
}

impl std::error::Error for Broken {}

/// What [`verify_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCheck {
    /// Whole lines read (up to the first broken one).
    pub lines: u64,
    /// The hash of the last whole line read, in lowercase hex (the chain's
    /// start when there is none).
    pub last: String,
    /// The length of an unfinished last line (bytes after the last `\n`):
    /// a trace still being written may have one.
    pub unfinished: Option<u64>,
    /// Lines that are not spans but that the next line (or the record)
    /// vouches for: a writer died while writing them, and the one that
    /// continued the trace chained over them as they were.
    pub cut_by_crash: Vec<u64>,
    /// The first line that is not as written; `None`: the trace is whole
    /// and unaltered.
    pub broken: Option<Broken>,
}

impl ChainCheck {
    pub fn is_whole(&self) -> bool {
        self.broken.is_none()
    }
}

/// A whole line as read: its hash and its chain fields.
struct LineInfo {
    number: u64,
    hash: Hash,
    /// `(seq, prev)`, or why the line has none.
    link: Result<(u64, Hash), String>,
}

impl LineInfo {
    /// Whether this line is line `number` and was written right after a
    /// line hashing to `before`.
    fn follows(&self, before: &Hash) -> bool {
        matches!(&self.link, Ok((seq, prev)) if *seq == self.number && prev == before)
    }
}

enum Next {
    Line(LineInfo),
    /// The input ended inside a line of this many bytes.
    Unfinished(u64),
    Eof,
}

#[derive(Deserialize)]
struct LinkFields {
    seq: u64,
    prev: String,
}

fn parse_link(bytes: &[u8], len: u64) -> Result<(u64, Hash), String> {
    if len > MAX_LINE_BYTES as u64 {
        return Err(format!(
            "{len} bytes, over the {MAX_LINE_BYTES}-byte limit of a line"
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("a blank line".into());
    }
    match serde_json::from_slice::<LinkFields>(bytes) {
        Ok(fields) => match unhex(&fields.prev) {
            Some(prev) => Ok((fields.seq, prev)),
            None => Err("its `prev` is not a SHA-256 in lowercase hex".into()),
        },
        Err(e) if e.is_data() => Err(format!("no chain fields (`seq`, `prev`): {e}")),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Reads lines, hashing each whole, keeping at most `MAX_LINE_BYTES + 1`
/// bytes of one to parse.
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> io::Result<Next> {
        self.buf.clear();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(match len {
                    0 => Next::Eof,
                    len => Next::Unfinished(len),
                });
            }
            let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            hasher.update(&chunk[..take]);
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            len += take as u64;
            self.reader.consume(take + usize::from(newline));
            if newline {
                self.number += 1;
                return Ok(Next::Line(LineInfo {
                    number: self.number,
                    hash: hasher.finalize().into(),
                    link: parse_link(&self.buf, len),
                }));
            }
        }
    }
}

/// Checks the chain of world `world_id`'s trace read from `reader`, and,
/// with `end` (the record's, once the trace was closed), that the trace
/// ends there. Without `end` (a trace still being written) an unfinished
/// last line is left out and nothing is said of lines yet to come.
///
/// The first line found not as written is named: an edited line by the
/// line after it (or by the record, for the last line), a deleted or moved
/// one by the `seq` of the line now in its place, an inserted one by the
/// `seq` of the line after it, a cut by the record's count.
pub fn verify_chain<R: BufRead>(
    reader: R,
    world_id: &str,
    end: Option<&ChainEnd>,
) -> io::Result<ChainCheck> {
    let start = genesis(world_id);
    let mut lines = Lines {
        reader,
        buf: Vec::new(),
        number: 0,
    };
    let mut check = ChainCheck {
        lines: 0,
        last: hex(&start),
        unfinished: None,
        cut_by_crash: Vec::new(),
        broken: None,
    };
    let mut before = start;
    let mut pending: Option<LineInfo> = None;
    loop {
        let next = lines.next()?;
        let next_line = match &next {
            Next::Line(line) => Some(line),
            _ => None,
        };
        if let Some(current) = pending.take() {
            if let Some(broken) = judge(&current, &before, next_line, end, world_id) {
                check.broken = Some(broken);
                return Ok(check);
            }
            if current.link.is_err() {
                check.cut_by_crash.push(current.number);
            }
            before = current.hash;
            check.lines = current.number;
            check.last = hex(&current.hash);
        }
        match next {
            Next::Line(line) => {
                if let Some(end) = end.filter(|e| line.number > e.lines) {
                    check.broken = Some(Broken::Appended {
                        line: line.number,
                        recorded: end.lines,
                    });
                    return Ok(check);
                }
                pending = Some(line);
            }
            Next::Unfinished(len) => {
                check.unfinished = Some(len);
                break;
            }
            Next::Eof => break,
        }
    }
    let Some(end) = end else {
        return Ok(check);
    };
    if check.lines < end.lines {
        check.broken = Some(Broken::Truncated {
            line: check.lines + 1,
            recorded: end.lines,
            cut_mid_line: check.unfinished.is_some(),
        });
    } else if check.unfinished.is_some() {
        check.broken = Some(Broken::Appended {
            line: check.lines + 1,
            recorded: end.lines,
        });
    } else if end.lines == 0 && end.last != check.last {
        // An empty trace whose record's end is not this world's start.
        check.broken = Some(Broken::Foreign {
            world: world_id.to_owned(),
        });
    }
    Ok(check)
}

/// Whether line `current` is as written, given the hash of the line
/// before it (`before`), the line after it (`next`, when there is one)
/// and the record's end.
fn judge(
    current: &LineInfo,
    before: &Hash,
    next: Option<&LineInfo>,
    end: Option<&ChainEnd>,
    world_id: &str,
) -> Option<Broken> {
    let number = current.number;
    let last_recorded = end.is_some_and(|e| e.lines == number);
    // Whoever comes after the line holds its hash: the record for the last
    // line of a closed trace, else the next line.
    let vouched = match end {
        Some(end) if last_recorded => unhex(&end.last) == Some(current.hash),
        _ => next.is_some_and(|next| next.follows(&current.hash)),
    };
    let (seq, prev) = match &current.link {
        Ok(link) => *link,
        Err(_) if vouched => return None,
        Err(reason) => {
            return Some(Broken::NotChained {
                line: number,
                reason: reason.clone(),
            })
        }
    };
    if prev == *before {
        // The line follows the one before it: only its own `seq` can be
        // wrong (a deleted or inserted line would not be followed so).
        if seq != number {
            return Some(Broken::Altered {
                line: number,
                witness: Witness::Itself,
            });
        }
    } else if seq > number {
        return Some(Broken::Missing {
            line: number,
            written_as: seq,
        });
    } else if seq < number {
        return Some(Broken::Inserted {
            line: seq,
            found: number,
        });
    } else {
        return Some(match (number, vouched) {
            (1, _) => Broken::Foreign {
                world: world_id.to_owned(),
            },
            // The line is as written (what comes after it says so): the
            // one before it is not.
            (_, true) => Broken::Altered {
                line: number - 1,
                witness: Witness::NextLine,
            },
            (_, false) => Broken::Altered {
                line: number,
                witness: Witness::Itself,
            },
        });
    }
    if last_recorded && !vouched {
        // The line after it (past the record's end) vouching for it: the
        // line is as written, the record's end is not.
        if next.is_some_and(|next| next.follows(&current.hash)) {
            return Some(Broken::EndAltered { line: number });
        }
        return Some(Broken::Altered {
            line: number,
            witness: Witness::Record,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, Timestamp, WorldDetail};
    use std::io::Cursor;

    const WORLD: &str = "w-chain";

    /// A trace of `n` chained lines, and the record's end for it.
    fn trace(n: usize) -> (Vec<String>, ChainEnd) {
        let mut chain = Chain::start(WORLD);
        let lines = (0..n)
            .map(|i| {
                let span = Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(i as i64))
                    .pid(100 + i as u32)
                    .build();
                chain.link(&span).unwrap()
            })
            .collect();
        (lines, chain.end())
    }

    fn file(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| [l.as_bytes(), b"\n"].concat())
            .collect()
    }

    fn check(bytes: &[u8], end: Option<&ChainEnd>) -> ChainCheck {
        verify_chain(Cursor::new(bytes), WORLD, end).unwrap()
    }

    fn broken(bytes: &[u8], end: &ChainEnd) -> Broken {
        check(bytes, Some(end)).broken.expect("a broken trace")
    }

    #[test]
    fn a_written_trace_is_whole() {
        let (lines, end) = trace(5);
        let result = check(&file(&lines), Some(&end));
        assert_eq!(result.broken, None);
        assert_eq!(result.lines, 5);
        assert_eq!(result.last, end.last);
        assert!(result.cut_by_crash.is_empty());
        // Each line is a span the reader reads, without the chain fields.
        for line in &lines {
            let span = Span::from_line(line.as_bytes()).unwrap();
            assert!(span.extra.is_empty(), "{:?}", span.extra);
        }
        assert!(lines[1].starts_with(r#"{"seq":2,"prev":""#), "{}", lines[1]);
    }

    #[test]
    fn an_empty_trace_is_whole_and_its_end_is_the_worlds_start() {
        let (_, end) = trace(0);
        assert_eq!(end.lines, 0);
        assert_eq!(check(b"", Some(&end)).broken, None);
        let other = Chain::start("w-other").end();
        assert!(matches!(
            check(b"", Some(&other)).broken,
            Some(Broken::Foreign { .. })
        ));
    }

    #[test]
    fn an_edited_line_is_named() {
        let (lines, end) = trace(5);
        for target in 0..5 {
            let mut edited = lines.clone();
            edited[target] = edited[target].replace(
                &format!(r#""pid":{}"#, 100 + target),
                &format!(r#""pid":{}"#, 900 + target),
            );
            assert_ne!(edited[target], lines[target]);
            let b = broken(&file(&edited), &end);
            assert_eq!(b.line(), target as u64 + 1, "{b}");
            assert!(matches!(b, Broken::Altered { .. }), "{b}");
        }
    }

    #[test]
    fn an_edited_chain_field_names_its_own_line() {
        let (lines, end) = trace(4);
        let mut edited = lines.clone();
        let prefix = r#"{"seq":3,"prev":""#;
        let prev = edited[2][prefix.len()..prefix.len() + 64].to_owned();
        edited[2] = edited[2].replacen(&prev, &"0".repeat(64), 1);
        assert_ne!(edited[2], lines[2]);
        let b = broken(&file(&edited), &end);
        assert_eq!(
            b,
            Broken::Altered {
                line: 3,
                witness: Witness::Itself
            }
        );
    }

    #[test]
    fn a_deleted_line_is_named() {
        let (lines, end) = trace(5);
        for target in 0..5 {
            let mut cut = lines.clone();
            cut.remove(target);
            let b = broken(&file(&cut), &end);
            assert_eq!(b.line(), target as u64 + 1, "{b}");
            if target < 4 {
                assert_eq!(
                    b,
                    Broken::Missing {
                        line: target as u64 + 1,
                        written_as: target as u64 + 2
                    }
                );
            } else {
                assert!(
                    matches!(
                        b,
                        Broken::Truncated {
                            cut_mid_line: false,
                            ..
                        }
                    ),
                    "{b}"
                );
            }
        }
    }

    #[test]
    fn a_truncated_file_is_named() {
        let (lines, end) = trace(5);
        let bytes = file(&lines);
        // Cut at every line boundary and in the middle of every line.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        for (whole, &at) in starts.iter().enumerate().take(5) {
            let b = broken(&bytes[..at], &end);
            assert_eq!(
                b,
                Broken::Truncated {
                    line: whole as u64 + 1,
                    recorded: 5,
                    cut_mid_line: false
                }
            );
            let b = broken(&bytes[..at + 10], &end);
            assert_eq!(
                b,
                Broken::Truncated {
                    line: whole as u64 + 1,
                    recorded: 5,
                    cut_mid_line: true
                }
            );
        }
        // Without its last newline: the last line is cut short too.
        let b = broken(&bytes[..bytes.len() - 1], &end);
        assert_eq!(b.line(), 5, "{b}");
    }

    #[test]
    fn reordered_lines_are_named() {
        let (lines, end) = trace(5);
        let mut moved = lines.clone();
        moved.swap(1, 3);
        let b = broken(&file(&moved), &end);
        assert_eq!(
            b,
            Broken::Missing {
                line: 2,
                written_as: 4
            }
        );
    }

    #[test]
    fn inserted_and_appended_lines_are_named() {
        let (lines, end) = trace(5);
        // A forged line chained as the writer would: it still shows.
        let mut forger = Chain::resume(WORLD, Cursor::new(file(&lines[..2]))).unwrap();
        let forged = forger
            .link(
                &Span::world(
                    WORLD,
                    Source::Runtime,
                    Timestamp::from_unix_nanos(7),
                    WorldDetail::default(),
                )
                .build(),
            )
            .unwrap();
        let mut inserted = lines.clone();
        inserted.insert(2, forged);
        assert_eq!(
            broken(&file(&inserted), &end),
            Broken::Inserted { line: 3, found: 4 }
        );
        // A copy of a line.
        let mut copied = lines.clone();
        copied.insert(3, lines[2].clone());
        assert_eq!(broken(&file(&copied), &end).line(), 3);

        let mut forger = Chain::resume(WORLD, Cursor::new(file(&lines))).unwrap();
        let mut appended = lines.clone();
        appended.push(
            forger
                .link(&Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(9)).build())
                .unwrap(),
        );
        assert_eq!(
            broken(&file(&appended), &end),
            Broken::Appended {
                line: 6,
                recorded: 5
            }
        );
        let mut tail = file(&lines);
        tail.extend_from_slice(b"{\"seq\":6");
        assert_eq!(
            broken(&tail, &end),
            Broken::Appended {
                line: 6,
                recorded: 5
            }
        );
    }

    #[test]
    fn bad_json_is_named() {
        let (lines, end) = trace(4);
        let mut bad = lines.clone();
        bad[1] = bad[1][..bad[1].len() - 3].to_owned();
        let b = broken(&file(&bad), &end);
        assert_eq!(b.line(), 2, "{b}");
        assert!(b.to_string().contains("not JSON"), "{b}");
        let mut blank = lines.clone();
        blank.insert(2, String::new());
        assert_eq!(broken(&file(&blank), &end).line(), 3);
        let mut plain = lines.clone();
        plain[0] = Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(0))
            .build()
            .to_line()
            .unwrap();
        let b = broken(&file(&plain), &end);
        assert_eq!(b.line(), 1, "{b}");
        assert!(b.to_string().contains("no chain fields"), "{b}");
    }

    #[test]
    fn a_trace_cannot_pass_for_another_worlds() {
        let (lines, end) = trace(3);
        let result = verify_chain(Cursor::new(file(&lines)), "w-other", Some(&end)).unwrap();
        assert_eq!(
            result.broken,
            Some(Broken::Foreign {
                world: "w-other".into()
            })
        );
    }

    #[test]
    fn a_line_cut_by_a_crash_is_vouched_for_by_the_writer_that_continued() {
        let (lines, _) = trace(3);
        // The writer died in the middle of line 3.
        let mut bytes = file(&lines[..2]);
        bytes.extend_from_slice(&lines[2].as_bytes()[..40]);
        // While nobody writes it: the whole lines are whole.
        let running = check(&bytes, None);
        assert_eq!(running.broken, None);
        assert_eq!((running.lines, running.unfinished), (2, Some(40)));
        // The next writer ends the cut line and chains over it.
        let mut chain = Chain::resume(WORLD, Cursor::new(&bytes)).unwrap();
        assert_eq!(chain.lines(), 3);
        bytes.push(b'\n');
        let span = Span::exec(WORLD, Source::Monitor, Timestamp::from_unix_nanos(5)).build();
        bytes.extend_from_slice(chain.link(&span).unwrap().as_bytes());
        bytes.push(b'\n');
        let result = check(&bytes, Some(&chain.end()));
        assert_eq!(result.broken, None, "{:?}", result.broken);
        assert_eq!(result.cut_by_crash, vec![3]);
        assert_eq!(result.lines, 4);
    }

    #[test]
    fn resume_continues_the_chain_of_whole_lines() {
        let (lines, end) = trace(4);
        let chain = Chain::resume(WORLD, Cursor::new(file(&lines))).unwrap();
        assert_eq!(chain.end(), end);
        assert_eq!(
            Chain::resume(WORLD, Cursor::new(b"")).unwrap().end(),
            trace(0).1
        );
    }

    #[test]
    fn a_running_trace_is_checked_as_far_as_it_goes() {
        let (lines, _) = trace(4);
        let mut edited = lines.clone();
        edited[1] = edited[1].replace(r#""pid":101"#, r#""pid":1"#);
        assert_eq!(
            check(&file(&edited), None).broken.map(|b| b.line()),
            Some(2)
        );
        // The last line of a running trace has no witness yet but its own
        // `prev`: only an edit of that is seen.
        let result = check(&file(&lines), None);
        assert_eq!((result.lines, result.broken), (4, None));
    }

    #[test]
    fn a_span_too_large_once_chained_is_refused_and_the_chain_unchanged() {
        let mut chain = Chain::start(WORLD);
        let big = "x".repeat(MAX_LINE_BYTES - 200);
        let span = Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(0))
            .argv([big.as_bytes().to_vec()])
            .build();
        assert!(span.to_line().is_ok());
        assert!(matches!(chain.link(&span), Err(SpanError::TooLarge { .. })));
        assert_eq!(chain.end(), Chain::start(WORLD).end());
    }

    #[test]
    fn chain_fields_in_a_spans_extra_are_never_written() {
        let mut span = Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(0)).build();
        span.extra.insert("seq".into(), serde_json::json!(99));
        span.extra
            .insert("prev".into(), serde_json::json!("forged"));
        let mut chain = Chain::start(WORLD);
        let line = chain.link(&span).unwrap();
        assert_eq!(line.matches(r#""seq""#).count(), 1, "{line}");
        assert_eq!(line.matches(r#""prev""#).count(), 1, "{line}");
        assert_eq!(
            check(format!("{line}\n").as_bytes(), Some(&chain.end())).broken,
            None
        );
    }

    /// One change to a closed trace, of those a verifier must name.
    #[derive(Clone, Debug)]
    enum Tamper {
        /// Byte `at` (modulo the line's length) of line `line` replaced.
        Edit {
            line: usize,
            at: usize,
            byte: u8,
        },
        Delete {
            line: usize,
        },
        /// The file cut at byte `at` (modulo its length).
        Truncate {
            at: usize,
        },
        Swap {
            a: usize,
            b: usize,
        },
        /// A forged line, chained as the writer would, put before `line`.
        Insert {
            line: usize,
        },
    }

    fn tamper() -> impl proptest::strategy::Strategy<Value = Tamper> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..64, any::<usize>(), any::<u8>()).prop_map(|(line, at, byte)| Tamper::Edit {
                line,
                at,
                byte
            }),
            (0usize..64).prop_map(|line| Tamper::Delete { line }),
            any::<usize>().prop_map(|at| Tamper::Truncate { at }),
            (0usize..64, 0usize..64).prop_map(|(a, b)| Tamper::Swap { a, b }),
            (0usize..64).prop_map(|line| Tamper::Insert { line }),
        ]
    }

    /// The trace `lines` changed by `tamper`, and the first line (from 1)
    /// no longer as written; `None` when the change changed nothing.
    fn apply(lines: &[String], tamper: &Tamper) -> Option<(Vec<u8>, u64)> {
        let n = lines.len();
        let mut changed = lines.to_vec();
        let first = match *tamper {
            Tamper::Edit { line, at, byte } => {
                let line = line % n;
                let mut bytes = changed[line].clone().into_bytes();
                let at = at % bytes.len();
                if bytes[at] == byte || byte == b'\n' {
                    return None;
                }
                bytes[at] = byte;
                let mut edited = file(&changed[..line]);
                edited.extend_from_slice(&bytes);
                edited.push(b'\n');
                edited.extend_from_slice(&file(&changed[line + 1..]));
                return Some((edited, line as u64 + 1));
            }
            Tamper::Delete { line } => {
                changed.remove(line % n);
                line % n
            }
            Tamper::Truncate { at } => {
                let bytes = file(lines);
                let at = at % bytes.len();
                let first = bytes[..at].iter().filter(|&&b| b == b'\n').count();
                return Some((bytes[..at].to_vec(), first as u64 + 1));
            }
            Tamper::Swap { a, b } => {
                let (a, b) = (a % n, b % n);
                if a == b {
                    return None;
                }
                changed.swap(a, b);
                a.min(b)
            }
            Tamper::Insert { line } => {
                let line = line % (n + 1);
                let mut forger = Chain::resume(WORLD, Cursor::new(file(&lines[..line]))).unwrap();
                let span = Span::exec(WORLD, Source::Kernel, Timestamp::from_unix_nanos(-1))
                    .pid(1)
                    .build();
                changed.insert(line, forger.link(&span).unwrap());
                line
            }
        };
        Some((file(&changed), first as u64 + 1))
    }

    proptest::proptest! {
        /// Whatever one change was made to a closed trace, the verifier
        /// sees it and names the first line it changed.
        #[test]
        fn proptest_any_change_is_named(n in 1usize..8, tamper in tamper()) {
            let (lines, end) = trace(n);
            if let Some((bytes, first)) = apply(&lines, &tamper) {
                let result = check(&bytes, Some(&end));
                let broken = result.broken.clone();
                proptest::prop_assert!(broken.is_some(), "{tamper:?} not seen: {result:?}");
                let broken = broken.unwrap();
                proptest::prop_assert_eq!(broken.line(), first, "{:?}: {}", tamper, broken);
            }
        }
    }
}
