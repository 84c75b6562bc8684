//! Generators: the C header and the ABI reference in docs/abi.md.
