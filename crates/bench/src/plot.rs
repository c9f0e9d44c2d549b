//! PNG plots of a comparison.
