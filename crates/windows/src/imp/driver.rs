//! driver placeholder
