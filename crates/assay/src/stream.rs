//! Runs every document of an input through a [`Processor`], on all cores, in constant
//! memory, writing results in input order.
//!
//! NDJSON is cut into chunks of up to [`Settings::chunk_lines`] lines (and about
//! [`CHUNK_BYTES`]) by a reader thread, processed by `jobs` worker threads, and written by the
//! calling thread in chunk order. A chunk is the unit of work because one line is too little
//! to pay for a channel hand-off. Memory stays bounded because a chunk needs a slot to be
//! read and the writer frees slots only in order: at most [`Settings::window`] chunks exist at
//! once, wherever they are (queued, being processed, or waiting in the reorder buffer for a
//! slower chunk before them). A whole-document input is processed on the calling thread.
//!
//! Every document yields a [`Verdict`]. Processors write results into the chunk's output
//! buffer; documents that do not pass become one JSON record each on the error stream:
//! `{"file": ..., "line": ..., <the verdict's fields>}`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::num::NonZeroUsize;
use std::ops::AddAssign;

use crossbeam_channel::bounded;
use engine::{Limits, ParseError, Value, parse_document};
use serde_json::Map;

use crate::input::{Framing, Input, Line, LineReader, is_blank, leaves_open, read_whole};
use crate::progress::Progress;

/// A chunk is cut once it holds this many bytes, even short of its line count, so that
/// long lines do not make chunks (and the memory bound) large.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// What a command does with one parsed document.
pub trait Processor: Sync {
    /// The limits documents are read and parsed under.
    fn limits(&self) -> &Limits;

    /// Handles `doc`, appending any result to `out`.
    fn process(&self, doc: &Value, out: &mut Vec<u8>) -> Verdict;

    /// The record fields for a document that could not be parsed.
    fn unparsable(&self, error: &ParseError) -> Map<String, Value>;
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It passed; its result, if any, is in the output.
    Passed,
    /// A schema rejected it; the fields say why. Data, not a failure of the system.
    Rejected(Map<String, Value>),
    /// It could not be processed (not JSON, a transform error, an encoding it cannot take).
    Failed(Map<String, Value>),
}

/// Counts of verdicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents seen.
    pub documents: u64,
    /// [`Verdict::Passed`].
    pub passed: u64,
    /// [`Verdict::Rejected`].
    pub rejected: u64,
    /// [`Verdict::Failed`].
    pub failed: u64,
}

impl Tally {
    fn count(&mut self, verdict: &Verdict) {
        self.documents += 1;
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Rejected(_) => self.rejected += 1,
            Verdict::Failed(_) => self.failed += 1,
        }
    }

    /// Whether every document passed.
    pub fn all_passed(&self) -> bool {
        self.passed == self.documents
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.documents += other.documents;
        self.passed += other.passed;
        self.rejected += other.rejected;
        self.failed += other.failed;
    }
}

/// How inputs are read and spread over threads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How documents are laid out.
    pub framing: Framing,
    /// Worker threads for NDJSON.
    pub jobs: NonZeroUsize,
    /// Lines per chunk: enough to amortise the hand-offs, few enough to keep every worker
    /// busy on a small input.
    pub chunk_lines: usize,
    /// Whether a progress bar may be drawn on standard error (it is a terminal).
    pub progress: bool,
}

impl Settings {
    /// `jobs` workers, automatic framing, 1,000-line chunks, no progress bar.
    pub fn new(jobs: NonZeroUsize) -> Self {
        Self {
            framing: Framing::Auto,
            jobs,
            chunk_lines: 1000,
            progress: false,
        }
    }

    /// Chunks in existence at once. Two per worker lets each one find its next chunk queued
    /// while the writer catches up.
    pub fn window(&self) -> usize {
        2 * self.jobs.get()
    }
}

/// An input that could not be read or an output that could not be written. Everything
/// else that goes wrong is a [`Verdict`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading an input failed.
    #[error("cannot read {name}: {error}")]
    Read {
        /// The input's name.
        name: String,
        /// Why.
        error: io::Error,
    },
    /// Writing to standard output or standard error failed.
    #[error("cannot write: {0}")]
    Write(io::Error),
}

impl StreamError {
    /// Whether the reader of our output went away (`assay ... | head`): a normal way to stop.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Write(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Processes every document of every input in turn.
pub fn process_all<P: Processor>(
    inputs: Vec<Input>,
    settings: &Settings,
    processor: &P,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Tally, StreamError> {
    let mut tally = Tally::default();
    for input in inputs {
        tally += process(input, settings, processor, out, err)?;
    }
    out.flush().map_err(StreamError::Write)?;
    Ok(tally)
}

/// Processes every document of `input`: results to `out`, records to `err`.
pub fn process<P: Processor>(
    input: Input,
    settings: &Settings,
    processor: &P,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Tally, StreamError> {
    let name = input.name().to_owned();
    let size = input.size();
    let framing = input.framing(settings.framing);
    let read_error = |error| StreamError::Read {
        name: name.clone(),
        error,
    };
    let max_bytes = processor.limits().max_bytes;
    let mut lines = LineReader::new(input.into_reader(), max_bytes);
    let mut first = Chunk::new(0);
    let whole = match framing {
        Framing::Whole => true,
        Framing::Ndjson => false,
        // Blank lines before the first document stay in the buffer: a whole document needs
        // them to keep its line numbers.
        Framing::Auto => loop {
            match lines.next_line(&mut first.data).map_err(read_error)? {
                None => return Ok(Tally::default()),
                Some(Line::Text { content, .. }) if is_blank(&first.data[content.clone()]) => {}
                Some(Line::Text { content, .. }) if leaves_open(&first.data[content.clone()]) => {
                    break true;
                }
                Some(line) => {
                    first.push(line);
                    break false;
                }
            }
        },
    };
    // One document parses in well under a second; the bar is for long NDJSON runs.
    let progress = Progress::new(settings.progress && !whole, size, &name);
    let mut writer = Writer {
        out,
        err,
        progress: &progress,
        tally: Tally::default(),
    };
    let result = if whole {
        let mut reader = lines.into_inner();
        let body = match read_whole(&mut reader, first.data, max_bytes).map_err(read_error)? {
            Ok(doc) => {
                let end = doc.len();
                first.data = doc;
                Body::Text(0..end)
            }
            Err(len) => {
                first.data = Vec::new();
                Body::TooLarge(len)
            }
        };
        first.items.push(Item { line: 1, body });
        writer.write(work(processor, &name, &first))
    } else {
        run_parallel(lines, first, settings, processor, &name, &mut writer)
    };
    progress.finish();
    result.map(|()| writer.tally)
}

/// A run of lines, stored back to back in one buffer.
struct Chunk {
    seq: u64,
    data: Vec<u8>,
    items: Vec<Item>,
}

struct Item {
    line: u64,
    body: Body,
}

enum Body {
    /// The document's bytes in the chunk's data.
    Text(std::ops::Range<usize>),
    /// A document over the size limit, of this many bytes; not kept.
    TooLarge(u64),
}

impl Chunk {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            data: Vec::new(),
            items: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, line: Line) {
        let (line, body) = match line {
            Line::Text { number, content } => (number, Body::Text(content)),
            Line::TooLarge { number, len } => (number, Body::TooLarge(len)),
        };
        self.items.push(Item { line, body });
    }

    /// Reads lines until the chunk is full; `false` once the input is exhausted.
    fn fill<R: BufRead>(
        &mut self,
        lines: &mut LineReader<R>,
        max_lines: usize,
    ) -> io::Result<bool> {
        while self.items.len() < max_lines && self.data.len() < CHUNK_BYTES {
            match lines.next_line(&mut self.data)? {
                None => return Ok(false),
                Some(Line::Text { content, .. }) if is_blank(&self.data[content.clone()]) => {
                    self.data.truncate(content.start);
                }
                Some(line) => self.push(line),
            }
        }
        Ok(true)
    }
}

/// A processed chunk: what goes to each stream, and the counts.
struct Done {
    seq: u64,
    out: Vec<u8>,
    err: Vec<u8>,
    tally: Tally,
}

fn work<P: Processor>(processor: &P, name: &str, chunk: &Chunk) -> Done {
    let limits = processor.limits();
    let mut done = Done {
        seq: chunk.seq,
        out: Vec::new(),
        err: Vec::new(),
        tally: Tally::default(),
    };
    for item in &chunk.items {
        let parsed = match &item.body {
            Body::Text(range) => parse_document(&chunk.data[range.clone()], limits),
            Body::TooLarge(len) => Err(ParseError::TooLarge {
                limit: limits.max_bytes,
                actual: usize::try_from(*len).unwrap_or(usize::MAX),
            }),
        };
        let verdict = match parsed {
            Ok(doc) => processor.process(&doc, &mut done.out),
            Err(e) => Verdict::Failed(processor.unparsable(&e)),
        };
        done.tally.count(&verdict);
        if let Verdict::Rejected(fields) | Verdict::Failed(fields) = verdict {
            write_record(&mut done.err, name, item.line, fields);
        }
    }
    done
}

/// Appends `{"file": name, "line": line, ...fields}` and a newline.
fn write_record(err: &mut Vec<u8>, name: &str, line: u64, fields: Map<String, Value>) {
    let mut record = Map::with_capacity(fields.len() + 2);
    record.insert("file".into(), name.into());
    record.insert("line".into(), line.into());
    record.extend(fields);
    // A map with string keys always serialises, and a Vec always takes the bytes.
    serde_json::to_writer(&mut *err, &Value::Object(record)).expect("records serialise");
    err.push(b'\n');
}

/// `{"code": code, "message": message}`, the shape every record gives an error.
pub fn error_value(code: &str, message: impl std::fmt::Display) -> Value {
    let mut error = Map::with_capacity(2);
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.to_string().into());
    Value::Object(error)
}

/// The calling thread's end: writes finished chunks and counts them.
struct Writer<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    progress: &'a Progress,
    tally: Tally,
}

impl Writer<'_> {
    fn write(&mut self, done: Done) -> Result<(), StreamError> {
        self.out.write_all(&done.out).map_err(StreamError::Write)?;
        if !done.err.is_empty() {
            self.progress
                .suspend(|| {
                    self.err
                        .write_all(&done.err)
                        .and_then(|()| self.err.flush())
                })
                .map_err(StreamError::Write)?;
        }
        self.tally += done.tally;
        Ok(())
    }
}

/// Reader thread -> `jobs` workers -> this thread, in order.
fn run_parallel<P: Processor>(
    mut lines: LineReader<Box<dyn BufRead + Send>>,
    first: Chunk,
    settings: &Settings,
    processor: &P,
    name: &str,
    writer: &mut Writer<'_>,
) -> Result<(), StreamError> {
    let window = settings.window();
    let chunk_lines = settings.chunk_lines.max(1);
    let progress = writer.progress;
    std::thread::scope(|s| {
        let (work_tx, work_rx) = bounded::<Chunk>(window);
        let (done_tx, done_rx) = bounded::<std::thread::Result<Done>>(window);
        // One message per chunk in existence: the reader sends one before it reads a chunk,
        // the writer takes one back once it has written a chunk. This is what bounds the
        // reorder buffer, and so memory, whatever order the workers finish in.
        let (slot_tx, slot_rx) = bounded::<()>(window);

        let reader = s.spawn(move || -> io::Result<()> {
            let mut chunk = first;
            loop {
                if slot_tx.send(()).is_err() {
                    return Ok(()); // The writer stopped.
                }
                let more = chunk.fill(&mut lines, chunk_lines)?;
                progress.set(lines.bytes_read());
                if chunk.is_empty() {
                    return Ok(());
                }
                let next = Chunk::new(chunk.seq + 1);
                if work_tx.send(std::mem::replace(&mut chunk, next)).is_err() || !more {
                    return Ok(());
                }
            }
        });
        for _ in 0..settings.jobs.get() {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            s.spawn(move || {
                for chunk in work_rx {
                    // A panic is a bug; it travels to the writer, which re-raises it once the
                    // other threads can see that it stopped, instead of leaving a gap in the
                    // order that nothing would ever fill.
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        work(processor, name, &chunk)
                    }));
                    if done_tx.send(done).is_err() {
                        return; // The writer stopped.
                    }
                }
            });
        }
        drop((work_rx, done_tx));

        let mut pending = BTreeMap::new();
        let mut next = 0;
        let written = (|| {
            for done in &done_rx {
                let done = done.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                pending.insert(done.seq, done);
                while let Some(done) = pending.remove(&next) {
                    writer.write(done)?;
                    next += 1;
                    // The reader sent this slot before it read the chunk, so it is there.
                    let _ = slot_rx.try_recv();
                }
            }
            Ok(())
        })();
        // Dropping our ends stops the reader and the workers when we stopped early.
        drop((done_rx, slot_rx));
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written?;
        read.map_err(|error| StreamError::Read {
            name: name.to_owned(),
            error,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Input;

    /// Echoes `{"n": N}` documents, rejects odd N, and fails on anything else.
    struct Echo(Limits);

    impl Processor for Echo {
        fn limits(&self) -> &Limits {
            &self.0
        }

        fn process(&self, doc: &Value, out: &mut Vec<u8>) -> Verdict {
            let Some(n) = doc.get("n").and_then(Value::as_u64) else {
                return Verdict::Failed(Map::new());
            };
            if n % 2 == 1 {
                return Verdict::Rejected(Map::new());
            }
            // Uneven work, so that chunks finish out of order.
            if n % 7 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            engine::encode(doc, engine::Encoding::Ndjson, out).unwrap();
            Verdict::Passed
        }

        fn unparsable(&self, error: &ParseError) -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("code".into(), error.code().into());
            m
        }
    }

    fn run(input: &str, settings: &Settings, limits: Limits) -> (Tally, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let input = Input::from_reader("in", io::Cursor::new(input.to_owned()));
        let tally = process(input, settings, &Echo(limits), &mut out, &mut err).unwrap();
        (
            tally,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn settings(jobs: usize, chunk_lines: usize) -> Settings {
        Settings {
            chunk_lines,
            ..Settings::new(NonZeroUsize::new(jobs).unwrap())
        }
    }

    #[test]
    fn output_keeps_input_order_whatever_the_threads() {
        let input: String = (0..2000).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        let (tally, expected, records) = run(&input, &settings(1, 1000), Limits::default());
        assert_eq!(tally.documents, 2000);
        assert_eq!(tally.rejected, 1000);
        assert_eq!(records.lines().count(), 1000);
        for (jobs, chunk_lines) in [(4, 3), (3, 1), (2, 1000)] {
            let (t, out, err) = run(&input, &settings(jobs, chunk_lines), Limits::default());
            assert_eq!(
                (t, &out, &err),
                (tally, &expected, &records),
                "{jobs} {chunk_lines}"
            );
        }
    }

    #[test]
    fn records_carry_the_input_line() {
        let limits = Limits {
            max_bytes: 20,
            ..Limits::default()
        };
        let input = "{\"n\":2}\n\n   \n{\"n\":3}\n[\n{\"n\":4,\"pad\":\"xxxxxxxxxx\"}\n{\"n\":6}";
        let (tally, out, err) = run(input, &settings(2, 2), limits);
        assert_eq!(out, "{\"n\":2}\n{\"n\":6}\n");
        assert_eq!(
            err,
            concat!(
                "{\"file\":\"in\",\"line\":4}\n",
                "{\"file\":\"in\",\"line\":5,\"code\":\"syntax\"}\n",
                "{\"file\":\"in\",\"line\":6,\"code\":\"too_large\"}\n",
            )
        );
        assert_eq!(
            tally,
            Tally {
                documents: 5,
                passed: 2,
                rejected: 1,
                failed: 2
            }
        );
    }

    #[test]
    fn a_pretty_printed_document_is_read_whole() {
        let (tally, out, err) = run("\n{\n  \"n\": 8\n}\n", &settings(2, 10), Limits::default());
        assert_eq!(
            (tally.passed, out.as_str(), err.as_str()),
            (1, "{\"n\":8}\n", "")
        );
        // Positions inside a whole document count its lines, blank ones included.
        let (_, _, err) = run("\n{\n  \"n\": 8,\n}\n", &settings(2, 10), Limits::default());
        assert_eq!(err, "{\"file\":\"in\",\"line\":1,\"code\":\"syntax\"}\n");
    }

    #[test]
    fn blank_input_has_no_documents() {
        let (tally, out, err) = run(" \n\n", &settings(2, 10), Limits::default());
        assert_eq!((tally.documents, out.as_str(), err.as_str()), (0, "", ""));
    }

    #[test]
    fn forced_framing_wins() {
        let whole = Settings {
            framing: Framing::Whole,
            ..settings(2, 10)
        };
        let (tally, _, _) = run("{\"n\":2}\n{\"n\":4}\n", &whole, Limits::default());
        assert_eq!(tally.failed, 1, "two documents are not one");
        let ndjson = Settings {
            framing: Framing::Ndjson,
            ..settings(2, 10)
        };
        let (tally, _, _) = run("{\n}\n", &ndjson, Limits::default());
        assert_eq!(
            tally.failed, 2,
            "each line of a pretty document fails alone"
        );
    }
}
