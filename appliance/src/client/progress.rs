//! Upload progress for large zone imports, printed as the request body is read.

use std::io::{self, Read, Write};

/// Files smaller than this upload in a moment; no progress is printed for them.
pub const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// Progress is reported every this many percent.
const STEP_PERCENT: u64 = 10;

/// Wraps the body reader and writes a line to `out` each time another 10% was read.
pub struct Progress<R, W> {
    inner: R,
    out: W,
    total: u64,
    read: u64,
    /// The next percentage to report.
    next_percent: u64,
}

impl<R: Read, W: Write> Progress<R, W> {
    pub fn new(inner: R, total: u64, out: W) -> Self {
        Progress {
            inner,
            out,
            total,
            read: 0,
            next_percent: STEP_PERCENT,
        }
    }
}

impl<R: Read, W: Write> Read for Progress<R, W> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.read += count as u64;
        if self.total == 0 {
            return Ok(count);
        }
        let percent = self.read.saturating_mul(100) / self.total;
        if percent >= self.next_percent {
            // Progress is a courtesy: a closed stderr must not fail the upload.
            let _ = writeln!(
                self.out,
                "uploaded {}% ({} of {})",
                percent.min(100),
                human_bytes(self.read),
                human_bytes(self.total)
            );
            self.next_percent = (percent / STEP_PERCENT + 1) * STEP_PERCENT;
        }
        Ok(count)
    }
}

/// `512 B`, `3.2 KiB`, `64.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_ten_percent() {
        let data = vec![b'x'; 1000];
        let mut out = Vec::new();
        let mut progress = Progress::new(&data[..], 1000, &mut out);
        let mut buffer = [0u8; 30];
        let mut sink = Vec::new();
        loop {
            let count = progress.read(&mut buffer).unwrap();
            if count == 0 {
                break;
            }
            sink.extend_from_slice(&buffer[..count]);
        }
        assert_eq!(sink, data);
        let text = String::from_utf8(out).unwrap();
        let percents: Vec<&str> = text
            .lines()
            .map(|line| line.split('%').next().unwrap())
            .collect();
        assert_eq!(
            percents,
            [
                "uploaded 12",
                "uploaded 21",
                "uploaded 30",
                "uploaded 42",
                "uploaded 51",
                "uploaded 60",
                "uploaded 72",
                "uploaded 81",
                "uploaded 90",
                "uploaded 100"
            ]
        );
        assert!(
            text.ends_with("uploaded 100% (1000 B of 1000 B)\n"),
            "{text}"
        );
    }

    #[test]
    fn big_reads_report_once() {
        let data = [0u8; 100];
        let mut out = Vec::new();
        io::copy(
            &mut Progress::new(&data[..], 100, &mut out),
            &mut io::sink(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "uploaded 100% (100 B of 100 B)\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 + 200), "3.2 KiB");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
    }
}
