//! The server nonces of one request, shared by every connection that
//! tries to become its session: one verification exchange at a time, a
//! few in all (`lifebuoy_proto::verification::NonceBudget` has the rule
//! and why). A connection takes a [`NonceTicket`] before its hello
//! reveals a nonce; dropping the ticket (the exchange failed) lets the
//! next connection try, keeping it (the exchange succeeded) ends the
//! request's exchanges for good.

use std::sync::{Arc, Mutex};

use lifebuoy_proto::verification::{NonceBudget, NonceRefused};

/// The nonces of one request.
#[derive(Clone, Debug, Default)]
pub struct NonceGate(Arc<Mutex<NonceBudget>>);

impl NonceGate {
    /// A fresh request's nonces.
    pub fn new() -> NonceGate {
        NonceGate::default()
    }

    /// Takes the request's nonce for one exchange.
    pub fn take(&self) -> Result<NonceTicket, NonceRefused> {
        self.0.lock().expect("not poisoned").take()?;
        Ok(NonceTicket { gate: self.clone(), kept: false })
    }

    /// Nonces handed out so far.
    pub fn handed_out(&self) -> u8 {
        self.0.lock().expect("not poisoned").handed_out()
    }
}

/// One exchange's hold on the request's nonce.
#[derive(Debug)]
pub struct NonceTicket {
    gate: NonceGate,
    kept: bool,
}

impl NonceTicket {
    /// The exchange completed: no other exchange gets a nonce.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for NonceTicket {
    fn drop(&mut self) {
        if !self.kept {
            self.gate.0.lock().expect("not poisoned").release();
        }
    }
}
