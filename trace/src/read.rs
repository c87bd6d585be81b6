//! Reading a trace: JSON lines, one span each, written by processes that can
//! crash at any point.

use std::io::{self, BufRead};

use crate::span::{Span, SpanError, MAX_LINE_BYTES};

/// What reading a trace can meet. Only [`ReadError::Io`] ends the reading;
/// after the others the reader goes on with the next line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read spans: {0}")]
    Io(#[from] io::Error),
    /// A line that is not a span of a version this crate reads (bad JSON, a
    /// missing field, a newer major version, over [`MAX_LINE_BYTES`]).
    #[error("line {line}: {source}")]
    Line {
        line: u64,
        #[source]
        source: SpanError,
    },
    /// The last line had no `\n`: its writer died while writing it. Writers
    /// end every span with `\n`, so such a line is never taken for a span,
    /// even when what is there happens to parse.
    #[error("line {line}: unfinished last line ({len} bytes without a newline) skipped")]
    Unfinished { line: u64, len: usize },
}

impl ReadError {
    /// Whether reading stopped here (an I/O error), or only this line was
    /// skipped.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ReadError::Io(_))
    }
}

/// What a reader has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines read, blank ones and the unfinished last one included.
    pub lines: u64,
    /// Spans returned.
    pub spans: u64,
    /// Lines skipped with a [`ReadError::Line`].
    pub skipped: u64,
    /// Lines of another major version among `skipped`.
    pub unsupported_version: u64,
    /// 1 when the last line was unfinished.
    pub unfinished: u64,
}

/// The spans of a trace, in file order: `Ok` for each span, `Err` for each
/// line skipped (counted in [`SpanReader::stats`]) and for the I/O error
/// that ends the reading. Blank lines are skipped without an error. Lines
/// over [`MAX_LINE_BYTES`] are skipped without being held in memory.
///
/// The reader stops at the end of the input: to follow a trace that is
/// still being written, a caller must keep the partial last line itself.
pub fn read_spans<R: BufRead>(reader: R) -> SpanReader<R> {
    SpanReader {
        reader,
        buf: Vec::new(),
        stats: ReadStats::default(),
        done: false,
    }
}

/// See [`read_spans`].
pub struct SpanReader<R> {
    reader: R,
    buf: Vec<u8>,
    stats: ReadStats,
    done: bool,
}

enum Line {
    Eof,
    /// A whole line, in `buf`, without its `\n`.
    Complete,
    /// A line longer than the limit, of this length; `buf` holds its start.
    TooLong {
        len: usize,
    },
    /// Input ended inside a line.
    Unfinished {
        len: usize,
    },
}

impl<R: BufRead> SpanReader<R> {
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Reads up to the next `\n`, keeping at most `MAX_LINE_BYTES + 1` bytes.
    fn next_line(&mut self) -> io::Result<Line> {
        self.buf.clear();
        let mut len = 0usize;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(match len {
                    0 => Line::Eof,
                    len => Line::Unfinished { len },
                });
            }
            let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            len += take;
            self.reader.consume(take + usize::from(newline));
            if newline {
                return Ok(if len > MAX_LINE_BYTES {
                    Line::TooLong { len }
                } else {
                    Line::Complete
                });
            }
        }
    }
}

impl<R: BufRead> Iterator for SpanReader<R> {
    type Item = Result<Span, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let line = match self.next_line() {
                Ok(line) => line,
                Err(e) => {
                    self.done = true;
                    return Some(Err(ReadError::Io(e)));
                }
            };
            let number = self.stats.lines + 1;
            let failed = |stats: &mut ReadStats, source: SpanError| {
                stats.skipped += 1;
                if matches!(source, SpanError::UnsupportedVersion { .. }) {
                    stats.unsupported_version += 1;
                }
                Some(Err(ReadError::Line {
                    line: number,
                    source,
                }))
            };
            match line {
                Line::Eof => {
                    self.done = true;
                    return None;
                }
                Line::Unfinished { len } => {
                    self.done = true;
                    self.stats.lines += 1;
                    self.stats.unfinished += 1;
                    return Some(Err(ReadError::Unfinished { line: number, len }));
                }
                Line::TooLong { len } => {
                    self.stats.lines += 1;
                    return failed(
                        &mut self.stats,
                        SpanError::TooLarge {
                            len,
                            max: MAX_LINE_BYTES,
                        },
                    );
                }
                Line::Complete => {
                    self.stats.lines += 1;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match Span::from_line(&self.buf) {
                        Ok(span) => {
                            self.stats.spans += 1;
                            return Some(Ok(span));
                        }
                        Err(source) => return failed(&mut self.stats, source),
                    }
                }
            }
        }
    }
}
