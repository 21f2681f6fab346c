//! A scriptable mock provider (placeholder).
