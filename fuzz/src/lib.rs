//! The fuzz targets' logic lives in the workspace's test-support crate, where ordinary tests
//! replay the corpora through it; the targets here call it.

pub use umbra_test_support::fuzz::*;
pub use umbra_test_support::vds_fuzz;
pub use umbra_test_support::vss_fuzz;
