//! The node's life: restarts on the same data directory, draining on shutdown.
