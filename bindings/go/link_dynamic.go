//go:build nexus_dynamic

package nexus

// Dynamic linking, selected with `-tags nexus_dynamic`: the binary links
// against target/release/libnexus.so and records that directory as an rpath.

/*
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lnexus -Wl,-rpath,${SRCDIR}/../../target/release
*/
import "C"
