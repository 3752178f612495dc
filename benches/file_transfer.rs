//! File transfer throughput on loopback, in one run: one 2 GiB file through
//! lifebuoy (read, BLAKE3 on both sides, framed stream, temporary file,
//! fsync, rename) against the same bytes over one raw quinn stream with the
//! same transport configuration (read from the same file, written to a
//! file, nothing else); then 10,000 small files in nested folders.
//! Source files are in the page cache; both ends share the machine's cores.
//!
//! `cargo bench --bench file_transfer` (part of `just bench`); prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use common::{random_file, session_pair};
use lifebuoy::session::IncomingStream;
use lifebuoy::transfer::{collect, receive_file, send, Events, Inbox};
use tokio::sync::watch;

const BIG: u64 = 2 << 30;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let work = tempfile::tempdir_in(std::env::var_os("LIFEBUOY_BENCH_DIR").unwrap_or_else(|| "target".into())).unwrap();
        let big = work.path().join("big.bin");
        random_file(&big, BIG, 0x9e37_79b9_7f4a_7c15);
        // Warm the page cache for both runs alike.
        std::io::copy(&mut std::fs::File::open(&big).unwrap(), &mut std::io::sink()).unwrap();
        let (agent, viewer) = session_pair().await;

        // Raw quinn: one stream, 1 MiB reads and writes.
        let raw_out = work.path().join("raw.bin");
        let started = Instant::now();
        let (sent, received) = tokio::join!(
            async {
                let mut tx = agent.link.connection().open_uni().await.unwrap();
                let mut f = std::fs::File::open(&big).unwrap();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = tokio::task::block_in_place(|| f.read(&mut buf)).unwrap();
                    if n == 0 {
                        break;
                    }
                    tx.write_all(&buf[..n]).await.unwrap();
                }
                tx.finish().unwrap();
                tx.stopped().await.unwrap();
            },
            async {
                let mut rx = viewer.link.connection().accept_uni().await.unwrap();
                let mut f = std::fs::File::create(&raw_out).unwrap();
                let mut total = 0u64;
                while let Some(chunk) = rx.read_chunk(1 << 20, true).await.unwrap() {
                    total += chunk.bytes.len() as u64;
                    tokio::task::block_in_place(|| f.write_all(&chunk.bytes)).unwrap();
                }
                total
            }
        );
        let () = sent;
        assert_eq!(received, BIG);
        let raw_secs = started.elapsed().as_secs_f64();
        std::fs::remove_file(&raw_out).unwrap();

        // lifebuoy.
        let inbox_dir = work.path().join("inbox");
        std::fs::create_dir(&inbox_dir).unwrap();
        let inbox = Arc::new(Inbox::new(inbox_dir.clone(), Events::none()).unwrap());
        let receiving = {
            let (link, inbox) = (viewer.link.clone(), inbox.clone());
            tokio::spawn(async move {
                let mut done = 0;
                while let Ok(IncomingStream::File(s)) = link.accept().await {
                    let inbox = inbox.clone();
                    tokio::spawn(async move { receive_file(s, &inbox).await.unwrap() });
                    done += 1;
                    let _ = done;
                }
            })
        };
        let (_c, cancel) = watch::channel(false);
        let started = Instant::now();
        let (entries, _) = collect(std::slice::from_ref(&big)).unwrap();
        send(&agent.link, 1, entries, Events::none(), cancel.clone()).await.unwrap();
        // Delivered means read by the receiver; wait for its rename too.
        let target = inbox_dir.join("big.bin");
        while !target.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let ours_secs = started.elapsed().as_secs_f64();
        std::fs::remove_file(&target).unwrap();
        std::fs::remove_file(&big).unwrap();

        // 10,000 small files (1-4 KiB) in 100 folders.
        let small = work.path().join("small");
        let mut small_bytes = 0u64;
        for d in 0..100 {
            let dir = small.join(format!("ordner {d}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..100 {
                let body = vec![b'a' + (f % 26) as u8; 1024 + (f * 31 + d) % 3072];
                small_bytes += body.len() as u64;
                std::fs::write(dir.join(format!("datei {f}.txt")), body).unwrap();
            }
        }
        let started = Instant::now();
        let (entries, _) = collect(std::slice::from_ref(&small)).unwrap();
        let count = entries.len();
        send(&agent.link, 2, entries, Events::none(), cancel).await.unwrap();
        let last = inbox_dir.join("small/ordner 99/datei 99.txt");
        while !last.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let small_secs = started.elapsed().as_secs_f64();
        receiving.abort();

        let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs;
        println!("| what | bytes | seconds | MB/s |");
        println!("|---|---|---|---|");
        println!("| one 2 GiB file, raw quinn stream | {BIG} | {raw_secs:.2} | {:.1} |", mb(BIG, raw_secs));
        println!("| one 2 GiB file, lifebuoy | {BIG} | {ours_secs:.2} | {:.1} |", mb(BIG, ours_secs));
        println!("| lifebuoy / raw | | | {:.0} % |", 100.0 * raw_secs / ours_secs);
        println!(
            "| {count} entries: 10,000 small files in 101 folders, lifebuoy | {small_bytes} | {small_secs:.2} | {:.1} ({:.0} files/s) |",
            mb(small_bytes, small_secs),
            10_000.0 / small_secs
        );
    });
}
