//! Where documents come from: files or standard input, read either as one whole JSON document
//! or as NDJSON, one line at a time.
//!
//! Reading is bounded by `Limits::max_bytes`. A line longer than that is skipped as it streams
//! past rather than buffered, so a hostile or corrupt line costs the limit in memory, not its
//! own length, and the lines after it are still read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::Path;

/// Large reads amortise system calls; 256 KiB keeps a few hundred trade-sized lines per read.
const READ_BUFFER: usize = 256 * 1024;

/// File name endings that always mean NDJSON.
const NDJSON_EXTENSIONS: [&str; 3] = ["ndjson", "jsonl", "ldjson"];

/// How the documents of an input are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// NDJSON when the name says so (`.ndjson`, `.jsonl`, `.ldjson`) or when the first
    /// non-blank line is complete on its own; otherwise one whole document. See
    /// [`leaves_open`].
    #[default]
    Auto,
    /// The whole input is one JSON document.
    Whole,
    /// One JSON document per line.
    Ndjson,
}

/// An opened input: a name for reports, a reader, and its size when known.
pub struct Input {
    name: String,
    reader: Box<dyn BufRead + Send>,
    size: Option<u64>,
    ndjson_name: bool,
}

impl Input {
    /// The name standard input goes by in reports (jq's spelling).
    pub const STDIN: &'static str = "<stdin>";

    /// Opens `path`, or standard input when `path` is `-`. Directories are refused here, so
    /// that the error names the path instead of surfacing later as a failed read.
    pub fn open(path: &Path) -> io::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::stdin());
        }
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        let ndjson_name = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| NDJSON_EXTENSIONS.iter().any(|n| e.eq_ignore_ascii_case(n)));
        Ok(Self {
            name: path.display().to_string(),
            reader: Box::new(BufReader::with_capacity(READ_BUFFER, file)),
            size: metadata.is_file().then_some(metadata.len()),
            ndjson_name,
        })
    }

    /// Standard input.
    pub fn stdin() -> Self {
        Self::from_reader(
            Self::STDIN,
            BufReader::with_capacity(READ_BUFFER, io::stdin()),
        )
    }

    /// Any reader, under `name`; its size is unknown and its name says nothing of framing.
    pub fn from_reader(name: &str, reader: impl BufRead + Send + 'static) -> Self {
        Self {
            name: name.to_owned(),
            reader: Box::new(reader),
            size: None,
            ndjson_name: false,
        }
    }

    /// The name reports use: the path as given, or [`Input::STDIN`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes, for a regular file.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// `framing` with [`Framing::Auto`] settled by the name when the name is conclusive.
    pub(crate) fn framing(&self, framing: Framing) -> Framing {
        match framing {
            Framing::Auto if self.ndjson_name => Framing::Ndjson,
            other => other,
        }
    }

    pub(crate) fn into_reader(self) -> Box<dyn BufRead + Send> {
        self.reader
    }
}

/// One line as [`LineReader::next_line`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line within the limit; `content` is where it lies in the caller's buffer, without
    /// its newline.
    Text {
        /// 1-based line number in the input.
        number: u64,
        /// The line's bytes in the buffer passed to `next_line`.
        content: Range<usize>,
    },
    /// A line longer than the limit. Its bytes were skipped, not kept.
    TooLarge {
        /// 1-based line number in the input.
        number: u64,
        /// The line's length in bytes, without its newline.
        len: u64,
    },
}

/// Splits a byte stream into lines, never holding more than `max_bytes` of one line.
pub struct LineReader<R> {
    inner: R,
    max_bytes: usize,
    line: u64,
    bytes_read: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `inner`, refusing lines longer than `max_bytes`.
    pub fn new(inner: R, max_bytes: usize) -> Self {
        Self {
            inner,
            max_bytes,
            line: 0,
            bytes_read: 0,
        }
    }

    /// Bytes consumed so far, newlines and skipped lines included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Appends the next line (with its newline, if it has one) to `buf` and says where its
    /// content lies; `None` at the end of the input. An oversized line appends nothing.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        let start = buf.len();
        // One byte over the limit is how an oversized line shows itself: its newline has not
        // been reached after `max_bytes + 1` bytes.
        let cap = self.max_bytes as u64 + 1;
        let n = (&mut self.inner).take(cap).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes_read += n as u64;
        let terminated = buf.last() == Some(&b'\n');
        if !terminated && n as u64 == cap {
            buf.truncate(start);
            let rest = self.skip_line()?;
            return Ok(Some(Line::TooLarge {
                number: self.line,
                len: cap + rest,
            }));
        }
        Ok(Some(Line::Text {
            number: self.line,
            content: start..buf.len() - usize::from(terminated),
        }))
    }

    /// Consumes the rest of the current line and its newline; returns the line's bytes.
    fn skip_line(&mut self) -> io::Result<u64> {
        let mut skipped = 0;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(skipped);
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.inner.consume(i + 1);
                    self.bytes_read += i as u64 + 1;
                    return Ok(skipped + i as u64);
                }
                None => {
                    let n = available.len();
                    self.inner.consume(n);
                    self.bytes_read += n as u64;
                    skipped += n as u64;
                }
            }
        }
    }

    /// The reader, positioned after the last line returned.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Whether `line` holds only JSON whitespace. Such lines carry no document and are skipped.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether `line` ends inside a string or with an array or object still open: the first
/// line of a pretty-printed document (`{`, `[`, `{"a": [1,`) does, a complete NDJSON record
/// never does. This is how [`Framing::Auto`] tells one document from NDJSON without reading
/// further than the first line.
///
/// It is a bracket count, not a parse: it needs no recursion (so no stack for deep input)
/// and says nothing about validity, which the real parser judges later.
pub fn leaves_open(line: &[u8]) -> bool {
    let mut depth: i64 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in line {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
    }
    in_string || depth > 0
}

/// Reads what is left of `reader` after `prefix` as one document of at most `max_bytes`.
/// `Err(size)` gives the size of a larger input, which is drained (not kept) to count it.
pub(crate) fn read_whole(
    reader: &mut dyn BufRead,
    mut prefix: Vec<u8>,
    max_bytes: usize,
) -> io::Result<Result<Vec<u8>, u64>> {
    let room = (max_bytes + 1).saturating_sub(prefix.len()) as u64;
    reader.take(room).read_to_end(&mut prefix)?;
    if prefix.len() <= max_bytes {
        return Ok(Ok(prefix));
    }
    let rest = io::copy(reader, &mut io::sink())?;
    Ok(Err(prefix.len() as u64 + rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str, max: usize) -> Vec<Result<String, (u64, u64)>> {
        let mut reader = LineReader::new(input.as_bytes(), max);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(line) = reader.next_line(&mut buf).unwrap() {
            out.push(match line {
                Line::Text { number, content } => Ok(format!(
                    "{number}:{}",
                    String::from_utf8_lossy(&buf[content])
                )),
                Line::TooLarge { number, len } => Err((number, len)),
            });
        }
        assert_eq!(reader.bytes_read(), input.len() as u64);
        out
    }

    #[test]
    fn lines_are_numbered_and_lose_their_newline() {
        assert_eq!(
            lines("a\n\nbc\r\nd", 10),
            [
                Ok("1:a".into()),
                Ok("2:".into()),
                Ok("3:bc\r".into()),
                Ok("4:d".into())
            ]
        );
    }

    #[test]
    fn an_oversized_line_is_skipped_and_reading_goes_on() {
        assert_eq!(
            lines("1234\n12345\n123456789\nok\n123456", 5),
            [
                Ok("1:1234".into()),
                Ok("2:12345".into()),
                Err((3, 9)),
                Ok("4:ok".into()),
                Err((5, 6)),
            ]
        );
    }

    #[test]
    fn an_oversized_line_is_not_buffered() {
        // 8 MB of one line through a 1 KB limit: the caller's buffer never grows past it.
        let long = "x".repeat(8_000_000) + "\n{}\n";
        let mut reader = LineReader::new(long.as_bytes(), 1024);
        let mut buf = Vec::new();
        assert_eq!(
            reader.next_line(&mut buf).unwrap(),
            Some(Line::TooLarge {
                number: 1,
                len: 8_000_000
            })
        );
        assert!(buf.capacity() <= 4096, "buffer grew to {}", buf.capacity());
        assert!(matches!(
            reader.next_line(&mut buf).unwrap(),
            Some(Line::Text { number: 2, .. })
        ));
    }

    #[test]
    fn pretty_printed_first_lines_leave_something_open() {
        for open in [
            "{",
            "[",
            r#"{"a": [1,"#,
            r#"  "text": "multi"#,
            r#"{"quote \" ] }": "#,
        ] {
            assert!(leaves_open(open.as_bytes()), "{open}");
        }
        for closed in [
            "{}",
            r#"{"a":[1,2],"b":"]"}"#,
            "12",
            "\"x\"",
            "}",
            r#"{"a":"\\"}"#,
        ] {
            assert!(!leaves_open(closed.as_bytes()), "{closed}");
        }
    }

    #[test]
    fn a_whole_document_is_bounded() {
        let mut r: &[u8] = b"45678";
        assert_eq!(
            read_whole(&mut r, b"123".to_vec(), 8).unwrap(),
            Ok(b"12345678".to_vec())
        );
        let mut r: &[u8] = b"456789";
        assert_eq!(read_whole(&mut r, b"123".to_vec(), 8).unwrap(), Err(9));
    }

    #[test]
    fn ndjson_names_settle_auto_framing() {
        let dir = tempfile::tempdir().unwrap();
        for (name, framing) in [
            ("a.ndjson", Framing::Ndjson),
            ("a.JSONL", Framing::Ndjson),
            ("a.json", Framing::Auto),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "{}").unwrap();
            let input = Input::open(&path).unwrap();
            assert_eq!(input.framing(Framing::Auto), framing, "{name}");
            assert_eq!(input.framing(Framing::Whole), Framing::Whole);
            assert_eq!(input.size(), Some(2));
        }
        assert!(Input::open(dir.path()).is_err());
    }
}
