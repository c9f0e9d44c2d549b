//! Rebuilds the server when the web client's files change (they are embedded with include_dir).

fn main() {
    println!("cargo:rerun-if-changed=../../web/static");
}
