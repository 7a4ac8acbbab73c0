//! `redline audit verify`: walk the chain across files and report the first break.

use std::fmt::Write as _;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::writer::{GENESIS, hex};

/// What a walk over the files found.
#[derive(Debug, Default)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// `file:line: N records dropped` for each gap record (the chain is intact around it).
    pub gaps: Vec<String>,
    /// Notes that do not break the chain (a chain that starts mid-way, an unfinished line).
    pub notes: Vec<String>,
    /// The first break: `file:line: what`.
    pub broken: Option<String>,
}

impl Report {
    /// The text `redline audit verify` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in self.notes.iter().chain(&self.gaps) {
            let _ = writeln!(out, "{line}");
        }
        match &self.broken {
            Some(b) => {
                let _ = writeln!(out, "BROKEN: {b}");
            }
            None => {
                let _ = writeln!(out, "OK: {} records, chain intact", self.records);
            }
        }
        out
    }
}

/// The chain so far: last seq and hash.
struct Tip {
    seq: u64,
    hash: String,
}

/// Check every record of `files`, in the order given (the writer's order when sorted by name).
pub fn verify_files(files: &[PathBuf]) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut tip: Option<Tip> = None;
    for (i, path) in files.iter().enumerate() {
        // Bytes, not text: a byte that is not UTF-8 is an alteration of its line, to be
        // reported there, not a reason to call the whole file unreadable.
        let bytes = std::fs::read(path)?;
        let last_file = i + 1 == files.len();
        let name = path.display().to_string();
        let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        for (n, raw) in lines.iter().enumerate() {
            let at = format!("{name}:{}", n + 1);
            if !raw.ends_with(b"\n") && last_file && n + 1 == lines.len() {
                report.notes.push(format!(
                    "{at}: unfinished last line (interrupted write), not counted"
                ));
                break;
            }
            let checked = std::str::from_utf8(raw)
                .map_err(|_| "not a UTF-8 JSON record (altered or damaged)".to_string())
                .and_then(|line| check(line.trim_end_matches('\n'), &mut tip, &mut report, &at));
            if let Err(why) = checked {
                report.broken = Some(format!("{at}: {why}"));
                return Ok(report);
            }
            report.records += 1;
        }
    }
    Ok(report)
}

/// Check one line against the chain and advance it.
fn check(line: &str, tip: &mut Option<Tip>, report: &mut Report, at: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|_| "not a JSON record (altered or damaged)".to_string())?;
    let (seq, prev, hash) = match (v["seq"].as_u64(), v["prev"].as_str(), v["hash"].as_str()) {
        (Some(s), Some(p), Some(h)) => (s, p, h),
        _ => return Err("record without seq, prev or hash (altered)".into()),
    };
    let cut = line
        .rfind(",\"hash\":\"")
        .ok_or("record without a trailing hash (altered)")?;
    let own = hex(&Sha256::digest(format!("{}}}", &line[..cut]).as_bytes()));
    if own != hash {
        return Err(format!(
            "record {seq} altered: its hash does not match its content"
        ));
    }
    match tip {
        Some(t) if t.seq + 1 != seq || t.hash != prev => {
            return Err(format!(
                "record {seq} does not follow record {} (expected seq {} and its hash): records removed or reordered here",
                t.seq,
                t.seq + 1
            ));
        }
        None if seq != 1 || prev != GENESIS => {
            report.notes.push(format!(
                "{at}: chain starts at record {seq} (earlier files not given)"
            ));
        }
        _ => {}
    }
    if v["kind"] == "gap" {
        let n = v["dropped"].as_u64().unwrap_or(0);
        report.gaps.push(format!(
            "{at}: GAP: {n} records dropped before this point (queue full or disk error)"
        ));
    }
    *tip = Some(Tip {
        seq,
        hash: hash.to_string(),
    });
    Ok(())
}
