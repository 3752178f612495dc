//! The lossless screen codec: changed 64x64 tiles, each sent as a solid
//! colour, as the XOR with the same tile of the previous frame, as its raw
//! pixels, or as a copy of another place in the previous frame (scrolled
//! or moved content); all pixel payloads of one update in one zstd frame.
//!
//! Pure and deterministic: the encoder and decoder hold the previous frame
//! and nothing else. The decoder checks every index, offset and length
//! against the frame's geometry before touching memory, and decompresses
//! into a buffer of exactly the size the operations announce, so a hostile
//! update is a typed error, never a panic or an unbounded allocation.
//!
//! Wire format of one update (the `data` of a screen update):
//!
//! ```text
//! version u8 = 2
//! flags u8: bit 0 FRESH (a full frame: the decoder forgets its frame and
//!           background first); other bits 0
//! width varint, height varint           (1..=MAX_SIDE each, width*height <= MAX_PIXELS)
//! op_count varint
//! op_count x { tile_gap varint, kind u8, [args] }
//!     tile index = previous index + 1 + tile_gap (the first: tile_gap); tiles in
//!     row-major order, 64x64 pixels, the last column and row cut to the frame
//!     kind 0 RAW  : tile pixels in the payload
//!     kind 1 XOR  : tile pixels XOR the previous frame's same tile, in the payload
//!     kind 2 FILL : [b, g, r, x] u8 x4, every pixel of the tile
//!     kind 3 COPY : dx zigzag varint, dy zigzag varint: the tile's pixels are the
//!                   previous frame's pixels at (x + dx, y + dy), wholly inside it
//!     kind 4 BACK : the tile's pixels are its settled background (background.rs)
//!     kind 5 MIX  : dx zigzag varint, dy zigzag varint (the tile moved by them wholly
//!                   inside the frame); in the payload one mask byte per pixel, then
//!                   the tile's pixels XOR their predictions; mask 0 = previous frame
//!                   same place, 1 = previous frame at (x + dx, y + dy), 2 = background
//!                   (the tile must have one), 3 = zero
//! payload_len varint, then a zstd frame of exactly sum(tile_w * tile_h * 4) bytes
//!     over the RAW and XOR tiles and sum(tile_w * tile_h * 5) over the MIX tiles,
//!     in op order (absent when that sum is 0)
//! ```
//!
//! A FRESH update, a frame of another size than the previous one, or the
//! first frame, may use RAW and FILL only. After every update both sides
//! age the tiles it did not touch and store those that settled as
//! background (background.rs).

mod background;
mod decode;
mod encode;
mod image;
mod mix;
mod motion;
mod wire;

pub use decode::Decoder;
pub use encode::{Encoder, EncoderStats, Sliced};
pub use image::{Image, Rect};

/// Side of a tile in pixels.
pub const TILE: u32 = 64;
/// Largest width or height.
pub const MAX_SIDE: u32 = 8192;
/// Largest frame in pixels (an 8K monitor): bounds every allocation.
pub const MAX_PIXELS: u64 = 7680 * 4320;
/// Version byte of the format above.
pub const VERSION: u8 = 2;
/// Flag: a full frame that starts a new chain.
pub const FLAG_FRESH: u8 = 1;

/// What is wrong with an update.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Unknown format version.
    #[error("screen update format {0} is not supported")]
    Version(u8),
    /// The update ends early or has stray bytes.
    #[error("screen update is truncated or has stray bytes")]
    Truncated,
    /// A size out of range.
    #[error("screen size {width}x{height} is out of range")]
    Size {
        /// Width.
        width: u64,
        /// Height.
        height: u64,
    },
    /// A tile index beyond the frame, or not increasing.
    #[error("tile index out of range")]
    TileIndex,
    /// An operation that needs the previous frame, without one of that size.
    #[error("update refers to a previous frame that does not exist")]
    NoReference,
    /// Flag bits this version does not define.
    #[error("unknown screen update flags {0:#x}")]
    Flags(u8),
    /// A mask byte that names no prediction, or the background where the tile has none.
    #[error("tile mask names a prediction that does not exist")]
    Mask,
    /// A copy source outside the previous frame.
    #[error("copy source outside the frame")]
    CopySource,
    /// An unknown operation.
    #[error("unknown tile operation {0}")]
    Op(u8),
    /// The compressed payload is corrupt or of the wrong size.
    #[error("compressed tile data is corrupt or of the wrong size")]
    Payload,
}

#[cfg(test)]
mod tests;
