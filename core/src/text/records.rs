//! Records streamed from a corpus file: FASTA/FASTQ through `needletail`, or plain text lines.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use needletail::errors::ParseErrorKind;
use needletail::FastxReader;

use crate::error::{Error, Result};

/// How a corpus file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// FASTA or FASTQ, told apart by the first byte (`>` or `@`), optionally gzip-compressed. A record
    /// is one sequence (multi-line FASTA sequences joined); FASTQ qualities are ignored.
    Fastx,
    /// UTF-8 text, one record per non-empty line (`\n` or `\r\n` endings; empty lines are skipped but
    /// counted, so record numbers are line numbers).
    Lines,
}

/// One record of a corpus file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its number from 1: the record's ordinal for FASTA/FASTQ, the line number for text.
    pub number: usize,
    /// Its header (FASTA/FASTQ id line without `>`/`@`); `None` for text lines.
    pub id: Option<String>,
    /// Its sequence or line.
    pub text: String,
}

/// Streams the records of `path` one at a time (the file is never read whole). Errors name the file and
/// the record: [`Error::Io`] if it cannot be opened, [`Error::EmptyCorpus`] if it holds no record,
/// [`Error::BadRecord`] for a malformed record or bytes that are not UTF-8. The iterator stops after its
/// first error.
pub fn read_records(path: impl AsRef<Path>, format: Format) -> Result<Records> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let source = match format {
        Format::Fastx => match needletail::parse_fastx_reader(file) {
            Ok(reader) => Source::Fastx(reader),
            Err(e) if e.kind == ParseErrorKind::EmptyFile => {
                return Err(Error::EmptyCorpus {
                    path,
                    reason: "no FASTA/FASTQ record (the file is empty)".into(),
                })
            }
            Err(e) => {
                return Err(Error::BadRecord {
                    path,
                    record: 1,
                    reason: e.to_string(),
                })
            }
        },
        Format::Lines => Source::Lines {
            reader: BufReader::new(file),
            line: 0,
            buffer: Vec::new(),
        },
    };
    Ok(Records {
        path,
        source,
        count: 0,
        done: false,
    })
}

/// The iterator [`read_records`] returns.
pub struct Records {
    path: PathBuf,
    source: Source,
    count: usize,
    done: bool,
}

enum Source {
    Fastx(Box<dyn FastxReader>),
    Lines {
        reader: BufReader<File>,
        line: usize,
        buffer: Vec<u8>,
    },
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records returned so far.
    pub fn count(&self) -> usize {
        self.count
    }
}

fn bad(path: &Path, record: usize, reason: String) -> Error {
    Error::BadRecord {
        path: path.to_path_buf(),
        record,
        reason,
    }
}

fn next_fastx(reader: &mut dyn FastxReader, number: usize, path: &Path) -> Option<Result<Record>> {
    let record = match reader.next()? {
        Ok(r) => r,
        Err(e) => return Some(Err(bad(path, number, e.to_string()))),
    };
    let id = String::from_utf8_lossy(record.id()).into_owned();
    let seq = record.seq().into_owned();
    Some(match String::from_utf8(seq) {
        Ok(text) => Ok(Record {
            number,
            id: Some(id),
            text,
        }),
        Err(e) => Err(bad(
            path,
            number,
            format!(
                "sequence of `{id}` is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )),
    })
}

fn next_line(
    reader: &mut BufReader<File>,
    line: &mut usize,
    buffer: &mut Vec<u8>,
    path: &Path,
) -> Option<Result<Record>> {
    loop {
        buffer.clear();
        match reader.read_until(b'\n', buffer) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(source) => {
                return Some(Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                }))
            }
        }
        *line += 1;
        if buffer.last() == Some(&b'\n') {
            buffer.pop();
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
        }
        if buffer.is_empty() {
            continue;
        }
        let number = *line;
        return Some(match std::str::from_utf8(buffer) {
            Ok(text) => Ok(Record {
                number,
                id: None,
                text: text.to_owned(),
            }),
            Err(e) => Err(bad(
                path,
                number,
                format!("line is not UTF-8 (byte {})", e.valid_up_to()),
            )),
        });
    }
}

impl Iterator for Records {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        let next = match &mut self.source {
            Source::Fastx(reader) => next_fastx(reader.as_mut(), self.count + 1, &self.path),
            Source::Lines {
                reader,
                line,
                buffer,
            } => next_line(reader, line, buffer, &self.path),
        };
        let next = match next {
            None if self.count == 0 => Some(Err(Error::EmptyCorpus {
                path: self.path.clone(),
                reason: "no records".into(),
            })),
            other => other,
        };
        match &next {
            Some(Ok(_)) => self.count += 1,
            _ => self.done = true,
        }
        next
    }
}
