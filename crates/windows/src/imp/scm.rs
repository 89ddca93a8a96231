//! SCM placeholder
