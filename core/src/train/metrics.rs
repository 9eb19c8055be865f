//! Metrics as JSON lines: one object per step or round, appended to a file and flushed.
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
}

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
        })
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
        writeln!(self.file, "{line}").map_err(io)?;
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
