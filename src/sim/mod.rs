//! Simulation: the statistical call model (`rand_distr`) used by the sim trunk, and later the
//! discrete-event simulator. Randomness lives here, never in `core`.

pub mod model;

pub use model::{CallModel, SampledCall, SampledOutcome};
