//! Frames as the codec sees them: BGRX, 4 bytes a pixel, rows packed.

/// A BGRX image; `pixels.len() == width * height * 4`.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Rows top to bottom, each `width * 4` bytes.
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{})", self.width, self.height)
    }
}

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let x1 = (u64::from(self.x) + u64::from(self.w)).max(u64::from(other.x) + u64::from(other.w));
        let y1 = (u64::from(self.y) + u64::from(self.h)).max(u64::from(other.y) + u64::from(other.h));
        Rect {
            x,
            y,
            w: (x1 - u64::from(x)).min(u64::from(u32::MAX)) as u32,
            h: (y1 - u64::from(y)).min(u64::from(u32::MAX)) as u32,
        }
    }

    /// Whether `other` lies wholly inside.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && u64::from(other.x) + u64::from(other.w) <= u64::from(self.x) + u64::from(self.w)
            && u64::from(other.y) + u64::from(other.h) <= u64::from(self.y) + u64::from(self.h)
    }

    /// Whether the two share at least one pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        let (ax1, ay1) = (u64::from(self.x) + u64::from(self.w), u64::from(self.y) + u64::from(self.h));
        let (bx1, by1) = (u64::from(other.x) + u64::from(other.w), u64::from(other.y) + u64::from(other.h));
        u64::from(self.x) < bx1
            && u64::from(other.x) < ax1
            && u64::from(self.y) < by1
            && u64::from(other.y) < ay1
    }
}

impl Image {
    /// A black image.
    pub fn new(width: u32, height: u32) -> Image {
        Image { width, height, pixels: vec![0; width as usize * height as usize * 4] }
    }

    /// The whole image as a rectangle.
    pub fn rect(&self) -> Rect {
        Rect { x: 0, y: 0, w: self.width, h: self.height }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// The bytes of one row of a rectangle.
    pub fn row(&self, r: Rect, dy: u32) -> &[u8] {
        let start = (r.y + dy) as usize * self.stride() + r.x as usize * 4;
        &self.pixels[start..start + r.w as usize * 4]
    }

    /// The bytes of one row of a rectangle, writable.
    pub fn row_mut(&mut self, r: Rect, dy: u32) -> &mut [u8] {
        let stride = self.stride();
        let start = (r.y + dy) as usize * stride + r.x as usize * 4;
        &mut self.pixels[start..start + r.w as usize * 4]
    }

    /// Number of tile columns and rows.
    pub fn tiles(&self) -> (u32, u32) {
        (self.width.div_ceil(super::TILE), self.height.div_ceil(super::TILE))
    }

    /// The rectangle of tile `index` (row-major).
    pub fn tile_rect(&self, index: u32) -> Rect {
        let (cols, _) = self.tiles();
        let (tx, ty) = (index % cols, index / cols);
        let (x, y) = (tx * super::TILE, ty * super::TILE);
        Rect { x, y, w: super::TILE.min(self.width - x), h: super::TILE.min(self.height - y) }
    }
}
