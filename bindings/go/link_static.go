//go:build !nexus_dynamic

package nexus

// Static linking (the default): the Rust static library is linked into the Go
// binary, so the result has no run-time dependency on libnexus.so.
// Build the library first with `cargo build --release` in the repository root.

/*
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libnexus.a -lpthread -ldl -lm
*/
import "C"
