//! Create, start, wait for and delete a container from a bundle, with the library alone.
//!
//! ```sh
//! scripts/busybox-bundle /tmp/hello-bundle target/debug/casulo
//! cargo run -p casulo --example hello -- /tmp/hello-bundle
//! ```
//! (as root). The container runs the bundle's `process.args`.

use casulo::{Container, ContainerBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bundle = std::env::args().nth(1).ok_or("usage: hello BUNDLE_DIR")?;
    let root = std::env::temp_dir().join("casulo-example-state");
    let id = format!("hello-{}", std::process::id());

    // First thing: protect this program's binary from the container, and become the reaper
    // of the init (forked after it entered its pid namespace) so that we can wait for it.
    casulo::prepare_process()?;
    let container = ContainerBuilder::new(&id, &bundle).root(&root).create()?;
    println!(
        "created {} (init pid {}), status {}",
        container.id(),
        container.pid(),
        container.status()?
    );
    container.start()?;
    println!("started, status {}", container.status()?);
    let code = container.wait()?;
    println!("exited with status {code}, status {}", container.status()?);
    Container::load(&root, &id)?.delete()?;
    Ok(())
}
