//! The decoder: checks an update against the frame's geometry, then
//! applies it to the current frame in place.

use super::background::Background;
use super::image::{Image, Rect};
use super::wire::Reader;
use super::{mix, CodecError, FLAG_FRESH, MAX_PIXELS, MAX_SIDE, VERSION};

enum Op {
    Raw,
    Xor,
    Fill([u8; 4]),
    Copy(Rect),
    Back,
    Mix(Rect),
}

impl Op {
    fn payload_len(&self, r: Rect) -> usize {
        let pixels = r.w as usize * r.h as usize;
        match self {
            Op::Raw | Op::Xor => pixels * 4,
            Op::Mix(_) => pixels * 5,
            _ => 0,
        }
    }
}

/// Decodes updates; holds the current frame and the background.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    image: Option<Image>,
    background: Background,
    touched: Vec<u32>,
    fresh: bool,
}

impl Decoder {
    /// A decoder with no frame yet.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The current frame, once one was decoded.
    pub fn image(&self) -> Option<&Image> {
        self.image.as_ref()
    }

    /// The tiles the last successful update wrote (ascending), and whether
    /// it started a new frame (then everything is new): lets a viewer
    /// refresh only what changed in its own copy or texture.
    pub fn touched(&self) -> (&[u32], bool) {
        (&self.touched, self.fresh)
    }

    /// Applies one update. On error the current frame is unchanged.
    pub fn decode(&mut self, data: &[u8]) -> Result<&Image, CodecError> {
        let mut r = Reader::new(data);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        let flags = r.u8()?;
        if flags & !FLAG_FRESH != 0 {
            return Err(CodecError::Flags(flags));
        }
        let fresh = flags & FLAG_FRESH != 0;
        let (width, height) = (r.varint()?, r.varint()?);
        if width == 0
            || height == 0
            || width > u64::from(MAX_SIDE)
            || height > u64::from(MAX_SIDE)
            || width * height > MAX_PIXELS
        {
            return Err(CodecError::Size { width, height });
        }
        let (width, height) = (width as u32, height as u32);
        let prev = self.image.as_ref().filter(|p| !fresh && p.width == width && p.height == height);
        let geometry = Image { width, height, pixels: Vec::new() };
        let (cols, rows) = geometry.tiles();
        let tiles = u64::from(cols * rows);
        let count = r.varint()?;
        if count > tiles {
            return Err(CodecError::TileIndex);
        }
        let mut ops = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        let mut payload_size = 0usize;
        for _ in 0..count {
            let index = next.checked_add(r.varint()?).ok_or(CodecError::TileIndex)?;
            if index >= tiles {
                return Err(CodecError::TileIndex);
            }
            next = index + 1;
            let index = index as u32;
            let rect = geometry.tile_rect(index);
            let op = match r.u8()? {
                0 => Op::Raw,
                1 => Op::Xor,
                2 => Op::Fill(r.bytes(4)?.try_into().expect("four bytes")),
                3 => Op::Copy(source(&mut r, rect, width, height)?),
                4 => Op::Back,
                5 => Op::Mix(source(&mut r, rect, width, height)?),
                other => return Err(CodecError::Op(other)),
            };
            let needs_prev = !matches!(op, Op::Raw | Op::Fill(_));
            if needs_prev && prev.is_none() {
                return Err(CodecError::NoReference);
            }
            if matches!(op, Op::Back) && !self.background.has(index, &geometry) {
                return Err(CodecError::NoReference);
            }
            payload_size += op.payload_len(rect);
            ops.push((index, rect, op));
        }
        let compressed_len = r.varint()?;
        if compressed_len != r.rest() as u64 {
            return Err(CodecError::Truncated);
        }
        let compressed = r.bytes(compressed_len as usize)?;
        let payload = match (payload_size, compressed_len) {
            (0, 0) => Vec::new(),
            (0, _) | (_, 0) => return Err(CodecError::Payload),
            // Exactly what the operations announce: at most 5 bytes a pixel of one frame.
            (size, _) => {
                let out = zstd::bulk::decompress(compressed, size).map_err(|_| CodecError::Payload)?;
                if out.len() != size {
                    return Err(CodecError::Payload);
                }
                out
            }
        };
        // Masks come out of the payload: check them before anything is written.
        let mut at = 0usize;
        for (index, rect, op) in &ops {
            if let Op::Mix(_) = op {
                let pixels = rect.w as usize * rect.h as usize;
                let has_back = self.background.has(*index, &geometry);
                if !mix::mask_ok(&payload[at..at + pixels], has_back) {
                    return Err(CodecError::Mask);
                }
            }
            at += op.payload_len(*rect);
        }

        // Everything is checked: from here on nothing can fail, so the
        // frame is updated in place. Copies and moved predictions read the
        // previous frame, so their sources are taken before anything is written.
        let has_prev = prev.is_some();
        let mut copied = Vec::new();
        if let Some(p) = prev {
            for (_, _, op) in &ops {
                if let Op::Copy(src) | Op::Mix(src) = op {
                    for dy in 0..src.h {
                        copied.extend_from_slice(p.row(*src, dy));
                    }
                }
            }
        }
        if !has_prev {
            self.image = Some(Image::new(width, height));
            self.background.reset();
        }
        let image = self.image.as_mut().expect("set above or kept from the previous update");
        self.background.detach(image, ops.iter().map(|(index, _, _)| *index));
        let (mut at, mut copy_at) = (0usize, 0usize);
        for (index, rect, op) in &ops {
            let row_bytes = rect.w as usize * 4;
            match op {
                Op::Mix(src) => {
                    let pixels = rect.w as usize * rect.h as usize;
                    let (mask, residual) = payload[at..at + pixels * 5].split_at(pixels);
                    let moved = &copied[copy_at..copy_at + pixels * 4];
                    mix::apply(image, *rect, mask, residual, moved, self.background.tile(*index, image));
                    copy_at += src.w as usize * src.h as usize * 4;
                }
                Op::Back => {
                    let back = self.background.tile(*index, image).expect("checked above");
                    for dy in 0..rect.h {
                        let row = back.row(*rect, dy);
                        image.row_mut(*rect, dy).copy_from_slice(row);
                    }
                }
                _ => {
                    for dy in 0..rect.h {
                        let dst = image.row_mut(*rect, dy);
                        match op {
                            Op::Raw => {
                                dst.copy_from_slice(&payload[at + dy as usize * row_bytes..][..row_bytes])
                            }
                            // Each tile appears once: the old pixels are still here.
                            Op::Xor => dst
                                .iter_mut()
                                .zip(&payload[at + dy as usize * row_bytes..][..row_bytes])
                                .for_each(|(d, x)| *d ^= x),
                            Op::Fill(c) => dst.chunks_exact_mut(4).for_each(|p| p.copy_from_slice(c)),
                            Op::Copy(_) => {
                                dst.copy_from_slice(&copied[copy_at + dy as usize * row_bytes..][..row_bytes])
                            }
                            Op::Mix(_) | Op::Back => unreachable!("handled above"),
                        }
                    }
                    if let Op::Copy(_) = op {
                        copy_at += row_bytes * rect.h as usize;
                    }
                }
            }
            at += op.payload_len(*rect);
        }
        self.background.settle(image, ops.iter().map(|(index, _, _)| *index));
        self.touched.clear();
        self.touched.extend(ops.iter().map(|(index, _, _)| *index));
        self.fresh = !has_prev;
        Ok(image)
    }
}

/// A COPY or MIX source: the tile moved by an offset off the wire, which
/// must lie wholly inside the frame.
fn source(r: &mut Reader, rect: Rect, width: u32, height: u32) -> Result<Rect, CodecError> {
    let (dx, dy) = (r.zigzag()?, r.zigzag()?);
    // Offsets come off the wire: any i64, so no plain addition.
    let sx = i64::from(rect.x).checked_add(dx).ok_or(CodecError::CopySource)?;
    let sy = i64::from(rect.y).checked_add(dy).ok_or(CodecError::CopySource)?;
    if sx < 0 || sy < 0 || sx > i64::from(width - rect.w) || sy > i64::from(height - rect.h) {
        return Err(CodecError::CopySource);
    }
    Ok(Rect { x: sx as u32, y: sy as u32, w: rect.w, h: rect.h })
}
