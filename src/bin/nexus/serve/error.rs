//! [`CmdError`]: a command's failure as MongoDB reports it, `{ok: 0, errmsg, code, codeName}`,
//! and the one mapping of NexusLite's [`nexus::Error`] to MongoDB's codes ([`from_nexus`]).

use bson::{doc, Document as BsonDocument};

/// A failed command: MongoDB's numeric code, its name and a message.
#[derive(Debug, Clone)]
pub struct CmdError {
    pub code: i32,
    pub name: &'static str,
    pub msg: String,
}

impl CmdError {
    pub fn new(code: i32, name: &'static str, msg: impl Into<String>) -> Self {
        Self {
            code,
            name,
            msg: msg.into(),
        }
    }

    /// 2 BadValue: an argument of the wrong type or value.
    pub fn bad_value(msg: impl Into<String>) -> Self {
        Self::new(2, "BadValue", msg)
    }

    /// 9 FailedToParse: a command that does not have the shape it must.
    pub fn parse(msg: impl Into<String>) -> Self {
        Self::new(9, "FailedToParse", msg)
    }

    /// 26 NamespaceNotFound.
    pub fn ns_not_found(msg: impl Into<String>) -> Self {
        Self::new(26, "NamespaceNotFound", msg)
    }

    /// 59 CommandNotFound.
    pub fn no_command(name: &str) -> Self {
        Self::new(59, "CommandNotFound", format!("no such command: '{name}'"))
    }

    /// 13 Unauthorized.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::new(13, "Unauthorized", msg)
    }

    /// 73 InvalidNamespace: a database or collection name this server cannot hold.
    pub fn invalid_ns(msg: impl Into<String>) -> Self {
        Self::new(73, "InvalidNamespace", msg)
    }

    /// The reply document.
    pub fn to_doc(&self) -> BsonDocument {
        doc! {"ok": 0.0, "errmsg": &self.msg, "code": self.code, "codeName": self.name}
    }
}

/// MongoDB's code for a NexusLite error.
pub fn code_of(e: &nexus::Error) -> (i32, &'static str) {
    use nexus::Error as E;
    match e {
        E::DuplicateKey(_) => (11000, "DuplicateKey"),
        E::NoCollection(_) => (26, "NamespaceNotFound"),
        E::Parse(_) => (9, "FailedToParse"),
        E::InvalidArgument(_) => (2, "BadValue"),
        E::NotFound(_) => (2, "BadValue"),
        E::Unsupported(_) => (238, "NotImplemented"),
        E::Busy(_) => (46, "LockBusy"),
        E::ReadOnly(_) | E::Txn(_) => (20, "IllegalOperation"),
        _ => (1, "InternalError"),
    }
}

/// [`CmdError`] of a NexusLite error.
pub fn from_nexus(e: nexus::Error) -> CmdError {
    let (code, name) = code_of(&e);
    CmdError::new(code, name, e.to_string())
}

impl From<nexus::Error> for CmdError {
    fn from(e: nexus::Error) -> Self {
        from_nexus(e)
    }
}

/// A command's result.
pub type CmdResult<T = BsonDocument> = Result<T, CmdError>;
