//! Time to a trusted session on loopback: the QUIC + TLS 1.3 handshake with
//! pinned certificates on both sides, plus the hello exchange that makes the
//! session trusted. Also the agent's start-up cost of making its fresh key.
//!
//! Run: `cargo bench --bench handshake` (or `just bench`).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use lifebuoy::net::pin::ClientPolicy;
use lifebuoy::net::tls::{client_config, server_config, ALPN_PEER, SERVER_NAME};
use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::Role;
use lifebuoy::session::{LocalSide, NonceGate, Session};

fn side(role: Role) -> (LocalSide, quinn::Endpoint) {
    let identity = Arc::new(Identity::generate("bench").unwrap());
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), Some(&identity)).unwrap();
    (LocalSide { identity, role, name: "bench".into(), capabilities: Capabilities::default() }, endpoint)
}

fn handshake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _guard = rt.enter();
    let (viewer, viewer_ep) = side(Role::Viewer);
    let (agent, agent_ep) = side(Role::Agent);
    let viewer_addr = viewer_ep.local_addr().unwrap();
    let (viewer_pin, agent_pin) = (viewer.identity.fingerprint(), agent.identity.fingerprint());

    let mut group = c.benchmark_group("handshake");
    group.bench_function("trusted session (QUIC+TLS, pins, hellos, code)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let accept = async {
                    let incoming = viewer_ep.accept().await.unwrap();
                    Session::accept(incoming, &viewer, agent_pin, &NonceGate::new()).await.unwrap()
                };
                let (v, a) =
                    tokio::join!(accept, Session::connect(&agent_ep, viewer_addr, &agent, viewer_pin));
                let a = a.unwrap();
                assert_eq!(a.peer.code, v.peer.code);
                a.link.close(lifebuoy::proto::close::CloseCode::Ended, "");
                v.link.close(lifebuoy::proto::close::CloseCode::Ended, "");
            })
        })
    });
    group.bench_function("QUIC+TLS handshake only (pinned)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (cc, _) = client_config(&agent.identity, viewer_pin, ALPN_PEER).unwrap();
                let (sc, _) =
                    server_config(&viewer.identity, ClientPolicy::Pinned(agent_pin), ALPN_PEER).unwrap();
                let accept = async {
                    let incoming = viewer_ep.accept().await.unwrap();
                    incoming.accept_with(Arc::new(sc)).unwrap().await.unwrap()
                };
                let connect =
                    async { agent_ep.connect_with(cc, viewer_addr, SERVER_NAME).unwrap().await.unwrap() };
                let (v, a) = tokio::join!(accept, connect);
                a.close(0u32.into(), b"");
                v.close(0u32.into(), b"");
            })
        })
    });
    group.finish();

    c.bench_function("agent identity (fresh Ed25519 key + certificate)", |b| {
        b.iter(|| Identity::generate("lifebuoy agent").unwrap())
    });
}

criterion_group!(benches, handshake);
criterion_main!(benches);
