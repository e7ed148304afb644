//! The analyzer's integration tests, one binary: golden outputs and ground truth on the fixtures
//! recorded on a real kernel (no root needed), and broken or hostile captures.
mod suite;
