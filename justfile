# lifebuoy: the recipes people run. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Fuzz seconds per target for `just fuzz`.
fuzz_seconds := "120"

default:
    @just --list

# Install the system packages lifebuoy and its tests need (Debian/Ubuntu; idempotent).
setup:
    scripts/setup

# The whole product on this machine.
demo: setup
    cargo run --release --quiet -- demo

# Formatting, lints, and every test.
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace
    scripts/test-windows

# Benchmarks; numbers go to docs/performance.md.
bench: setup
    cargo bench --bench handshake
    cargo bench --bench rendezvous_load
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

# Key on the technician's keyboard -> the technician's screen, the real windows, TigerVNC's viewer beside it.
bench-glass:
    LIFEBUOY_SETUP_VNC=1 scripts/setup
    cargo bench --bench glass_to_glass

# Fuzz every protocol decoder for {{fuzz_seconds}} s each (needs nightly; installs cargo-fuzz).
fuzz:
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd proto/fuzz && for t in $(cargo +nightly fuzz list); do \
        cargo +nightly fuzz run "$t" -- -max_total_time={{fuzz_seconds}} -rss_limit_mb=1024 2>&1 \
        | grep -E '^(Done|==|SUMMARY)|stat::number_of_executed_units' || true; done
