//! Metrics as JSON lines: one object per step or round, appended to a file and flushed.
//!
//! A run's file ([`MetricsWriter::for_run`]) starts with one header line, `{"run_id": .., "header":
//! {..}}` holding the resolved configuration, and every later line carries the same `run_id`. The id
//! is the CRC-64 of the header's JSON: a rerun of the same configuration (a resumed run included) has
//! the same id, and its lines are byte-identical to the first run's but for the wall-clock fields.
//!
//! A checkpoint records how far the file was committed ([`MetricsWriter::mark`]: flushed, fsynced,
//! its length in bytes); resuming from it cuts the file back to that length ([`MetricsMark::rewind`]),
//! so the rounds a crash made the run repeat are not logged twice.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Appends one JSON object per line to a file.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    run_id: Option<String>,
}

/// The key of the header line's configuration.
pub const HEADER_KEY: &str = "header";
/// The key of the run id on every line of a run's file.
pub const RUN_ID_KEY: &str = "run_id";

impl MetricsWriter {
    /// Opens (creating parent directories) `path` for appending.
    pub fn append(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
            run_id: None,
        })
    }

    /// Opens `path` for a run described by `header` (its resolved configuration). A file without a
    /// complete first line (new, or torn by a crash before its first line was whole) is cut to empty
    /// and gets the header line `{"run_id": id, "header": header}`, `id` the CRC-64 (hex) of
    /// `header`'s JSON; a file that already starts with a header line (a resumed run) keeps it and its
    /// id. Every record written after carries `"run_id"` as its first key.
    pub fn for_run(path: &Path, header: &serde_json::Value) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let existing = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let first = existing
            .iter()
            .position(|&b| b == b'\n')
            .map(|end| &existing[..end]);
        let found = first.and_then(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).ok()?;
            v.get(HEADER_KEY)?;
            Some(v.get(RUN_ID_KEY)?.as_str()?.to_string())
        });
        if first.is_none() && !existing.is_empty() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(0))
                .map_err(io)?;
        }
        let mut writer = Self::append(path)?;
        match (found, first) {
            (Some(id), _) => writer.run_id = Some(id),
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "metrics",
                    path.display(),
                    "the file's first line is not a run header: write this run's metrics to \
                     another file",
                ))
            }
            (None, None) => {
                let json = serde_json::to_string(header)
                    .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
                let id = crate::train::commit::crc64_hex(json.as_bytes());
                writeln!(
                    writer.file,
                    "{{\"{RUN_ID_KEY}\":\"{id}\",\"{HEADER_KEY}\":{json}}}"
                )
                .map_err(io)?;
                writer.file.flush().map_err(io)?;
                writer.run_id = Some(id);
            }
        }
        Ok(writer)
    }

    /// The run id written on every line ([`MetricsWriter::for_run`]), if any.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs the file and returns its length: everything up to the mark is durable.
    pub fn mark(&mut self) -> Result<MetricsMark> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.file.flush().map_err(io)?;
        let f = self.file.get_ref();
        f.sync_data().map_err(io)?;
        let bytes = f.metadata().map_err(io)?.len();
        Ok(MetricsMark {
            path: self.path.clone(),
            bytes,
        })
    }

    /// Writes one record and flushes it.
    pub fn write<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let line = serde_json::to_string(record).map_err(|e| Error::Io {
            path: self.path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        match (&self.run_id, line.strip_prefix('{')) {
            (Some(id), Some(rest)) => {
                let sep = if rest.starts_with('}') { "" } else { "," };
                writeln!(self.file, "{{\"{RUN_ID_KEY}\":\"{id}\"{sep}{rest}").map_err(io)?
            }
            _ => writeln!(self.file, "{line}").map_err(io)?,
        }
        self.file.flush().map_err(io)
    }
}

/// How much of a metrics file a checkpoint covers: its path (as given to [`MetricsWriter::append`])
/// and its length in bytes when the checkpoint was committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsMark {
    /// The metrics file.
    pub path: PathBuf,
    /// Its committed length.
    pub bytes: u64,
}

impl MetricsMark {
    /// Cuts the file back to the committed length (dropping the lines of rounds after the checkpoint,
    /// and any torn last line) and fsyncs it. A file shorter than the mark was changed by someone
    /// else: [`Error::CheckpointMismatch`], and the file is left alone.
    pub fn rewind(&self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < self.bytes {
            return Err(Error::CheckpointMismatch {
                path: self.path.clone(),
                what: "metrics file length".into(),
                expected: format!("at least {} bytes", self.bytes),
                found: format!("{len} bytes"),
            });
        }
        if len > self.bytes {
            file.set_len(self.bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(())
    }
}

/// A progress bar of `len` steps labelled `prefix` (`{prefix} [=====>   ] pos/len message (eta)`), or a
/// hidden one when `show` is false.
pub fn progress_bar(len: u64, prefix: &'static str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A run's file: one header line whose id is the CRC-64 of the header's JSON; every record
    /// carries the id first; reopening (a resume) keeps the header and its id; a torn first line
    /// (no newline) is replaced; a file of another kind is refused, untouched.
    #[test]
    fn a_run_file_has_one_header_and_its_id_on_every_line() {
        let dir = std::env::temp_dir().join(format!("sepo-metrics-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("m.jsonl");
        let header = serde_json::json!({"config": {"seed": 3}});
        let id = crate::train::commit::crc64_hex(header.to_string().as_bytes());
        let mut w = MetricsWriter::for_run(&path, &header).unwrap();
        assert_eq!(w.run_id(), Some(id.as_str()));
        w.write(&serde_json::json!({"round": 0})).unwrap();
        w.write(&serde_json::json!({})).unwrap();
        drop(w);
        let mut w = MetricsWriter::for_run(&path, &serde_json::json!({"other": 1})).unwrap();
        assert_eq!(
            w.run_id(),
            Some(id.as_str()),
            "the file's id, not a new one"
        );
        w.write(&serde_json::json!({"round": 1})).unwrap();
        drop(w);
        let got = lines(&path);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], serde_json::json!({"run_id": id, "header": header}));
        assert_eq!(got[1], serde_json::json!({"run_id": id, "round": 0}));
        assert_eq!(got[2], serde_json::json!({"run_id": id}));
        assert_eq!(got[3], serde_json::json!({"run_id": id, "round": 1}));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().nth(1).unwrap().starts_with("{\"run_id\""));

        std::fs::write(&path, "{\"run_id\":\"ab\",\"hea").unwrap();
        MetricsWriter::for_run(&path, &header).unwrap();
        assert_eq!(lines(&path).len(), 1);
        assert_eq!(lines(&path)[0]["run_id"], id.as_str());

        std::fs::write(&path, "{\"round\":0}\n").unwrap();
        assert!(matches!(
            MetricsWriter::for_run(&path, &header),
            Err(Error::InvalidParameter {
                name: "metrics",
                ..
            })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"round\":0}\n");
        std::fs::remove_dir_all(&dir).ok();
    }
}
