//go:build cgo

// Command shoal is the Shoal daemon and its command line, in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-dev/shoal/daemon/cli"
	"github.com/shoal-dev/shoal/runtime/libct"
)

func main() {
	// The container init and the per-container shim are re-executions of this binary.
	if libct.Main() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
