//! Receiving drops into an inbox on disk: any sequence of file streams
//! (names, sizes, data, right or wrong ends) writes nothing outside the
//! inbox, leaves no temporary file, and every file it names holds exactly
//! the data sent for it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifebuoy::transfer::receiver::{Inbox, Writing, Wrote};
use lifebuoy::transfer::Events;
use lifebuoy_proto::file::{EntryKind, File, FileHeader};
use lifebuoy_proto::transfer::Receive;

#[derive(arbitrary::Arbitrary, Debug)]
struct Stream {
    transfer: u8,
    path: String,
    folder: bool,
    size_delta: i8,
    chunks: Vec<Vec<u8>>,
    end: End,
}

#[derive(arbitrary::Arbitrary, Debug)]
enum End {
    Right,
    Wrong([u8; 32]),
    None,
    Twice,
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        out.push(entry.path());
        if kind.is_dir() {
            walk(&entry.path(), out);
        }
    }
}

fuzz_target!(|streams: Vec<Stream>| {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir(&root).unwrap();
    let inbox = Inbox::new(root.clone(), Events::none()).unwrap();
    let mut written: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    for s in streams.into_iter().take(8) {
        let data: Vec<u8> = s.chunks.iter().flatten().copied().collect();
        let size = (data.len() as i64 + i64::from(s.size_delta)).max(0) as u64;
        let header = FileHeader {
            transfer: u64::from(s.transfer % 3),
            path: s.path,
            entry: if s.folder { EntryKind::Folder } else { EntryKind::File },
            size: if s.folder { 0 } else { size },
            modified: None,
        };
        let mut messages = vec![File::Header(header)];
        if !s.folder {
            messages.extend(s.chunks.into_iter().map(File::Data));
        }
        let hash = *blake3::hash(if s.folder { &[] } else { &data }).as_bytes();
        match s.end {
            End::Right => messages.push(File::End { blake3: hash }),
            End::Wrong(h) => messages.push(File::End { blake3: h }),
            End::None => {}
            End::Twice => messages.extend([File::End { blake3: hash }, File::End { blake3: hash }]),
        }
        let mut state = Receive::new();
        let mut writing = Writing::new(&inbox);
        for msg in &messages {
            let Ok(step) = state.on_message(msg) else { break };
            match writing.step(step) {
                Ok(Wrote::Done { path, .. }) => written.push((path, data.clone())),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    // Nothing beside the inbox, no temporary file in it, and every file
    // named holds what was sent for it.
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, ["inbox"]);
    let mut all = Vec::new();
    walk(&root, &mut all);
    for path in &all {
        assert!(path.starts_with(&root));
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!(name.starts_with(".lifebuoy-") && name.ends_with(".part")), "{path:?} left behind");
        assert!(!std::fs::symlink_metadata(path).unwrap().file_type().is_symlink());
    }
    for (path, data) in written {
        assert!(path.starts_with(&root), "{path:?} outside the inbox");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
});
