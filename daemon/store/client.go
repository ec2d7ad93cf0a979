package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// DefaultPort is etcd's client port, used when a store URL names a host without one.
const DefaultPort = "2379"

const (
	defaultDialTimeout = 5 * time.Second
	closeTimeout       = 2 * time.Second
)

// Config says how to reach the store.
type Config struct {
	// Endpoints are client URLs: http://host:port, https://host:port or unix:///path.
	Endpoints []string
	// TLS is used as is when set. Otherwise CertFile/KeyFile (a client certificate) and
	// CAFile (the CA that signed the servers) build one; Secure alone uses the system roots.
	TLS      *tls.Config
	CertFile string
	KeyFile  string
	CAFile   string
	Secure   bool
	// AutoSync, when set, refreshes the endpoints from the members' advertised client URLs at
	// this interval, so that a client follows members that join and leave.
	AutoSync time.Duration
	// DialTimeout bounds connecting. Default 5 s.
	DialTimeout time.Duration
	// Logger receives the client's warnings and errors. Nil discards them.
	Logger *slog.Logger
}

// Client is a connection to the store. It is safe for concurrent use. Close stops everything
// started through it.
type Client struct {
	cli       *clientv3.Client
	ctx       context.Context // ends when Close is called
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	requests  *requestCounts
	denied    chan struct{}
}

// Requests counts the client's key-value requests since it connected.
type Requests struct {
	// Reads are Range requests (Get, List); Writes are Put, DeleteRange and Txn requests.
	Reads, Writes int64
	// KeysRead is how many keys the reads returned.
	KeysRead int64
	// BytesWritten is the size of the write requests as sent (keys, values and conditions).
	BytesWritten int64
	// WatchEvents is how many events the client's watches received.
	WatchEvents int64
}

// Sub returns the requests counted since an earlier reading, r - earlier.
func (r Requests) Sub(earlier Requests) Requests {
	return Requests{Reads: r.Reads - earlier.Reads, Writes: r.Writes - earlier.Writes, KeysRead: r.KeysRead - earlier.KeysRead,
		BytesWritten: r.BytesWritten - earlier.BytesWritten, WatchEvents: r.WatchEvents - earlier.WatchEvents}
}

// requestCounts counts a client's requests, from a gRPC interceptor, and the events of its
// watches.
type requestCounts struct{ reads, writes, keysRead, bytesWritten, watchEvents atomic.Int64 }

// sized is what etcd's request messages have: their encoded size.
type sized interface{ Size() int }

func (r *requestCounts) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	switch method {
	case "/etcdserverpb.KV/Range":
		r.reads.Add(1)
		if resp, ok := reply.(*etcdserverpb.RangeResponse); ok && err == nil {
			r.keysRead.Add(int64(len(resp.Kvs)))
		}
	case "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn":
		r.writes.Add(1)
		if m, ok := req.(sized); ok {
			r.bytesWritten.Add(int64(m.Size()))
		}
	}
	return err
}

// Requests returns how many reads and writes the client has sent, and the events its watches
// received.
func (c *Client) Requests() Requests {
	return Requests{Reads: c.requests.reads.Load(), Writes: c.requests.writes.Load(), KeysRead: c.requests.keysRead.Load(),
		BytesWritten: c.requests.bytesWritten.Load(), WatchEvents: c.requests.watchEvents.Load()}
}

// Connect connects to the store and checks that it answers.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("connect to the store: no endpoints; give --store etcd://host:2379 or use the embedded store")
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = defaultDialTimeout
	}
	counts := &requestCounts{}
	denied := make(chan struct{}, 1)
	refusals := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err != nil && IsPermissionDenied(rpctypes.Error(err)) {
			select {
			case denied <- struct{}{}:
			default:
			}
		}
		return err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          dial,
		AutoSyncInterval:     cfg.AutoSync,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tlsCfg,
		Logger:               newZapLogger(cfg.Logger),
		// reconnect quickly after the store restarts (gRPC's default waits up to 2 min)
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: dial,
		}), grpc.WithChainUnaryInterceptor(counts.intercept, refusals)},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to the store at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	// Any user may list the members, whatever keys it may read.
	if _, err := cli.MemberList(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connect to the store at %s: %w; check that etcd runs there and that "+
			"the address and TLS files are right", strings.Join(cfg.Endpoints, ","), err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	return &Client{cli: cli, ctx: cctx, cancel: ccancel, requests: counts, denied: denied}, nil
}

// Refused is signalled (at most one signal waits) when the store refuses a request for its
// user's permissions, or because the certificate names no user: a node that was removed from
// the cluster learns it from the first request it makes afterwards, without polling.
func (c *Client) Refused() <-chan struct{} { return c.denied }

func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.TLS != nil {
		return cfg.TLS, nil
	}
	if cfg.CertFile == "" && cfg.KeyFile == "" && cfg.CAFile == "" {
		if cfg.Secure {
			return &tls.Config{MinVersion: tls.VersionTLS12}, nil
		}
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
	t, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load the store's TLS files: %w; check the certificate, key and CA paths", err)
	}
	return t, nil
}

// Etcd returns the underlying etcd client for operations the helpers do not cover.
func (c *Client) Etcd() *clientv3.Client { return c.cli }

// Close stops the registrations, leaderships and watches started through c and closes the
// connection. Registrations and leaderships still open are not revoked: their leases expire.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		err = c.cli.Close()
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close the store client: %w", err)
	}
	return nil
}

// goOwned runs f in a goroutine that Close waits for.
func (c *Client) goOwned(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// ParseStoreURL parses a --store value: etcd://host[:port][,host[:port]...] for plain
// connections, etcds://... for TLS, or unix:///path for a local socket. The port defaults
// to 2379.
func ParseStoreURL(s string) (Config, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Config{}, fmt.Errorf("store URL %q: write etcd://host:2379[,host:2379...] or etcds://... for TLS", s)
	}
	var cfg Config
	var out string
	switch scheme {
	case "etcd":
		out = "http"
	case "etcds":
		out = "https"
		cfg.Secure = true
	case "unix", "unixs":
		if !strings.HasPrefix(rest, "/") || strings.ContainsFunc(rest, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == ',' || r == '?' || r == '#' || r == '%'
		}) {
			return Config{}, fmt.Errorf("store URL %q: write a socket as unix:///absolute/path", s)
		}
		cfg.Endpoints = []string{s}
		cfg.Secure = scheme == "unixs"
		return cfg, nil
	default:
		return Config{}, fmt.Errorf("store URL %q: scheme %q: use etcd://, etcds:// or unix://", s, scheme)
	}
	if rest == "" {
		return Config{}, fmt.Errorf("store URL %q: no hosts; write etcd://host:2379", s)
	}
	for _, h := range strings.Split(rest, ",") {
		h = strings.TrimSuffix(h, "/")
		if h == "" || strings.ContainsAny(h, "/?#@ \t") {
			return Config{}, fmt.Errorf("store URL %q: host %q: write host or host:port", s, h)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// no port given (a bare IPv6 address must be bracketed)
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), DefaultPort
			if strings.Contains(host, ":") && !strings.HasPrefix(h, "[") {
				return Config{}, fmt.Errorf("store URL %q: write an IPv6 address as [addr]:port", s)
			}
		}
		if !validHost(host) {
			return Config{}, fmt.Errorf("store URL %q: host %q: write a host name or an IP address", s, h)
		}
		if err := checkPort(port); err != nil {
			return Config{}, fmt.Errorf("store URL %q: %w", s, err)
		}
		u := url.URL{Scheme: out, Host: net.JoinHostPort(host, port)}
		cfg.Endpoints = append(cfg.Endpoints, u.String())
	}
	return cfg, nil
}

// validHost accepts IP addresses and DNS-style host names.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func checkPort(p string) error {
	if p == "" || len(p) > 5 {
		return fmt.Errorf("port %q: want 1-65535", p)
	}
	n := 0
	for _, r := range p {
		if r < '0' || r > '9' {
			return fmt.Errorf("port %q: want 1-65535", p)
		}
		n = n*10 + int(r-'0')
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1-65535", p)
	}
	return nil
}
