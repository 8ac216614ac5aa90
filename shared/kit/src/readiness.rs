//! What a service's start-up has reached: the connections once they exist, and the step it is
//! at until then. The ops endpoints (`crate::http`) read it; `crate::service` writes it.

use std::sync::{Mutex, OnceLock};

use sqlx::PgPool;

use crate::bus::Bus;

/// The connections every service holds.
#[derive(Clone)]
pub struct Infra {
    pub pool: PgPool,
    pub bus: Bus,
}

/// Where start-up is, for `/readyz` and the logs.
#[derive(Default)]
pub struct Readiness {
    step: Mutex<&'static str>,
    pub(crate) infra: OnceLock<Infra>,
}

impl Readiness {
    pub(crate) fn set_step(&self, step: &'static str) {
        if let Ok(mut s) = self.step.lock() {
            *s = step;
        }
    }
    /// The connections, once start-up is done.
    pub fn infra(&self) -> Option<&Infra> {
        self.infra.get()
    }
    /// What start-up is doing now (`connecting to postgres`, …).
    pub fn step(&self) -> &'static str {
        self.step.lock().map(|s| *s).unwrap_or("starting")
    }
}
