//! A QUIC socket that is really a TCP connection to the relay (port 5511),
//! for networks that block UDP.
//!
//! quinn sees an ordinary datagram socket: datagrams to the rendezvous
//! address travel on tunnel channel 0, everything else (the relay) on
//! channel 1, and what comes back appears to come from those addresses.
//! QUIC runs inside unchanged, with its own encryption and pinning; TCP
//! only carries the packets.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lifebuoy_proto::datagram::{is_lifebuoy, Datagram};
use lifebuoy_proto::tunnel::{encode, Channel, TunnelDecoder, MAGIC};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Frames queued towards the relay; beyond, datagrams are dropped like UDP
/// would drop them, and QUIC's congestion control slows down.
const QUEUE: usize = 1024;
/// How long to try reaching the relay's TCP port.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tunnel socket.
pub struct TcpTunnel {
    out: mpsc::Sender<Vec<u8>>,
    inbox: Mutex<mpsc::Receiver<(Channel, Vec<u8>)>>,
    rendezvous: SocketAddr,
    relay: Mutex<SocketAddr>,
    local: SocketAddr,
}

impl fmt::Debug for TcpTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTunnel").field("local", &self.local).field("rendezvous", &self.rendezvous).finish()
    }
}

impl TcpTunnel {
    /// Opens the tunnel to the relay's TCP port `tcp`. `rendezvous` is the
    /// address quinn will send to for the rendezvous; lifebuoy datagrams
    /// that come back go to `control`.
    pub async fn connect(
        tcp: SocketAddr,
        rendezvous: SocketAddr,
        control: mpsc::Sender<(SocketAddr, Datagram)>,
    ) -> io::Result<Arc<TcpTunnel>> {
        let stream =
            tokio::time::timeout(TCP_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(tcp)).await.map_err(
                |_| io::Error::new(io::ErrorKind::TimedOut, "the relay's TCP port did not answer"),
            )??;
        TcpTunnel::over(stream, rendezvous, control)
    }

    /// The tunnel over a TCP connection to the relay already made.
    pub fn over(
        stream: tokio::net::TcpStream,
        rendezvous: SocketAddr,
        control: mpsc::Sender<(SocketAddr, Datagram)>,
    ) -> io::Result<Arc<TcpTunnel>> {
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let (mut reader, mut writer) = stream.into_split();
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (in_tx, in_rx) = mpsc::channel(QUEUE);
        let relay_default = SocketAddr::new(rendezvous.ip(), 5510);
        let tunnel = Arc::new(TcpTunnel {
            out: out_tx,
            inbox: Mutex::new(in_rx),
            rendezvous,
            relay: Mutex::new(relay_default),
            local,
        });
        tokio::spawn(async move {
            if writer.write_all(&MAGIC).await.is_ok() {
                write_frames(writer, out_rx).await;
            }
        });
        let weak = Arc::downgrade(&tunnel);
        tokio::spawn(async move {
            let mut decoder = TunnelDecoder::client_side();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                let Some(tunnel) = weak.upgrade() else { return };
                loop {
                    match decoder.next_datagram() {
                        Ok(Some((channel, dgram))) => {
                            let from = tunnel.addr_of(channel);
                            if is_lifebuoy(dgram[0]) {
                                if let Ok(d) = Datagram::decode(dgram) {
                                    let _ = control.try_send((from, d));
                                }
                            } else {
                                let _ = in_tx.try_send((channel, dgram.to_vec()));
                            }
                        }
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
            }
        });
        Ok(tunnel)
    }

    fn channel_for(&self, to: SocketAddr) -> Channel {
        if to == self.rendezvous {
            Channel::Rendezvous
        } else {
            *self.relay.lock().expect("not poisoned") = to;
            Channel::Relay
        }
    }

    fn addr_of(&self, channel: Channel) -> SocketAddr {
        match channel {
            Channel::Rendezvous => self.rendezvous,
            Channel::Relay => *self.relay.lock().expect("not poisoned"),
        }
    }

    fn queue(&self, to: SocketAddr, datagram: &[u8]) {
        let mut frame = Vec::with_capacity(datagram.len() + 3);
        if encode(self.channel_for(to), datagram, &mut frame).is_ok() {
            let _ = self.out.try_send(frame);
        }
    }

    /// Sends a lifebuoy datagram through the tunnel.
    pub fn send(&self, to: SocketAddr, datagram: &Datagram) {
        self.queue(to, &datagram.encode());
    }
}

/// Writes queued tunnel frames to a TCP stream until the queue closes or
/// the stream fails. Everything queued at a time goes out in one write: a
/// burst of QUIC packets becomes one TCP segment, not one each.
pub async fn write_frames(
    mut writer: impl tokio::io::AsyncWrite + Unpin,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(frame) = frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < 60 * 1024 {
            match frames.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TcpTunnel {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match transmit.segment_size {
            Some(size) => transmit.contents.chunks(size).for_each(|d| self.queue(transmit.destination, d)),
            None => self.queue(transmit.destination, transmit.contents),
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut inbox = self.inbox.lock().expect("not poisoned");
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let next = if n == 0 {
                match inbox.poll_recv(cx) {
                    Poll::Ready(Some(x)) => x,
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "tunnel closed",
                        )))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                match inbox.try_recv() {
                    Ok(x) => x,
                    Err(_) => break,
                }
            };
            let (channel, data) = next;
            let len = data.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&data[..len]);
            meta[n] = RecvMeta { addr: self.addr_of(channel), len, stride: len, ecn: None, dst_ip: None };
            n += 1;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
