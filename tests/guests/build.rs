//! Builds the test guests for wasm32-wasip1 (see `meshward-wasm-build`).

fn main() {
    if let Err(e) =
        meshward_wasm_build::build_script(meshward_wasm_build::GUESTS, &["tests/guests", "benches/trivial-filter"])
    {
        println!("cargo:warning={e}");
        std::process::exit(1);
    }
}
