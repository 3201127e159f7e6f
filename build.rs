//! Compresses the dashboard's assets (`web/`) with gzip at build time, so
//! the binary carries them small and serves them as they are to browsers.

use std::io::Write;
use std::path::Path;

const ASSETS: &[&str] = &["index.html", "app.js", "style.css", "api.html"];

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ASSETS {
        let source = Path::new("web").join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        let raw = std::fs::read(&source).unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&raw).expect("gzip in memory");
        let gz = encoder.finish().expect("gzip in memory");
        std::fs::write(Path::new(&out_dir).join(format!("{name}.gz")), gz).expect("write to OUT_DIR");
    }
}
