//! Helpers live in e2e/; this crate exists to hold the end-to-end tests.
