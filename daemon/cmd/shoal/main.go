//go:build cgo

// Command shoal is the Shoal daemon and its command line, in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/shoal-dev/shoal/daemon/cli"
	"github.com/shoal-dev/shoal/runtime/libct"
)

// daemonGCPercent is the daemon's GOGC unless $GOGC is set: its live heap is small (about
// 12 MiB with 110 pods) and it runs for months, so it collects when the heap has grown by half
// instead of Go's default of doubling. That keeps some 7-14 MiB less resident at 110-140 pods
// for no idle CPU that can be measured. $GOMEMLIMIT adds a soft memory limit (the Go runtime
// reads it; the default is none).
const daemonGCPercent = 50

func main() {
	// The container init and the per-container shim are re-executions of this binary.
	if libct.Main() {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "daemon" && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
