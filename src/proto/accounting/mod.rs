//! Accounting's sans-I/O half (RFC 2866): a verified Accounting-Request
//! decoded into the record the journal stores (`record`), and the live
//! sessions those records drive (`sessions`), kept with the fingerprints
//! and issued groups in the `ledger`. Storing records is the shell's job
//! (`server::journal`). `auth` ties a session to the Access-Accept it
//! began with.

pub mod auth;
pub mod ledger;
pub mod radacct;
pub mod record;
pub mod sessions;
