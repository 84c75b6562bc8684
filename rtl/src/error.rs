//! Errors of the RTL harness.

/// Why an [`crate::RtlDevice`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtlError {
    #[error(
        "npukit-rtl was built without Verilator, so no RTL variant can run. Install it \
         (`apt-get install -y verilator`, or `bash scripts/test.sh`, which does it), then \
         rebuild: cargo picks the new `verilator` up by itself"
    )]
    NoVerilator,
    #[error(
        "this build left the RTL out (npukit-rtl without its `verilator` feature). For the \
         `npukit` command, build it with `--features cosim` (e.g. `cargo run --release -p npukit \
         --features cosim -- cosim ...`); Verilator must be installed (`apt-get install -y verilator`)"
    )]
    FeatureOff,
    #[error("no RTL variants: {0}")]
    NoVariants(String),
    #[error(
        "no RTL variant matches the configuration: `{field}` = {want}, but the closest \
         variant {closest} has {has} (checked-in variants: {known}; [dram] and [clock] may differ)"
    )]
    NoMatch {
        field: &'static str,
        want: String,
        closest: &'static str,
        has: String,
        known: String,
    },
    #[error("unknown RTL variant `{name}` (known: {known})")]
    UnknownVariant { name: String, known: String },
    #[error("RTL variant {name} was not built: {log}")]
    NotBuilt { name: &'static str, log: String },
    #[error("invalid configuration: {0}")]
    Config(#[from] npukit_sim::ConfigError),
    #[error("cannot create the Verilated model (VCD trace file {0:?} could not be opened?)")]
    Create(String),
}
