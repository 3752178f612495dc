//! The codec on recorded desktop work: bytes per second at the recording's
//! frame rate, encoder and decoder time per frame, and a bit-exactness
//! check of every frame, beside a plain "changed tiles + zstd-1" baseline.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use lifebuoy_proto::codec::{Decoder, Encoder, EncoderStats, Image, TILE};

/// What one workload measured.
#[derive(Debug)]
pub struct CodecReport {
    /// Frames in the recording.
    pub frames: usize,
    /// Our codec, kbit/s at the recording's rate.
    pub kbit_s: f64,
    /// The baseline, kbit/s.
    pub baseline_kbit_s: f64,
    /// Encoder ms per frame: median, 95th percentile.
    pub encode_ms: (f64, f64),
    /// Decoder ms per update: median.
    pub decode_ms: f64,
    /// Every decoded frame equal to its recorded frame.
    pub exact: bool,
    /// Updates sent (frames that changed), first frame excluded.
    pub updates: usize,
    /// Tile operations over all updates, first frame excluded.
    pub ops: EncoderStats,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Changed 64x64 tiles, raw, all of a frame's in one zstd-1 frame.
fn baseline_bytes(prev: Option<&Image>, cur: &Image) -> usize {
    let (cols, rows) = cur.tiles();
    let mut raw = Vec::new();
    for i in 0..cols * rows {
        let r = cur.tile_rect(i);
        let changed = prev.is_none_or(|p| (0..r.h).any(|dy| p.row(r, dy) != cur.row(r, dy)));
        if changed {
            for dy in 0..r.h {
                raw.extend_from_slice(cur.row(r, dy));
            }
        }
    }
    if raw.is_empty() {
        0
    } else {
        // Tile headers: a varint index and a kind byte each, roughly.
        zstd::bulk::compress(&raw, 1).expect("in memory").len()
            + raw.len() / (TILE as usize * TILE as usize * 4) * 3
    }
}

/// Runs the codec over a raw BGRX recording of `width` x `height` frames.
pub fn run(input: &Path, width: u32, height: u32, fps: f64) -> anyhow::Result<CodecReport> {
    let frame_len = width as usize * height as usize * 4;
    let mut file = std::io::BufReader::with_capacity(1 << 22, std::fs::File::open(input)?);
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new());
    let (mut bytes, mut baseline, mut frames) = (0usize, 0usize, 0usize);
    let (mut enc_ms, mut dec_ms) = (Vec::new(), Vec::new());
    let mut exact = true;
    let (mut updates, mut ops) = (0usize, EncoderStats::default());
    let mut prev: Option<Image> = None;
    loop {
        let mut pixels = vec![0u8; frame_len];
        match file.read_exact(&mut pixels) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let frame = Image { width, height, pixels };
        // The first frame is a full frame in both; count the rest, like a
        // session that is already running.
        let counted = frames > 0;
        if counted {
            baseline += baseline_bytes(prev.as_ref(), &frame);
        }
        let copy = frame.clone();
        let started = Instant::now();
        let update = encoder.encode(copy);
        enc_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if let Some((data, stats)) = update {
            if counted {
                bytes += data.len();
                updates += 1;
                ops.raw += stats.raw;
                ops.xor += stats.xor;
                ops.fill += stats.fill;
                ops.copy += stats.copy;
                ops.back += stats.back;
                ops.mix += stats.mix;
            }
            let started = Instant::now();
            let decoded = decoder.decode(&data)?;
            dec_ms.push(started.elapsed().as_secs_f64() * 1e3);
            exact &= *decoded == frame;
        } else {
            exact &= decoder.image() == Some(&frame);
        }
        prev = Some(frame);
        frames += 1;
    }
    anyhow::ensure!(frames > 1, "{} holds fewer than two {width}x{height} frames", input.display());
    enc_ms.sort_by(f64::total_cmp);
    dec_ms.sort_by(f64::total_cmp);
    let seconds = (frames - 1) as f64 / fps;
    Ok(CodecReport {
        frames,
        kbit_s: bytes as f64 * 8.0 / 1000.0 / seconds,
        baseline_kbit_s: baseline as f64 * 8.0 / 1000.0 / seconds,
        encode_ms: (percentile(&enc_ms, 0.5), percentile(&enc_ms, 0.95)),
        decode_ms: percentile(&dec_ms, 0.5),
        exact,
        updates,
        ops,
    })
}
