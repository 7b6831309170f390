//! Writes the seed corpora (`umbra_fuzz::seeds`) to `corpus/volume_ops/` and `corpus/open_diff/`,
//! after checking that each seed runs cleanly through its target.
//!
//! Run from `fuzz/`: `cargo run --example gen_corpus`

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    type Run = fn(&[u8]);
    let targets: [(&str, Vec<umbra_fuzz::seeds::Seed>, Run); 2] = [
        (
            "volume_ops",
            umbra_fuzz::seeds::volume_ops(),
            umbra_fuzz::volume_ops::run,
        ),
        (
            "open_diff",
            umbra_fuzz::seeds::open_diff(),
            umbra_fuzz::open_diff::run,
        ),
    ];
    for (target, seeds, run) in targets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in seeds {
            run(&bytes);
            std::fs::write(dir.join(format!("seed-{name}")), &bytes)?;
            println!("{target}/seed-{name}: {} bytes", bytes.len());
        }
    }
    Ok(())
}
