//! Whole-GIC scenarios (filled in below).
