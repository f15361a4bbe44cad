//! Finding migrations on disk.
