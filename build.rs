// Embeds libtorch's folder as rpath so `odelt` runs without LD_LIBRARY_PATH, and keeps
// libtorch linked even if no symbol is referenced directly (otherwise CUDA is not detected).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
