package linux_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// podNetNS makes a network namespace with only loopback, as a pod without a network plane gets,
// removed at cleanup.
func podNetNS(t *testing.T) lifecycle.Sandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	path := filepath.Join(t.TempDir(), "netns")
	if err := libct.NewNetNS(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := libct.RemoveNetNS(path); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return lifecycle.Sandbox{UID: "probe", Namespace: "default", Name: "probe", NetNS: path}
}

// listenIn listens on TCP addr inside the network namespace at nsPath; the listener is closed
// at cleanup.
func listenIn(t *testing.T, nsPath, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in the pod's namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// serveGRPC serves gRPC on ln until cleanup, with the health service when hs is not nil.
func serveGRPC(t *testing.T, ln net.Listener, hs *health.Server) {
	t.Helper()
	srv := grpc.NewServer()
	if hs != nil {
		healthpb.RegisterHealthServer(srv, hs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
}

func TestProbeGRPC(t *testing.T) {
	sb := podNetNS(t)
	n := newNode(t, "127.0.0.1:1")
	hs := health.NewServer() // the server as a whole is SERVING
	hs.SetServingStatus("api", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	serveGRPC(t, listenIn(t, sb.NetNS, "127.0.0.1:9090"), hs)
	serveGRPC(t, listenIn(t, sb.NetNS, "127.0.0.1:9091"), nil)
	silent := listenIn(t, sb.NetNS, "127.0.0.1:9092") // accepts, never answers
	accepted := make(chan net.Conn, 16)
	go func() {
		defer close(accepted)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for c := range accepted {
			c.Close()
		}
	})
	// A server on the node's own loopback must not be what the probe reaches.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	serveGRPC(t, host, health.NewServer())
	hostPort := host.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		probe   lifecycle.GRPCProbe
		wantErr string // "" : success
	}{
		{"server serving", lifecycle.GRPCProbe{Port: 9090}, ""},
		{"service serving", lifecycle.GRPCProbe{Port: 9090, Service: "api"}, ""},
		{"service not serving", lifecycle.GRPCProbe{Port: 9090, Service: "down"}, `service "down" is unhealthy: it answered NOT_SERVING`},
		{"unknown service", lifecycle.GRPCProbe{Port: 9090, Service: "nope"}, `does not know the service "nope"`},
		{"no health service", lifecycle.GRPCProbe{Port: 9091}, "does not implement the grpc health protocol"},
		{"timeout", lifecycle.GRPCProbe{Port: 9092}, "timeout"},
		{"nothing on the port in the pod", lifecycle.GRPCProbe{Port: hostPort}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := n.driver.ProbeGRPC(ctx, sb, tt.probe)
			t.Logf("ProbeGRPC: %v", err)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ProbeGRPC: %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ProbeGRPC: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestProbeHTTPForHooksTakesAnyStatus(t *testing.T) {
	sb := podNetNS(t)
	n := newNode(t, "127.0.0.1:1")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}), ReadHeaderTimeout: 5 * time.Second}
	ln := listenIn(t, sb.NetNS, "127.0.0.1:8080")
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	tests := []struct {
		name    string
		probe   lifecycle.HTTPProbe
		success bool
	}{
		{"probe: 500 fails", lifecycle.HTTPProbe{Port: 8080, Path: "/"}, false},
		{"hook: 500 is an answer", lifecycle.HTTPProbe{Port: 8080, Path: "/", AnyStatus: true}, true},
		{"probe: HTTPS to plain HTTP fails", lifecycle.HTTPProbe{Scheme: "HTTPS", Port: 8080, Path: "/", AnyStatus: false}, false},
		{"hook: HTTPS answered in HTTP is sent again over HTTP", lifecycle.HTTPProbe{Scheme: "HTTPS", Port: 8080, Path: "/", AnyStatus: true}, true},
		{"hook: nothing on the port fails", lifecycle.HTTPProbe{Port: 8081, Path: "/", AnyStatus: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.driver.ProbeHTTP(ctx, sb, tt.probe); (err == nil) != tt.success {
				t.Errorf("ProbeHTTP: %v, want success %v", err, tt.success)
			}
		})
	}
}
