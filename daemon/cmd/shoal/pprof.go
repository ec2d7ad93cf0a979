//go:build cgo && pprof

package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // the profiles, on http.DefaultServeMux
	"os"
)

// With the build tag pprof, a daemon started with $SHOAL_PPROF_SOCKET serves net/http/pprof on
// that unix socket, for profiling its memory and goroutines (go tool pprof, curl --unix-socket).
func init() {
	sock := os.Getenv("SHOAL_PPROF_SOCKET")
	if sock == "" || len(os.Args) < 2 || os.Args[1] != "daemon" {
		return
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return
	}
	go func() { _ = http.Serve(l, nil) }()
}
