//! Notification channels of a workspace: where they point ([`target`]), how they are stored
//! with their secrets sealed ([`store`]), and their HTTP API ([`api`]).

pub(crate) mod api;
pub(crate) mod store;
pub(crate) mod target;
