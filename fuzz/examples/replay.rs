//! Replays inputs of a target with tracing: `cargo run --example replay -- volume_ops FILE...`
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("target name");
    umbra_fuzz::volume_ops::TRACE.store(true, std::sync::atomic::Ordering::Relaxed);
    for path in args {
        let data = std::fs::read(&path).expect("read input");
        eprintln!("== {path}");
        match target.as_str() {
            "volume_ops" => eprintln!("{:?}", umbra_fuzz::volume_ops::run_with_stats(&data)),
            "open_diff" => umbra_fuzz::open_diff::run(&data),
            other => panic!("unknown target {other}"),
        }
    }
}
