//! CCA attestation tokens on the build machine: decoding, verification and comparison with
//! predicted values.
