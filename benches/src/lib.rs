//! Criterion benchmarks of the umbra workspace live in `benches/`; this library is empty.
