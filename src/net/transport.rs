//! QUIC transport settings for remote support.
//!
//! Sized for a file transfer of tens of MB/s over a 100 ms path while a
//! screen stream runs beside it, and for noticing a dead peer in seconds:
//! a customer who pulls the cable must see the session end, not hang.

use std::sync::Arc;
use std::time::Duration;

use quinn::congestion::BbrConfig;
use quinn::{AckFrequencyConfig, IdleTimeout, TransportConfig, VarInt};

/// Per-stream receive window: 16 MiB carries 160 MB/s at 100 ms RTT.
pub const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Connection receive and send windows: several streams at full speed.
pub const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// Unidirectional streams a peer may have open at once.
pub const UNI_STREAMS: u32 = 64;
/// A PING this often keeps NAT mappings alive and detects loss early.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A peer silent for this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport configuration both roles and the rendezvous use.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    // BBR keeps its rate under random loss, where Cubic collapses
    // (docs/decisions.md: 42 MB/s against 0.3 MB/s at 50 ms RTT, 2 % loss).
    t.congestion_controller_factory(Arc::new(BbrConfig::default()));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(CONNECTION_WINDOW as u64);
    // What the protocol needs at once, and no more: a peer opening streams
    // as fast as it can holds at most this many. One stream per screen
    // update (two in flight and the pointer's) and per file (32 in
    // flight), the input stream; the control stream is the only
    // bidirectional one.
    t.max_concurrent_uni_streams(VarInt::from_u32(UNI_STREAMS));
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IdleTimeout::try_from(IDLE_TIMEOUT).expect("5 s fits a VarInt")));
    // The default 333 ms makes a lost handshake packet cost a third of a
    // second; most support sessions are within one continent.
    t.initial_rtt(Duration::from_millis(100));
    // The screen stream returns a credit when an update is acknowledged;
    // with the default delayed ACKs (every second packet, or after up to
    // 25 ms) a one-packet update waits for that delay, and under a steady
    // stream of updates so does every keystroke's. Ask the peer (quinn,
    // the ACK frequency extension) to acknowledge at once.
    let mut ack = AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(VarInt::from_u32(0));
    ack.max_ack_delay(Some(Duration::from_millis(1)));
    t.ack_frequency_config(Some(ack));
    // Datagrams are only nudges after a path moved (`roles::path`);
    // nobody reads them, so few are kept.
    t.datagram_receive_buffer_size(Some(16 * 1024));
    t
}

/// Keep-alive on a rendezvous connection: often enough to hold a NAT
/// mapping (home routers keep UDP mappings 30 s or more) and to notice a
/// server that died within [`RENDEZVOUS_IDLE_TIMEOUT`], rarely enough that
/// ten thousand idle customers cost the server little (2,000 small
/// packets a second).
pub const RENDEZVOUS_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A rendezvous client silent this long is gone (shown offline); a server
/// silent this long is gone for its clients, who sign in again.
pub const RENDEZVOUS_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Transport for connections to the rendezvous: small messages, many
/// connections, no bulk data.
pub fn rendezvous_transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(256 * 1024));
    t.receive_window(VarInt::from_u32(1024 * 1024));
    t.send_window(1024 * 1024);
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.keep_alive_interval(Some(RENDEZVOUS_KEEP_ALIVE));
    t.max_idle_timeout(Some(IdleTimeout::try_from(RENDEZVOUS_IDLE_TIMEOUT).expect("15 s fits a VarInt")));
    t.initial_rtt(Duration::from_millis(100));
    t
}
