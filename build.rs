//! Compiles kubelet's plugin-registration and DRA protos (src/dra/proto/) into Rust with protox,
//! a pure-Rust protoc, so a build never needs a system protoc. Only with the `kubernetes` feature,
//! the only one that serves kubelet; other builds compile nothing here.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    // Cargo compiles the build script with the package's features, and sets CARGO_FEATURE_*
    // for it to read; the cfg is needed anyway because protox and tonic-prost-build are optional
    // build-dependencies enabled by that feature.
    #[cfg(feature = "kubernetes")]
    if std::env::var_os("CARGO_FEATURE_KUBERNETES").is_some() {
        compile_kubelet_protos()?;
    }
    Ok(())
}

#[cfg(feature = "kubernetes")]
fn compile_kubelet_protos() -> Result<(), Box<dyn std::error::Error>> {
    const DIR: &str = "src/dra/proto";
    const FILES: [&str; 2] = ["pluginregistration.proto", "dra.proto"];
    for file in FILES {
        println!("cargo:rerun-if-changed={DIR}/{file}");
    }
    let descriptors = protox::compile(FILES, [DIR])?;
    // Server and client: the server is the plugin; the client is `dra-plugin --probe` and the
    // tests' fake kubelet, generic over the transport (both dial unix sockets themselves).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
