use std::path::PathBuf;
use std::time::Instant;

use super::*;

fn entry(i: u64) -> Entry {
    Entry {
        time_ms: 1_700_000_000_000 + i,
        flow: "admin".into(),
        subject: Some("alice".into()),
        roles: vec!["admin".into()],
        client: "127.0.0.1:5000".into(),
        method: "DELETE".into(),
        route: "/api/users/{id}".into(),
        path: format!("/api/users/{i}"),
        status: 200,
        request_id: format!("req-{i}"),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        decision: "allow",
        rule: "DELETE: any of [admin]".into(),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir.join("audit"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    all.sort();
    all
}

fn lines(files: &[PathBuf]) -> usize {
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum()
}

/// Write `n` records (after `gap` drops) into small files; wait until all are on disk.
fn written(n: u64, gap: u64) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let trail = AuditTrail::open(dir.path(), 2048, Arc::default()).unwrap();
    for _ in 0..gap {
        trail.dropped.add("test");
    }
    for i in 0..n {
        trail.record(entry(i));
    }
    let expected = (n + u64::from(gap > 0)) as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&files(dir.path())) < expected {
        assert!(Instant::now() < deadline, "records not written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = files(dir.path());
    (dir, all)
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn broken(files: &[PathBuf]) -> String {
    let report = verify_files(files).unwrap();
    report.broken.expect("the change went unnoticed")
}

#[test]
fn an_intact_chain_spans_rotated_files() {
    let (_dir, files) = written(40, 0);
    assert!(files.len() > 2, "2 KiB files should rotate: {files:?}");
    let report = verify_files(&files).unwrap();
    assert_eq!((report.records, report.broken), (40, None));
    // The second file's first record continues the first file's chain.
    let first_of_second = std::fs::read_to_string(&files[1]).unwrap();
    assert!(!first_of_second.contains(writer::GENESIS));
}

/// A change to a file's lines.
type Change = fn(&mut Vec<String>);

#[test]
fn editing_deleting_or_swapping_a_record_is_caught_at_its_line() {
    let cases: [(&str, Change); 3] = [
        ("altered", |l| {
            l[2] = l[2].replace("\"status\":200", "\"status\":201")
        }),
        ("removed or reordered", |l| {
            l.remove(2);
        }),
        ("removed or reordered", |l| l.swap(2, 3)),
    ];
    for (what, change) in cases {
        let (_dir, files) = written(40, 0);
        rewrite(&files[0], change);
        let b = broken(&files);
        assert!(b.contains(&format!("{}:3", files[0].display())), "{b}");
        assert!(b.contains(what), "{b}");
    }
}

/// A byte that is not UTF-8 is an alteration like any other: `verify` names its line and
/// says BROKEN (exit 1), rather than calling the whole file unreadable (exit 2).
#[test]
fn a_non_utf8_byte_in_a_record_is_caught_at_its_line() {
    let (_dir, files) = written(40, 0);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let third = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    let status = third + bytes[third..].windows(3).position(|w| w == b"200").unwrap();
    bytes[status] = 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    let b = broken(&files);
    assert!(b.contains(&format!("{}:3", files[0].display())), "{b}");
    assert!(b.contains("altered"), "{b}");
}

#[test]
fn a_removed_file_or_first_line_breaks_the_chain() {
    let (_dir, files) = written(40, 0);
    let without_second: Vec<PathBuf> = [&files[..1], &files[2..]].concat();
    assert!(broken(&without_second).contains(&format!("{}:1", files[2].display())));
    rewrite(&files[1], |l| {
        l.remove(0);
    });
    assert!(broken(&files).contains(&format!("{}:1", files[1].display())));
}

#[test]
fn drops_are_counted_and_shown_as_a_gap() {
    let (_dir, files) = written(5, 3);
    let report = verify_files(&files).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
    assert!(
        report.gaps[0].contains("3 records dropped"),
        "{:?}",
        report.gaps
    );
}

#[test]
fn a_restart_continues_the_chain_in_a_new_file() {
    let (dir, _) = written(3, 0);
    // An unfinished line, as a kill -9 mid-write leaves.
    let last = files(dir.path()).pop().unwrap();
    let mut text = std::fs::read_to_string(&last).unwrap();
    text.push_str("{\"seq\":4,\"prev\":");
    std::fs::write(&last, text).unwrap();
    let trail = AuditTrail::open(dir.path(), 1 << 20, Arc::default()).unwrap();
    trail.record(entry(9));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&files(dir.path())) < 4 {
        assert!(Instant::now() < deadline, "record not written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = verify_files(&files(dir.path())).unwrap();
    assert_eq!(
        (report.records, &report.broken),
        (4, &None),
        "{}",
        report.render()
    );
}
