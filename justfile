# lifebuoy: the recipes people run. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Fuzz seconds per target for `just fuzz`, and in `just test` (so in CI).
fuzz_seconds := "120"
ci_fuzz_seconds := "10"

default:
    @just --list

# Install the system packages lifebuoy and its tests need (Debian/Ubuntu; idempotent).
setup:
    scripts/setup

# The whole product on this machine.
demo: setup
    cargo run --release --quiet -- demo

# Formatting, lints, every test, and every fuzz target for a short while.
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace
    scripts/test-windows
    scripts/fuzz {{ci_fuzz_seconds}}

# Benchmarks; numbers go to docs/performance.md.
bench: setup
    cargo bench --bench handshake
    cargo bench --bench rendezvous_load
    cargo bench --bench rendezvous_flood
    cargo bench --bench screen_latency
    cargo bench --bench input_latency
    cargo bench --bench file_transfer
    cargo bench --bench texture_upload

# Screenshots of the real windows under Xvfb, German and English (docs/screenshots).
screenshots: setup
    cargo build --quiet
    scripts/screenshots de
    scripts/screenshots en

# Cross-compile lifebuoy.exe for Windows (x86_64-pc-windows-gnu); extra args go to cargo build.
build-windows *args: setup
    scripts/build-windows {{args}}

# Record desktop workloads (typing, scroll, drag, video) under Xvfb for the codec bench.
record-workloads:
    LIFEBUOY_SETUP_MEDIA=1 scripts/setup
    cargo build --release --quiet
    scripts/record-workloads target/workloads 10

# The screen codec on the recorded workloads, beside a plain tiles + zstd baseline.
bench-codec:
    cargo run --release --quiet -- bench-codec --size 1920x1080 --format bgrx --input target/workloads/typing.bgrx --input target/workloads/scroll.bgrx --input target/workloads/drag.bgrx --input target/workloads/video.bgrx

# The NAT lab: each case's path and accept -> session time over RUNS runs (needs root).
lab runs="20": setup
    cargo build --release --quiet
    lab/bench-paths {{runs}}

# Accept -> first frame and input -> photon, real processes: loopback, the NAT lab's direct path (needs root), TigerVNC beside it.
bench-session runs="20" keys="200":
    LIFEBUOY_SETUP_VNC=1 scripts/setup
    cargo build --release --quiet
    lab/bench-session {{runs}} {{keys}} tigervnc loopback eim

# The same on a customer's slow uplink (tbf 16/4/1 Mbit/s, 30 ms): photo wallpaper, a video, a file; TigerVNC beside it (needs root).
bench-link keys="100":
    LIFEBUOY_SETUP_VNC=1 LIFEBUOY_SETUP_MEDIA=1 scripts/setup
    cargo build --release --quiet
    lab/bench-link {{keys}}

# Key on the technician's keyboard -> the technician's screen, the real windows, TigerVNC's viewer beside it.
bench-glass:
    LIFEBUOY_SETUP_VNC=1 scripts/setup
    cargo bench --bench glass_to_glass

# Fuzz every target for SECONDS each (default {{fuzz_seconds}}); a crash fails (scripts/fuzz).
fuzz seconds=fuzz_seconds:
    scripts/fuzz {{seconds}}
