//! Event Log placeholder
