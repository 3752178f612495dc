//! Files dropped on one side arrive on the other, checked by BLAKE3 on
//! real files on disk, over a real pinned QUIC session on loopback; and
//! whatever goes wrong (damaged stream, lost session, hostile names, full
//! disk, cancel), nothing half-written carries a real name and nothing is
//! written outside the chosen folder.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lifebuoy::proto::file::{EntryKind, File, FileHeader};
use lifebuoy::session::{IncomingStream, Link, Session};
use lifebuoy::transfer::{collect, receive_file, send, Events, Inbox, ReceiveError, TransferEvent};
use tokio::sync::{mpsc, watch};

mod common;
use common::{random_file, session_pair};

/// Receives every file stream on `link` into `inbox`; results in order of completion.
fn receive_all(link: Link, inbox: Arc<Inbox>) -> mpsc::UnboundedReceiver<Result<PathBuf, ReceiveError>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(stream) = link.accept().await {
            if let IncomingStream::File(s) = stream {
                let (inbox, tx) = (inbox.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(receive_file(s, &inbox).await);
                });
            }
        }
    });
    rx
}

fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    h.finalize().to_hex().to_string()
}

/// Every file under `dir`, relative, with its hash; folders as "name/".
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(base: &Path, at: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_symlink() {
                // Listed, never followed.
                out.push((rel, "link".into()));
            } else if e.file_type().unwrap().is_dir() {
                out.push((format!("{rel}/"), String::new()));
                walk(base, &e.path(), out);
            } else {
                out.push((rel, hash_file(&e.path())));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn transfer(from: &Session, paths: &[PathBuf]) -> Result<(), lifebuoy::transfer::SendError> {
    let (entries, skipped) = collect(paths).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let (_cancel_tx, cancel) = watch::channel(false);
    send(&from.link, 1, entries, Events::none(), cancel).await
}

async fn results(
    rx: &mut mpsc::UnboundedReceiver<Result<PathBuf, ReceiveError>>,
    n: usize,
) -> Vec<Result<PathBuf, ReceiveError>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            tokio::time::timeout(Duration::from_secs(120), rx.recv())
                .await
                .expect("receiver stalled")
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_size_arrive_with_equal_hashes_both_ways() {
    let src = tempfile::tempdir().unwrap();
    let drop_dir = src.path().join("Projekt");
    std::fs::create_dir_all(drop_dir.join("Unterordner/leer")).unwrap();
    std::fs::write(drop_dir.join("leer.txt"), b"").unwrap();
    std::fs::write(drop_dir.join("ein byte"), b"x").unwrap();
    std::fs::write(drop_dir.join("Unterordner/Grüße.txt"), "Grüße aus dem Support\n").unwrap();
    random_file(&drop_dir.join("Unterordner/gross.bin"), 100 << 20, 7);
    let single = src.path().join("Bericht.pdf");
    random_file(&single, 12_345, 9);
    let paths = vec![drop_dir.clone(), single.clone()];
    let expected = tree(src.path());

    let (agent, viewer) = session_pair().await;
    for (from, to) in [(&agent, &viewer), (&viewer, &agent)] {
        let dest = tempfile::tempdir().unwrap();
        let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events::none()).unwrap());
        let mut rx = receive_all(to.link.clone(), inbox);
        transfer(from, &paths).await.unwrap();
        // 4 folders (Projekt, Unterordner, leer) + 5 files.
        for r in results(&mut rx, 8).await {
            r.unwrap();
        }
        assert_eq!(tree(dest.path()), expected, "what arrived differs from what was dropped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_small_files_in_nested_folders() {
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("viele");
    for d in 0..100 {
        let dir = top.join(format!("ordner {}/tiefer", d));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("datei {f}.txt")), format!("{d}-{f}\n").repeat(f + 1)).unwrap();
        }
    }
    let expected = tree(src.path());
    let (agent, viewer) = session_pair().await;
    let dest = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events::none()).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    transfer(&agent, &[top]).await.unwrap();
    // 1 + 100 + 100 folders, 10,000 files.
    for r in results(&mut rx, 10_201).await {
        r.unwrap();
    }
    assert_eq!(tree(dest.path()), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_4_gib_streams_through_both_ways_and_stays_sparse() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("gross.img");
    {
        // 4.5 GiB, mostly a hole, with data at the start, across 4 GiB and at the end.
        let mut f = std::fs::File::create(&big).unwrap();
        f.set_len((4 << 30) + (512 << 20)).unwrap();
        for at in [0u64, (4 << 30) - 3, (4 << 30) + (512 << 20) - 8] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(b"lifebuoy").unwrap();
        }
    }
    let (agent, viewer) = session_pair().await;
    let expected = hash_file(&big);
    for (from, to) in [(&agent, &viewer), (&viewer, &agent)] {
        let dest = tempfile::tempdir().unwrap();
        let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events::none()).unwrap());
        let mut rx = receive_all(to.link.clone(), inbox);
        transfer(from, std::slice::from_ref(&big)).await.unwrap();
        let got = results(&mut rx, 1).await.pop().unwrap().unwrap();
        assert_eq!(std::fs::metadata(&got).unwrap().len(), std::fs::metadata(&big).unwrap().len());
        assert_eq!(hash_file(&got), expected);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&got).unwrap().blocks();
            assert!(
                blocks * 512 < 64 << 20,
                "the received file is not sparse: {} bytes on disk",
                blocks * 512
            );
        }
    }
}

/// Sends hand-made messages on one file stream (the receiver may stop it
/// early: refusing a name does not wait for the data).
async fn raw_stream(link: &Link, messages: &[File]) {
    let mut tx = link.open::<File>().await.unwrap();
    for m in messages {
        if tx.send(m).await.is_err() {
            return;
        }
    }
    let _ = tx.finish();
}

fn header(path: &str, size: u64) -> File {
    File::Header(FileHeader { transfer: 9, path: path.into(), entry: EntryKind::File, size, modified: None })
}

fn end_of(data: &[u8]) -> File {
    File::End { blake3: *blake3::hash(data).as_bytes() }
}

/// Everything under `dir`, names only, hidden files included.
fn everything(dir: &Path) -> Vec<String> {
    tree(dir).into_iter().map(|(n, _)| n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_stream_is_detected_and_leaves_no_file() {
    let (agent, viewer) = session_pair().await;
    let dest = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = mpsc::channel(16);
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events(Some(events_tx))).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    raw_stream(&agent.link, &[header("rechnung.pdf", 5), File::Data(b"hellx".to_vec()), end_of(b"hello")])
        .await;
    let err = results(&mut rx, 1).await.pop().unwrap().unwrap_err();
    assert!(err.to_string().contains("BLAKE3 does not match"), "{err}");
    assert!(everything(dest.path()).is_empty(), "left behind: {:?}", everything(dest.path()));
    // The person on the receiving side is told why.
    let mut failed = None;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        if let TransferEvent::Failed { reason, .. } = e {
            failed = Some(reason);
        }
    }
    assert!(failed.is_some_and(|r| r.contains("damaged")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_session_mid_transfer_leaves_no_partial_file() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("gross.bin");
    random_file(&big, 300 << 20, 3);
    let (agent, viewer) = session_pair().await;
    let dest = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = mpsc::channel(64);
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events(Some(events_tx))).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    let sending = {
        let agent_link = agent.link.clone();
        let big = big.clone();
        tokio::spawn(async move {
            let (entries, _) = collect(&[big]).unwrap();
            let (_c, cancel) = watch::channel(false);
            send(&agent_link, 1, entries, Events::none(), cancel).await
        })
    };
    // Once data is flowing, the connection dies.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await.unwrap().unwrap() {
            TransferEvent::Progress { bytes, .. } if bytes > 10 << 20 => break,
            _ => {}
        }
    }
    agent.link.close(lifebuoy::proto::close::CloseCode::Ended, "cable pulled");
    assert!(sending.await.unwrap().is_err(), "the sender noticed");
    assert!(results(&mut rx, 1).await.pop().unwrap().is_err());
    assert!(everything(dest.path()).is_empty(), "left behind: {:?}", everything(dest.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_write_nothing_outside_the_folder() {
    let base = tempfile::tempdir().unwrap();
    let dest = base.path().join("inbox");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // A link in the inbox pointing out of it: files must not go through it.
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
    let corpus = [
        "/tmp/evil",
        "../outside/evil",
        "a/../../outside/evil",
        "C:\\evil",
        "\\\\server\\share\\evil",
        "a\\..\\..\\evil",
        "CON",
        "nul.txt",
        // (Control characters do not get this far: the message checks on
        // both ends refuse them, tested in lifebuoy-proto.)
        "trailing.",
        "a//b",
        "./x",
    ];
    let (agent, viewer) = session_pair().await;
    let inbox = Arc::new(Inbox::new(dest.clone(), Events::none()).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    for name in corpus {
        raw_stream(&agent.link, &[header(name, 4), File::Data(b"evil".to_vec()), end_of(b"evil")]).await;
    }
    for r in results(&mut rx, corpus.len()).await {
        let err = r.expect_err("a hostile name was accepted");
        assert!(matches!(err, ReceiveError::Transfer(_)), "{err}");
    }
    // Through the link: a folder of that name exists, so the drop gets a
    // new one beside it; nothing goes through the link.
    for name in ["link/evil", "link/deeper/evil"] {
        raw_stream(&agent.link, &[header(name, 4), File::Data(b"evil".to_vec()), end_of(b"evil")]).await;
    }
    for r in results(&mut rx, 2).await {
        assert!(r.unwrap().starts_with(dest.join("link (1)")));
    }
    assert!(everything(&outside).is_empty(), "written outside: {:?}", everything(&outside));
    let mut inside = everything(&dest);
    inside.retain(|n| !n.starts_with("link (1)/"));
    assert_eq!(inside, ["link"], "nothing else written inside");
    assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 2, "nothing new beside the inbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_gets_a_number_and_nothing_is_overwritten() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("Bericht.pdf"), b"neu").unwrap();
    std::fs::create_dir(src.path().join("Projekt")).unwrap();
    std::fs::write(src.path().join("Projekt/a.txt"), b"neu a").unwrap();
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("Bericht.pdf"), b"alt").unwrap();
    std::fs::create_dir(dest.path().join("Projekt")).unwrap();
    std::fs::write(dest.path().join("Projekt/a.txt"), b"alt a").unwrap();
    let (agent, viewer) = session_pair().await;
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events::none()).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    transfer(&agent, &[src.path().join("Bericht.pdf"), src.path().join("Projekt")]).await.unwrap();
    for r in results(&mut rx, 3).await {
        r.unwrap();
    }
    let read = |p: &str| std::fs::read(dest.path().join(p)).unwrap();
    assert_eq!(read("Bericht.pdf"), b"alt");
    assert_eq!(read("Bericht (1).pdf"), b"neu");
    assert_eq!(read("Projekt/a.txt"), b"alt a");
    assert_eq!(read("Projekt (1)/a.txt"), b"neu a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_leaves_nothing_on_either_side() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("gross.bin");
    random_file(&big, 200 << 20, 5);
    let (agent, viewer) = session_pair().await;
    let dest = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = mpsc::channel(64);
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events::none()).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    let (cancel_tx, cancel) = watch::channel(false);
    let sending = {
        let link = agent.link.clone();
        tokio::spawn(async move {
            let (entries, _) = collect(&[big]).unwrap();
            send(&link, 1, entries, Events(Some(events_tx)), cancel).await
        })
    };
    loop {
        if let TransferEvent::Progress { .. } = events.recv().await.unwrap() {
            break;
        }
    }
    cancel_tx.send(true).unwrap();
    assert!(matches!(sending.await.unwrap(), Err(lifebuoy::transfer::SendError::Cancelled)));
    let err = results(&mut rx, 1).await.pop().unwrap().unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(everything(dest.path()).is_empty());
}

/// A tmpfs of 1 MiB: mounting needs root, as CI has; refused loudly otherwise.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_no_file() {
    let small = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(small.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "this test needs root to mount a small tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.path().to_owned());
    let src = tempfile::tempdir().unwrap();
    random_file(&src.path().join("zu gross.bin"), 3 << 20, 1);
    // Each fits alone, not together: the second fails while writing.
    random_file(&src.path().join("a.bin"), 700 << 10, 2);
    random_file(&src.path().join("b.bin"), 700 << 10, 3);
    let (agent, viewer) = session_pair().await;
    let inbox = Arc::new(Inbox::new(small.path().to_owned(), Events::none()).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox);
    let _ = transfer(&agent, &[src.path().join("zu gross.bin")]).await;
    let err = results(&mut rx, 1).await.pop().unwrap().unwrap_err();
    assert!(matches!(err, ReceiveError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("not enough free space"), "{err}");
    assert!(everything(small.path()).is_empty());
    let _ = transfer(&agent, &[src.path().join("a.bin"), src.path().join("b.bin")]).await;
    let outcomes = results(&mut rx, 2).await;
    let ok: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failed: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    // Written at the same time, at most one fits (both may run out).
    assert!(ok.len() <= 1 && !failed.is_empty(), "{outcomes:?}");
    for f in &failed {
        assert!(matches!(f, ReceiveError::DiskFull { .. }), "{f}");
    }
    // Only a file that fit, whole, and no temporary file.
    let left = everything(small.path());
    assert_eq!(left.len(), ok.len(), "{left:?}");
    for name in &left {
        assert!(name == "a.bin" || name == "b.bin");
        assert_eq!(hash_file(&small.path().join(name)), hash_file(&src.path().join(name)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiving_side_can_cancel_too() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("gross.bin");
    random_file(&big, 200 << 20, 11);
    let (agent, viewer) = session_pair().await;
    let dest = tempfile::tempdir().unwrap();
    let (events_tx, mut events) = mpsc::channel(64);
    let inbox = Arc::new(Inbox::new(dest.path().to_owned(), Events(Some(events_tx))).unwrap());
    let mut rx = receive_all(viewer.link.clone(), inbox.clone());
    let sending = {
        let link = agent.link.clone();
        tokio::spawn(async move {
            let (entries, _) = collect(&[big]).unwrap();
            let (_c, cancel) = watch::channel(false);
            send(&link, 77, entries, Events::none(), cancel).await
        })
    };
    loop {
        if let TransferEvent::Progress { transfer, .. } = events.recv().await.unwrap() {
            inbox.cancel(transfer);
            break;
        }
    }
    let err = results(&mut rx, 1).await.pop().unwrap().unwrap_err();
    assert!(matches!(err, ReceiveError::Cancelled), "{err}");
    assert!(sending.await.unwrap().is_err(), "the sender learns it was refused");
    assert!(everything(dest.path()).is_empty());
}
