//go:build !cgo

// Command shoal needs cgo: runc's libcontainer joins the container's namespaces in C before the
// Go runtime starts (nsenter), and containers get their seccomp profile through libseccomp.
// Build it with `make build`, or `CGO_ENABLED=1 go build -tags seccomp ./daemon/cmd/shoal` with
// a C compiler and libseccomp-dev installed.
package main

// The compiler's "undefined" error below is the message.
const _ = shoal_needs_cgo__build_with_make_build_or_CGO_ENABLED_1_go_build_tags_seccomp_with_libseccomp_dev

func main() {}
