package linux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// dialIn opens a TCP connection from inside the network namespace at nsPath. The socket is made
// in that namespace and keeps it after the thread returns to its own.
func dialIn(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("pod network namespace: %w", err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter pod network namespace: %w", err)}
			return
		}
		// Only the socket's creation needs the namespace: connect runs on it afterwards.
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if rerr := netns.Set(orig); rerr != nil {
			// This thread is stuck in the pod's namespace: let it die with the goroutine.
			ch <- result{conn, err}
			return
		}
		goruntime.UnlockOSThread()
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func probeHost(sb lifecycle.Sandbox, host string) string {
	switch {
	case host != "":
		return host
	case sb.IP != "":
		return sb.IP
	}
	return "127.0.0.1" // a loopback-only pod: its own loopback, inside its namespace
}

// ProbeTCP connects to host:port from inside the pod's network namespace.
func (d *Driver) ProbeTCP(ctx context.Context, sb lifecycle.Sandbox, host string, port int) error {
	conn, err := dialIn(ctx, sb.NetNS, net.JoinHostPort(probeHost(sb, host), strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

// ProbeHTTP sends a GET from inside the pod's network namespace; 200–399 is success, any
// response with p.AnyStatus (lifecycle hooks, which the kubelet also sends again over plain
// HTTP when an HTTPS request gets an HTTP answer).
func (d *Driver) ProbeHTTP(ctx context.Context, sb lifecycle.Sandbox, p lifecycle.HTTPProbe) error {
	scheme := "http"
	if p.Scheme == "HTTPS" {
		scheme = "https"
	}
	err := httpGet(ctx, sb, p, scheme)
	if p.AnyStatus && scheme == "https" && err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		d.log.Info("HTTPS lifecycle hook got an HTTP response: sending it again over HTTP", "pod", sb.Namespace+"/"+sb.Name, "port", p.Port)
		err = httpGet(ctx, sb, p, "http")
	}
	return err
}

func httpGet(ctx context.Context, sb lifecycle.Sandbox, p lifecycle.HTTPProbe, scheme string) error {
	addr := net.JoinHostPort(probeHost(sb, p.Host), strconv.Itoa(p.Port))
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return dialIn(ctx, sb.NetNS, addr) },
		DisableKeepAlives: true,
		// The kubelet does not verify the certificates of HTTPS probes.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	path := p.Path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "shoal-probe/1")
	for k, v := range p.Headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10)) // drain for a clean close
	if !p.AnyStatus && (resp.StatusCode < 200 || resp.StatusCode >= 400) {
		return fmt.Errorf("HTTP probe failed with status %d", resp.StatusCode)
	}
	return nil
}

// ProbeGRPC calls grpc.health.v1.Health/Check on the pod's address from inside the pod's network
// namespace, as the kubelet's gRPC prober does (plain text, no credentials): SERVING is success;
// no connection, a timeout, a server without the health service, an unknown service and any
// other status are failures whose error says which.
func (d *Driver) ProbeGRPC(ctx context.Context, sb lifecycle.Sandbox, p lifecycle.GRPCProbe) error {
	addr := net.JoinHostPort(probeHost(sb, ""), strconv.Itoa(p.Port))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return dialIn(ctx, sb.NetNS, a) }),
		grpc.WithUserAgent("shoal-probe/1"),
	)
	if err != nil {
		return fmt.Errorf("grpc probe of %s: %w", addr, err)
	}
	defer conn.Close()
	// A refused connection fails at once, as a refused httpGet or tcpSocket probe does.
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.Service})
	if err != nil {
		return grpcProbeError(ctx, addr, p.Service, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc probe of %s: service %q is unhealthy: it answered %s", addr, p.Service, st)
	}
	return nil
}

// grpcProbeError says why a health check call failed.
func grpcProbeError(ctx context.Context, addr, service string, err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("grpc probe of %s: the server does not implement the grpc health protocol (grpc.health.v1.Health): %s", addr, st.Message())
	case codes.NotFound:
		return fmt.Errorf("grpc probe of %s: the server does not know the service %q: %s", addr, service, st.Message())
	case codes.DeadlineExceeded, codes.Canceled:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("grpc probe of %s: timeout: no health answer within the probe's timeout (%s)", addr, st.Message())
		}
	case codes.Unavailable:
		return fmt.Errorf("grpc probe of %s: failed to connect: %s", addr, st.Message())
	}
	return fmt.Errorf("grpc probe of %s: health rpc failed: %w", addr, err)
}
