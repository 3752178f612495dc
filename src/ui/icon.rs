//! The lifebuoy, drawn: a red and white ring, for the window and the tray.
//! Drawn in code so no image file has to travel with the one-file agent.

/// RGBA pixels (straight alpha) of a `size` x `size` lifebuoy.
pub fn lifebuoy_rgba(size: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    let c = size as f32 / 2.0;
    let (outer, inner) = (size as f32 * 0.47, size as f32 * 0.25);
    for y in 0..size {
        for x in 0..size {
            let (dx, dy) = (x as f32 + 0.5 - c, y as f32 + 0.5 - c);
            let r = (dx * dx + dy * dy).sqrt();
            // One pixel of soft edge on both rims.
            let alpha = ((outer - r + 0.5).clamp(0.0, 1.0) * (r - inner + 0.5).clamp(0.0, 1.0) * 255.0) as u8;
            // Four red quarters between four white bands, as on a real one.
            let angle = dy.atan2(dx).to_degrees().rem_euclid(90.0);
            let white = (30.0..60.0).contains(&angle);
            let (red, green, blue) = if white { (0xff, 0xff, 0xff) } else { (0xd9, 0x2b, 0x1e) };
            out.extend_from_slice(&[red, green, blue, alpha]);
        }
    }
    out
}

/// The same as ARGB32 in network byte order (the tray's format).
pub fn lifebuoy_argb(size: u32) -> Vec<u8> {
    let mut px = lifebuoy_rgba(size);
    for p in px.chunks_exact_mut(4) {
        p.rotate_right(1);
    }
    px
}

/// The window icon.
pub fn window_icon() -> egui::IconData {
    egui::IconData { rgba: lifebuoy_rgba(64), width: 64, height: 64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_red_and_white_with_a_hole() {
        let size = 32;
        let px = lifebuoy_rgba(size);
        let at = |x: u32, y: u32| &px[((y * size + x) * 4) as usize..][..4];
        assert_eq!(at(16, 16)[3], 0, "the middle is a hole");
        assert_eq!(at(0, 0)[3], 0, "the corners are outside");
        assert_eq!(at(16 + 12, 16), &[0xd9, 0x2b, 0x1e, 255], "red on the ring");
        let diagonal = 16 + 8;
        assert_eq!(&at(diagonal, diagonal)[..3], &[0xff, 0xff, 0xff], "a white band at 45 degrees");
        let argb = lifebuoy_argb(size);
        assert_eq!(&argb[((16 * size + 28) * 4) as usize..][..4], &[255, 0xd9, 0x2b, 0x1e]);
    }
}
