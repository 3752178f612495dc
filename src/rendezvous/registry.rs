//! The rendezvous's bookkeeping, without I/O: who is connected, which
//! technicians are online, which requests are open, and what to send when
//! something happens.
//!
//! The server shell turns network events into calls here and carries out
//! the returned [`Action`]s; time comes in as a parameter, so every rule
//! (timeouts, presence pushes) is tested deterministically without sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lifebuoy_proto::close::CloseCode;
use lifebuoy_proto::rendezvous::{
    Candidate, CandidateKind, FromRendezvous, Go, Presence, Refusal, StaffEntry, ToRendezvous, CANDIDATES_MAX,
};
use lifebuoy_proto::Fingerprint;

use super::directory::Directory;
use super::relay::Observed;

/// Identifies a connection to the rendezvous.
pub type ConnId = u64;

/// A request not answered in this time is refused as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most requests one technician may have waiting at once.
pub const PENDING_PER_VIEWER: usize = 8;
/// Presence changes reach agents at most this often.
pub const STAFF_PUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Slack added to the agent's wait before punching, so the viewer's NAT is
/// open before the agent's first packet arrives.
pub const PUNCH_MARGIN: Duration = Duration::from_millis(10);

/// Who is on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// A customer, known by its fresh key only.
    Agent(Fingerprint),
    /// A technician listed in the directory.
    Viewer(Fingerprint),
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message on the connection.
    Send(ConnId, FromRendezvous),
    /// Close the connection with this code, telling it why.
    Close(ConnId, CloseCode, &'static str),
    /// Let the relay pair the two holders of this token until `expires`.
    AllowRelay {
        /// The token both sides got in their go signal.
        token: [u8; 16],
        /// When an unused token lapses.
        expires: Instant,
        /// Where the rendezvous saw the two ends.
        observed: Observed,
    },
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefused {
    /// A viewer whose certificate is not in the staff directory.
    #[error("this technician's key is not in the company's staff directory")]
    NotInDirectory,
    /// As many customers are signed in as the server takes; the rest of
    /// its room is kept for the staff.
    #[error("the company server is full; try again in a minute")]
    Full,
}

/// How much the registry takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Customers signed in at once (technicians do not count: the room
    /// beyond this is theirs, so a flood of customers cannot lock them out).
    pub customers: usize,
    /// Requests waiting at once from one source (an IPv4 address or IPv6
    /// /64): one place cannot keep the whole staff busy.
    pub open_requests_per_source: usize,
}

impl Default for RegistryLimits {
    fn default() -> RegistryLimits {
        RegistryLimits { customers: 19_000, open_requests_per_source: 8 }
    }
}

#[derive(Debug)]
struct Conn {
    who: Who,
    observed: SocketAddr,
    /// Where it counts for limits (its address, or the one behind a tunnel).
    source: IpAddr,
    rtt: Duration,
    /// Agents that asked for the staff list get presence updates.
    subscribed: bool,
    /// Viewers: marked busy (by themselves, or by accepting).
    busy: bool,
    /// Agents: their one open request.
    request: Option<u64>,
    /// The other side of the session the last go paired it with, while
    /// both are connected and the viewer has not said it is free again.
    partner: Option<ConnId>,
    /// When it last said its session's path went silent.
    lost_at: Option<Instant>,
    /// The relay token of the session it is paired in.
    relay_token: Option<[u8; 16]>,
}

#[derive(Debug)]
struct Request {
    agent: ConnId,
    viewer: ConnId,
    agent_candidates: Vec<Candidate>,
    deadline: Instant,
}

/// The state of the rendezvous.
pub struct Registry {
    directory: Directory,
    conns: HashMap<ConnId, Conn>,
    online: HashMap<Fingerprint, ConnId>,
    requests: HashMap<u64, Request>,
    next_request: u64,
    staff_dirty: bool,
    last_push: Option<Instant>,
    /// What listing agents saw last: a push that would repeat it is skipped
    /// (requests come and go by the hundred; presence rarely changes).
    last_pushed: Option<FromRendezvous>,
    new_token: Box<dyn FnMut() -> [u8; 16] + Send>,
    relay_port: u16,
    limits: RegistryLimits,
}

impl Registry {
    /// A registry for `directory`; `new_token` makes relay tokens (random
    /// in the server, predictable in tests).
    pub fn new(
        directory: Directory,
        relay_port: u16,
        new_token: Box<dyn FnMut() -> [u8; 16] + Send>,
        limits: RegistryLimits,
    ) -> Registry {
        Registry {
            directory,
            conns: HashMap::new(),
            online: HashMap::new(),
            requests: HashMap::new(),
            next_request: 1,
            staff_dirty: false,
            last_push: None,
            last_pushed: None,
            new_token,
            relay_port,
            limits,
        }
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Number of open requests.
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// Presence of a technician.
    pub fn presence(&self, fingerprint: &Fingerprint) -> Presence {
        match self.online.get(fingerprint).and_then(|c| self.conns.get(c)) {
            None => Presence::Offline,
            Some(c) if c.busy || self.pending_for(self.online[fingerprint]) >= PENDING_PER_VIEWER => {
                Presence::Busy
            }
            Some(_) => Presence::Online,
        }
    }

    fn pending_for(&self, viewer: ConnId) -> usize {
        self.requests.values().filter(|r| r.viewer == viewer).count()
    }

    /// The staff list with presence.
    pub fn staff_list(&self) -> FromRendezvous {
        FromRendezvous::Staff {
            entries: self
                .directory
                .staff()
                .iter()
                .map(|s| StaffEntry {
                    name: s.name.clone(),
                    group: s.group.clone(),
                    fingerprint: s.fingerprint,
                    presence: self.presence(&s.fingerprint),
                })
                .collect(),
        }
    }

    /// A connection finished its handshake and hello; `source` is what
    /// its limits count against.
    pub fn connect(
        &mut self,
        conn: ConnId,
        who: Who,
        observed: SocketAddr,
        source: IpAddr,
        rtt: Duration,
    ) -> Result<Vec<Action>, ConnectRefused> {
        let mut actions = Vec::new();
        if matches!(who, Who::Agent(_)) && self.conns.len() - self.online.len() >= self.limits.customers {
            return Err(ConnectRefused::Full);
        }
        if let Who::Viewer(fp) = who {
            if self.directory.get(&fp).is_none() {
                return Err(ConnectRefused::NotInDirectory);
            }
            // The same technician signing in again (another PC, a restart
            // before the old connection timed out) replaces the old one.
            if let Some(old) = self.online.insert(fp, conn) {
                actions.extend(self.drop_conn(old));
                actions.push(Action::Close(old, CloseCode::NotAuthorized, "signed in again elsewhere"));
            }
            self.staff_dirty = true;
        }
        self.conns.insert(
            conn,
            Conn {
                who,
                observed,
                source,
                rtt,
                subscribed: false,
                busy: false,
                request: None,
                partner: None,
                lost_at: None,
                relay_token: None,
            },
        );
        Ok(actions)
    }

    /// A message arrived on a connection. `rtt` is the connection's current
    /// round-trip estimate.
    pub fn message(&mut self, now: Instant, conn: ConnId, msg: ToRendezvous, rtt: Duration) -> Vec<Action> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        c.rtt = rtt;
        let who = c.who;
        match (who, msg) {
            (_, ToRendezvous::ListStaff) => {
                c.subscribed = true;
                vec![Action::Send(conn, self.staff_list())]
            }
            (Who::Agent(agent_fp), ToRendezvous::Request { staff, label, candidates }) => {
                self.request(now, conn, agent_fp, staff, label, candidates)
            }
            (Who::Agent(_), ToRendezvous::Cancel) => match c.request.take() {
                Some(id) => {
                    let r = self.requests.remove(&id).expect("an agent's open request is in the table");
                    self.staff_dirty = true;
                    vec![Action::Send(r.viewer, FromRendezvous::Withdrawn { request: id })]
                }
                None => Vec::new(),
            },
            (Who::Viewer(_), ToRendezvous::Accept { request, candidates }) => {
                self.accept(now, conn, request, candidates)
            }
            (Who::Viewer(_), ToRendezvous::Decline { request }) => match self.take_request(conn, request) {
                Some(r) => vec![Action::Send(r.agent, FromRendezvous::Refused { reason: Refusal::Declined })],
                None => Vec::new(),
            },
            (Who::Viewer(_), ToRendezvous::SetBusy { busy }) => {
                c.busy = busy;
                self.staff_dirty = true;
                if !busy {
                    self.unpair(conn);
                }
                Vec::new()
            }
            (_, ToRendezvous::PathLost) => self.path_lost(now, conn),
            // A message the other role sends: the client is broken or hostile.
            _ => {
                let mut actions = self.drop_conn(conn);
                actions.push(Action::Close(
                    conn,
                    CloseCode::ProtocolError,
                    "message not allowed for this role",
                ));
                actions
            }
        }
    }

    fn request(
        &mut self,
        now: Instant,
        conn: ConnId,
        _agent_fp: Fingerprint,
        staff: Fingerprint,
        label: String,
        candidates: Vec<Candidate>,
    ) -> Vec<Action> {
        let refuse = |reason| vec![Action::Send(conn, FromRendezvous::Refused { reason })];
        if self.conns[&conn].request.is_some() {
            return refuse(Refusal::AlreadyRequested);
        }
        let source = self.conns[&conn].source;
        let from_source = self.requests.values().filter(|r| self.conns[&r.agent].source == source).count();
        if from_source >= self.limits.open_requests_per_source {
            return refuse(Refusal::RateLimited);
        }
        if self.directory.get(&staff).is_none() {
            return refuse(Refusal::UnknownStaff);
        }
        match self.presence(&staff) {
            Presence::Offline => return refuse(Refusal::Offline),
            Presence::Busy => return refuse(Refusal::Busy),
            Presence::Online => {}
        }
        let viewer = self.online[&staff];
        let id = self.next_request;
        self.next_request += 1;
        let Who::Agent(agent) = self.conns[&conn].who else { unreachable!("only agents request") };
        self.requests.insert(
            id,
            Request { agent: conn, viewer, agent_candidates: candidates, deadline: now + REQUEST_TIMEOUT },
        );
        self.conns.get_mut(&conn).expect("checked above").request = Some(id);
        self.staff_dirty = true;
        vec![Action::Send(viewer, FromRendezvous::Incoming { request: id, label, agent })]
    }

    /// Removes a request if it is addressed to `viewer`.
    fn take_request(&mut self, viewer: ConnId, id: u64) -> Option<Request> {
        if self.requests.get(&id)?.viewer != viewer {
            return None;
        }
        let r = self.requests.remove(&id)?;
        if let Some(a) = self.conns.get_mut(&r.agent) {
            a.request = None;
        }
        self.staff_dirty = true;
        Some(r)
    }

    fn accept(&mut self, now: Instant, viewer: ConnId, id: u64, candidates: Vec<Candidate>) -> Vec<Action> {
        let Some(r) = self.take_request(viewer, id) else {
            return Vec::new();
        };
        let (Some(a), Some(v)) = (self.conns.get(&r.agent), self.conns.get(&viewer)) else {
            return Vec::new();
        };
        let (Who::Agent(agent_fp), Who::Viewer(viewer_fp)) = (a.who, v.who) else {
            return Vec::new();
        };
        let token = (self.new_token)();
        // Both get the go at about the same time; the agent, which sends the
        // QUIC Initial, waits until the viewer has had time to open its NAT
        // towards it (see docs/decisions.md, hole punching).
        let agent_wait = (v.rtt / 2).saturating_sub(a.rtt / 2) + PUNCH_MARGIN;
        let to_agent = Go {
            request: id,
            peer: viewer_fp,
            peer_candidates: with_observed(candidates, v.observed),
            observed: a.observed.into(),
            relay_token: token,
            relay_port: self.relay_port,
            quic_client: true,
            punch_in_ms: agent_wait.as_millis().min(u32::MAX as u128) as u32,
        };
        let to_viewer = Go {
            request: id,
            peer: agent_fp,
            peer_candidates: with_observed(r.agent_candidates, a.observed),
            observed: v.observed.into(),
            relay_token: token,
            relay_port: self.relay_port,
            quic_client: false,
            punch_in_ms: 0,
        };
        let observed = Observed { client: a.observed, server: v.observed };
        self.pair(r.agent, viewer, token);
        self.conns.get_mut(&viewer).expect("checked above").busy = true;
        vec![
            Action::AllowRelay { token, expires: now + REQUEST_TIMEOUT, observed },
            Action::Send(viewer, FromRendezvous::Go(to_viewer)),
            Action::Send(r.agent, FromRendezvous::Go(to_agent)),
        ]
    }

    /// A connection closed.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Action> {
        self.drop_conn(conn)
    }

    fn drop_conn(&mut self, conn: ConnId) -> Vec<Action> {
        self.unpair(conn);
        let Some(c) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        match c.who {
            Who::Agent(_) => {
                if let Some(id) = c.request {
                    if let Some(r) = self.requests.remove(&id) {
                        actions.push(Action::Send(r.viewer, FromRendezvous::Withdrawn { request: id }));
                    }
                }
            }
            Who::Viewer(fp) => {
                if self.online.get(&fp) == Some(&conn) {
                    self.online.remove(&fp);
                }
                let ids: Vec<u64> =
                    self.requests.iter().filter(|(_, r)| r.viewer == conn).map(|(&id, _)| id).collect();
                for id in ids {
                    let r = self.requests.remove(&id).expect("just listed");
                    if let Some(a) = self.conns.get_mut(&r.agent) {
                        a.request = None;
                    }
                    actions.push(Action::Send(r.agent, FromRendezvous::Refused { reason: Refusal::Offline }));
                }
            }
        }
        self.staff_dirty = true;
        actions
    }

    /// The administrator changed the directory: technicians no longer
    /// listed are signed out; everyone else keeps their connection.
    pub fn set_directory(&mut self, directory: Directory) -> Vec<Action> {
        self.directory = directory;
        let removed: Vec<ConnId> =
            self.online.iter().filter(|(fp, _)| self.directory.get(fp).is_none()).map(|(_, &c)| c).collect();
        let mut actions = Vec::new();
        for conn in removed {
            actions.extend(self.drop_conn(conn));
            actions.push(Action::Close(conn, CloseCode::NotAuthorized, "removed from the staff directory"));
        }
        self.staff_dirty = true;
        actions
    }

    /// Timers: unanswered requests, coalesced presence updates.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let expired: Vec<u64> =
            self.requests.iter().filter(|(_, r)| r.deadline <= now).map(|(&id, _)| id).collect();
        for id in expired {
            let r = self.requests.remove(&id).expect("just listed");
            if let Some(a) = self.conns.get_mut(&r.agent) {
                a.request = None;
            }
            actions.push(Action::Send(r.agent, FromRendezvous::Refused { reason: Refusal::NoAnswer }));
            actions.push(Action::Send(r.viewer, FromRendezvous::Withdrawn { request: id }));
            self.staff_dirty = true;
        }
        let due = self.last_push.is_none_or(|t| now.duration_since(t) >= STAFF_PUSH_INTERVAL);
        if self.staff_dirty && due {
            self.staff_dirty = false;
            let list = self.staff_list();
            if self.last_pushed.as_ref() == Some(&list) {
                return actions;
            }
            self.last_push = Some(now);
            self.last_pushed = Some(list.clone());
            for (&id, c) in &self.conns {
                if c.subscribed {
                    actions.push(Action::Send(id, list.clone()));
                }
            }
        }
        actions
    }

    /// When [`Registry::tick`] has something to do next, if ever.
    pub fn next_tick(&self, now: Instant) -> Option<Instant> {
        let request = self.requests.values().map(|r| r.deadline).min();
        let push = match (self.staff_dirty, self.last_push) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, Some(t)) => Some(t + STAFF_PUSH_INTERVAL),
        };
        request.into_iter().chain(push).min()
    }
}

/// The peer's own candidates (capped) plus the address the rendezvous saw.
fn with_observed(mut candidates: Vec<Candidate>, observed: SocketAddr) -> Vec<Candidate> {
    candidates.retain(|c| c.kind == CandidateKind::Host);
    candidates.truncate(CANDIDATES_MAX - 1);
    candidates.push(Candidate { addr: observed.into(), kind: CandidateKind::Observed });
    candidates
}

#[path = "registry_repunch.rs"]
mod repunch;

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
