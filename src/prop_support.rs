//! Settings shared by the property tests (`proptest`) of the unit tests.

use proptest::test_runner::{Config, RngSeed};

/// A proptest configuration: `cases` cases from a fixed `seed`, so that `make test` runs the
/// same cases every time. `PROPTEST_CASES` and `PROPTEST_RNG_SEED` (proptest's own variables)
/// override them: the long mode is e.g. `PROPTEST_CASES=2000 PROPTEST_RNG_SEED=$RANDOM cargo
/// test --release --lib prop_`. The default counts keep all property tests to about a minute
/// of `make test`, whose release suite runs twice (wasp and memlog).
pub(crate) fn config(cases: u32, seed: u64) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(seed);
    }
    // A failing case is reported shrunk, and found again from the same seed: no
    // `proptest-regressions/` files in the tree.
    config.failure_persistence = None;
    // Shrinking reruns whole cases: enough tries to get a failure down to a few steps.
    config.max_shrink_iters = 2048;
    config
}
