//! Simulation: the statistical call model (`rand_distr`) used by the sim trunk, and the
//! discrete-event simulator that drives the core in virtual time. Randomness lives here, never in `core`.

pub mod bench;
pub mod bench_compliance;
pub mod des;
pub mod model;
pub mod report;
pub mod rolling;
pub mod run;
pub mod transcript;

pub use des::{SimContact, SimOptions, simulate};
pub use model::{CallModel, SampledCall, SampledOutcome};
pub use report::SimReport;
