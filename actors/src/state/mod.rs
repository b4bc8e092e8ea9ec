//! What this node holds in memory and every actor reads: the [`job`]s on
//! their way, the [`lease`]s it holds, the organizations' active flags
//! ([`orgs`]) and the suppression lists ([`suppress`]).

pub mod job;
pub mod lease;
pub mod orgs;
pub mod suppress;
