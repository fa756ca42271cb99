//! This package has no library code: it is the home of the CRI test suite (`tests/cri.rs`),
//! which drives a private containerd's CRI plugin over casulo as the kubelet does. It is a
//! workspace member of its own so that the gRPC client it needs (tonic, prost, tokio) is built
//! for that suite alone.
