//! Issuing certificates through the token: the CAs (`ca`), one leaf
//! (`leaf`: the one path every leaf certificate takes), and the parallel
//! pipeline that issues a whole bundle's leaves on the token's sessions.

pub mod ca;
pub mod from_csr;
pub mod leaf;
pub mod pipeline;
pub mod sessions;
