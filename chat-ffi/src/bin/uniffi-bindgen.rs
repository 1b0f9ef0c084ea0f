//! The bindings generator, built from the same uniffi version as the library:
//! `cargo run -p chat-ffi --features cli --bin uniffi-bindgen -- generate --library … --language …`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
