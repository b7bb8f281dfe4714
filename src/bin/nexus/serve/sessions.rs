//! [`Sessions`]: the drivers' multi-document transactions mapped to NexusLite transactions.
//! A command with `autocommit: false` belongs to the transaction `txnNumber` of the session
//! `lsid`; the one that also carries `startTransaction: true` opens it: a connection of its
//! own to the database ([`nexus::Database::open`] joins the engine the server holds open)
//! and [`nexus::Database::begin`] on it. Every later command of that transaction runs on that
//! connection; `commitTransaction` / `abortTransaction` commit or roll it back.
//!
//! States of a session's transaction: (none) -> Active [`Sessions::start`] -> Committed
//! [`Sessions::commit`] (a repeated commit of the same number answers ok, as drivers retry
//! it) | Aborted [`Sessions::abort`], also on `endSessions`, on a newer `startTransaction`,
//! and after [`TXN_LIFETIME`] without a command ([`Sessions::expire`]).
//!
//! A transaction holds the database's write lock from its start (NexusLite's model: one
//! writer at a time); writes of other connections wait up to the busy timeout and then fail
//! with LockBusy, labelled TransientTransactionError inside a transaction so that
//! `with_transaction` retries. One transaction covers one database (a file): a command on
//! another database inside it is refused.

use super::error::{CmdError, CmdResult};
use super::state::Server;
use bson::{Bson, Document as BsonDocument};
use nexus::Database;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An open transaction idle this long is aborted (MongoDB's transactionLifetimeLimitSeconds).
pub const TXN_LIFETIME: Duration = Duration::from_secs(60);

/// The transaction fields of a command.
pub struct TxnFields {
    /// The session id's bytes (`lsid.id`).
    pub lsid: Vec<u8>,
    pub number: i64,
    pub start: bool,
}

/// Reads `lsid`, `txnNumber`, `autocommit: false`, `startTransaction`; None for a command
/// outside a transaction (autocommit absent).
pub fn fields(body: &BsonDocument) -> CmdResult<Option<TxnFields>> {
    match body.get("autocommit") {
        None => return Ok(None),
        Some(Bson::Boolean(false)) => {}
        Some(_) => {
            return Err(CmdError::bad_value(
                "autocommit may only be false (it marks a command of a transaction)",
            ))
        }
    }
    let lsid = match body.get("lsid") {
        Some(Bson::Document(d)) => match d.get("id") {
            Some(Bson::Binary(b)) => b.bytes.clone(),
            _ => return Err(CmdError::bad_value("lsid.id must be a UUID")),
        },
        _ => {
            return Err(CmdError::new(
                50768,
                "NotARetryableWriteCommand",
                "a transaction needs a session (lsid)",
            ))
        }
    };
    let number = match body.get("txnNumber") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        _ => return Err(CmdError::bad_value("a transaction needs txnNumber")),
    };
    let start = matches!(body.get("startTransaction"), Some(Bson::Boolean(true)));
    Ok(Some(TxnFields {
        lsid,
        number,
        start,
    }))
}

enum State {
    Active {
        db: String,
        handle: Arc<Database>,
        last_used: Instant,
    },
    Committed,
    Aborted,
}

struct Entry {
    number: i64,
    state: State,
}

/// The sessions' transactions, shared by all connections (a driver may send the commands
/// of one transaction over different connections of its pool).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<Vec<u8>, Entry>>,
}

fn no_such(number: i64) -> CmdError {
    CmdError::new(
        251,
        "NoSuchTransaction",
        format!("transaction {number} has been aborted or was never started"),
    )
}

impl Sessions {
    /// The database connection of the command's transaction, opening the transaction on a
    /// `startTransaction`. The pair: the transaction's database name and its connection.
    pub fn enter(
        &self,
        server: &Server,
        db: &str,
        t: &TxnFields,
    ) -> CmdResult<(String, Arc<Database>)> {
        if t.start {
            // A newer transaction of the session replaces the open one, rolled back.
            if let Some(old) = self.map.lock().remove(&t.lsid) {
                if old.number >= t.number {
                    let again = old.number == t.number;
                    self.map.lock().insert(t.lsid.clone(), old);
                    return Err(CmdError::new(
                        if again { 256 } else { 225 },
                        if again {
                            "TransactionCommitted"
                        } else {
                            "TransactionTooOld"
                        },
                        format!("txnNumber {} is not newer than the session's", t.number),
                    ));
                }
                rollback(old);
            }
            let handle = Arc::new(server.session_connection(db)?);
            handle.begin()?;
            self.map.lock().insert(
                t.lsid.clone(),
                Entry {
                    number: t.number,
                    state: State::Active {
                        db: db.to_owned(),
                        handle: Arc::clone(&handle),
                        last_used: Instant::now(),
                    },
                },
            );
            return Ok((db.to_owned(), handle));
        }
        let mut map = self.map.lock();
        match map.get_mut(&t.lsid) {
            Some(Entry {
                number,
                state:
                    State::Active {
                        db: txn_db,
                        handle,
                        last_used,
                    },
            }) if *number == t.number => {
                *last_used = Instant::now();
                Ok((txn_db.clone(), Arc::clone(handle)))
            }
            _ => Err(no_such(t.number)),
        }
    }

    /// commitTransaction.
    pub fn commit(&self, t: &TxnFields) -> CmdResult<()> {
        let mut map = self.map.lock();
        let entry = map
            .get_mut(&t.lsid)
            .filter(|e| e.number == t.number)
            .ok_or_else(|| no_such(t.number))?;
        match std::mem::replace(&mut entry.state, State::Committed) {
            State::Active { handle, .. } => {
                drop(map);
                match handle.commit() {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        if let Some(e) = self.map.lock().get_mut(&t.lsid) {
                            e.state = State::Aborted;
                        }
                        Err(e.into())
                    }
                }
            }
            State::Committed => Ok(()),
            State::Aborted => {
                entry.state = State::Aborted;
                Err(no_such(t.number))
            }
        }
    }

    /// abortTransaction.
    pub fn abort(&self, t: &TxnFields) -> CmdResult<()> {
        let mut map = self.map.lock();
        let entry = map
            .get_mut(&t.lsid)
            .filter(|e| e.number == t.number)
            .ok_or_else(|| no_such(t.number))?;
        match std::mem::replace(&mut entry.state, State::Aborted) {
            State::Active { handle, .. } => {
                drop(map);
                let _ = handle.rollback();
                Ok(())
            }
            State::Committed => {
                entry.state = State::Committed;
                Err(CmdError::new(
                    256,
                    "TransactionCommitted",
                    "cannot abort a committed transaction",
                ))
            }
            State::Aborted => Err(no_such(t.number)),
        }
    }

    /// endSessions: rolls back their open transactions and forgets them.
    pub fn end(&self, ids: &[Vec<u8>]) {
        let ended: Vec<Entry> = {
            let mut map = self.map.lock();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        ended.into_iter().for_each(rollback);
    }

    /// Rolls back the transactions idle longer than [`TXN_LIFETIME`]; how many.
    pub fn expire(&self) -> usize {
        let stale: Vec<Entry> = {
            let mut map = self.map.lock();
            let ids: Vec<Vec<u8>> = map
                .iter()
                .filter(|(_, e)| {
                    matches!(e.state, State::Active { last_used, .. } if last_used.elapsed() > TXN_LIFETIME)
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        let n = stale.len();
        stale.into_iter().for_each(rollback);
        n
    }

    /// Rolls back every open transaction (shutdown).
    pub fn abort_all(&self) {
        let all: Vec<Entry> = self.map.lock().drain().map(|(_, e)| e).collect();
        all.into_iter().for_each(rollback);
    }
}

fn rollback(e: Entry) {
    if let State::Active { handle, .. } = e.state {
        let _ = handle.rollback();
    }
}
