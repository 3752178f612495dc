//! What the technician's side can measure of a live session, the way the
//! technician would notice it: how long from Accept until the whole screen
//! is there, and input -> photon (a key sent from the viewer, through the
//! customer's X server and an application that draws it, back into the
//! viewer's decoded image). Used by `lifebuoy demo --headless` for its
//! report and by the headless viewer (`--photon`) in the NAT lab.

use std::time::{Duration, Instant};

use lifebuoy_proto::codec::{Image, Rect};
use lifebuoy_proto::input::{Input, Modifiers};

use super::viewer::SessionView;

/// HID usage of the key sent: `x` on US and German layouts alike.
const KEY_X: u16 = 0x1B;
/// How long one key may take to show before the probe gives up.
const PATIENCE: Duration = Duration::from_secs(3);

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProbeError {
    /// The session ended before a picture came.
    #[error("the session ended before the screen was shown")]
    NoScreen,
    /// The watched region is not on the customer's screen.
    #[error("the region {w}x{h}+{x}+{y} is not inside the customer's screen ({width}x{height})")]
    Outside {
        /// Left.
        x: u32,
        /// Top.
        y: u32,
        /// Width.
        w: u32,
        /// Height.
        h: u32,
        /// Screen width.
        width: u32,
        /// Screen height.
        height: u32,
    },
    /// Input could not be sent (session over, or control not allowed).
    #[error("the key could not be sent: the session is over")]
    Closed,
    /// A key never showed: nothing draws it there, or it did not arrive.
    #[error("key {key} did not change the region within {PATIENCE:?} (does an application there draw typed keys?)")]
    NoChange {
        /// Which key (counting from 1).
        key: usize,
    },
}

/// Milliseconds, sorted, for percentiles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    /// From samples in any order.
    pub fn new(mut ms: Vec<f64>) -> Latencies {
        ms.sort_by(f64::total_cmp);
        Latencies(ms)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sample at fraction `p` (0..=1) of the sorted list, nearest rank.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let last = self.0.len().checked_sub(1)?;
        Some(self.0[(last as f64 * p.clamp(0.0, 1.0)).round() as usize])
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.percentile(0.5), self.percentile(0.99), self.percentile(1.0)) {
            (Some(p50), Some(p99), Some(max)) => {
                write!(f, "p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({} samples)", self.len())
            }
            _ => f.write_str("no samples"),
        }
    }
}

/// One run of [`input_to_photon`]: when each key was sent and when the
/// viewer showed what it did.
#[derive(Clone, Debug, Default)]
pub struct PhotonRun {
    /// (sent, shown) per key, in order.
    pub keys: Vec<(Instant, Instant)>,
}

impl PhotonRun {
    /// Sent -> shown of every key.
    pub fn latencies(&self) -> Latencies {
        Latencies::new(self.keys.iter().map(|(sent, shown)| (*shown - *sent).as_secs_f64() * 1e3).collect())
    }
}

/// Parses `WxH+X+Y` (X geometry), the region `--photon` watches.
pub fn parse_region(s: &str) -> Result<Rect, String> {
    let bad = || format!("{s:?} is not a region like 500x200+0+0 (width x height + left + top)");
    let (size, place) = s.split_once('+').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let (x, y) = place.split_once('+').ok_or_else(bad)?;
    let n = |v: &str| v.parse::<u32>().map_err(|_| bad());
    let rect = Rect { x: n(x)?, y: n(y)?, w: n(w)?, h: n(h)? };
    if rect.w == 0 || rect.h == 0 {
        return Err(bad());
    }
    Ok(rect)
}

/// Waits for the first complete image: the instant it was there.
pub async fn first_frame(view: &SessionView) -> Result<Instant, ProbeError> {
    let mut image = view.screen.image.clone();
    image.wait_for(|f| f.as_ref().is_some_and(|f| f.complete)).await.map_err(|_| ProbeError::NoScreen)?;
    Ok(Instant::now())
}

/// Sends `keys` presses of `x` at a person's irregular pace and times each
/// until the viewer's image of `region` changes. Something on the
/// customer's screen must draw typed keys there (a terminal running `cat`).
pub async fn input_to_photon(view: &SessionView, region: Rect, keys: usize) -> Result<PhotonRun, ProbeError> {
    let mut image = view.screen.image.clone();
    image.wait_for(|f| f.as_ref().is_some_and(|f| f.complete)).await.map_err(|_| ProbeError::NoScreen)?;
    let mut run = PhotonRun { keys: Vec::with_capacity(keys) };
    for key in 1..=keys {
        // Keys must not fall into step with the capture pacing (60 Hz), as
        // a person's keys do not: 60-77 ms apart, at random.
        tokio::time::sleep(Duration::from_micros(60_000 + rand::random::<u64>() % 17_000)).await;
        let before = pixels(image.borrow_and_update().as_ref().map(|f| &*f.image), region)?;
        let started = Instant::now();
        for pressed in [true, false] {
            let input = Input::Key { physical: KEY_X, logical: Some('x'), pressed, modifiers: Modifiers(0) };
            view.input.send(input).map_err(|_| ProbeError::Closed)?;
        }
        let shown = async {
            loop {
                image.changed().await.map_err(|_| ProbeError::NoScreen)?;
                let now = pixels(image.borrow_and_update().as_ref().map(|f| &*f.image), region)?;
                if now != before {
                    return Ok::<_, ProbeError>(Instant::now());
                }
            }
        };
        let shown =
            tokio::time::timeout(PATIENCE, shown).await.map_err(|_| ProbeError::NoChange { key })??;
        run.keys.push((started, shown));
    }
    Ok(run)
}

/// The pixels of `region`, or why there are none.
fn pixels(image: Option<&Image>, region: Rect) -> Result<Vec<u8>, ProbeError> {
    let image = image.ok_or(ProbeError::NoScreen)?;
    let inside = u64::from(region.x) + u64::from(region.w) <= u64::from(image.width)
        && u64::from(region.y) + u64::from(region.h) <= u64::from(image.height);
    if !inside {
        let Rect { x, y, w, h } = region;
        return Err(ProbeError::Outside { x, y, w, h, width: image.width, height: image.height });
    }
    Ok((0..region.h).flat_map(|dy| image.row(region, dy).to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_of_the_sorted_samples() {
        let l = Latencies::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(l.percentile(0.5), Some(51.0));
        assert_eq!(l.percentile(0.99), Some(99.0));
        assert_eq!(l.percentile(1.0), Some(100.0));
        assert_eq!(l.percentile(0.0), Some(1.0));
        assert_eq!(Latencies::default().percentile(0.5), None);
        assert_eq!(Latencies::default().to_string(), "no samples");
    }

    #[test]
    fn regions_parse_as_x_geometry_and_bad_ones_are_explained() {
        assert_eq!(parse_region("500x200+10+20"), Ok(Rect { x: 10, y: 20, w: 500, h: 200 }));
        for bad in ["", "500x200", "500x200+1", "0x10+0+0", "ax1+0+0", "5x5+-1+0", "5x5+0+0+0"] {
            let err = parse_region(bad).unwrap_err();
            assert!(err.contains("not a region"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_region_off_the_screen_is_refused_not_a_panic() {
        let image = Image { width: 100, height: 50, pixels: vec![0; 100 * 50 * 4] };
        let fits = Rect { x: 90, y: 40, w: 10, h: 10 };
        assert_eq!(pixels(Some(&image), fits).unwrap().len(), 10 * 10 * 4);
        let off = Rect { x: 91, y: 0, w: 10, h: 10 };
        assert!(matches!(pixels(Some(&image), off), Err(ProbeError::Outside { width: 100, .. })));
        let huge = Rect { x: u32::MAX, y: 0, w: u32::MAX, h: 1 };
        assert!(matches!(pixels(Some(&image), huge), Err(ProbeError::Outside { .. })));
        assert_eq!(pixels(None, fits), Err(ProbeError::NoScreen));
    }
}
