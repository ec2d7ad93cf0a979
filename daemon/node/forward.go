package node

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/membership"
	"github.com/shoal-dev/shoal/runtime"
)

// forwardingBackend is the API's backend on a node of a cluster: it reads the cluster from the
// store, and reaches the pods of other nodes (logs, exec) through their cluster endpoints, with
// this node's certificate, as the Kubernetes API server reaches kubelets.
type forwardingBackend struct {
	*cluster.Backend
	tls *tls.Config // this node's client TLS; nil: no forwarding
}

// remote returns a client of the node that runs the pod, or nil when the pod is this node's (or
// its node cannot be reached, and the local backend says why).
func (f *forwardingBackend) remote(ctx context.Context, namespace, name string) (*client.Client, error) {
	if f.tls == nil {
		return nil, nil
	}
	node, endpoint, err := f.PodNode(ctx, namespace, name)
	if err != nil || node == "" || node == f.Node || endpoint == "" {
		return nil, nil //nolint:nilerr // the local backend reports the error
	}
	return client.New(client.Config{Server: endpoint, TLS: f.tls})
}

func (f *forwardingBackend) Logs(ctx context.Context, namespace, name, container string, opts runtime.LogOptions, w io.Writer) error {
	c, err := f.remote(ctx, namespace, name)
	if err != nil {
		return err
	}
	if c == nil {
		return f.Backend.Logs(ctx, namespace, name, container, opts, w)
	}
	defer c.Close()
	q := url.Values{}
	if container != "" {
		q.Set("container", container)
	}
	for k, v := range map[string]bool{"follow": opts.Follow, "previous": opts.Previous, "timestamps": opts.Timestamps} {
		if v {
			q.Set(k, "true")
		}
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	return c.Logs(ctx, namespace, name, q, w)
}

func (f *forwardingBackend) Exec(ctx context.Context, namespace, name, container string, opts runtime.ExecOptions) (int, error) {
	c, err := f.remote(ctx, namespace, name)
	if err != nil {
		return -1, err
	}
	if c == nil {
		return f.Backend.Exec(ctx, namespace, name, container, opts)
	}
	defer c.Close()
	return c.Exec(ctx, namespace, name, container, opts.Command, opts.Stdin, opts.Stdout, opts.Stderr)
}

// clusterHandler is the node's cluster endpoint: the joins of other nodes (membership), and the
// API of this node's pods for other nodes (local, which never forwards further).
func clusterHandler(m *membership.Membership, local http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", nodesOnly(local))
	mux.Handle(join.Path, m.JoinHandler(func(ctx context.Context, name string) (bool, error) {
		return cluster.NodeRegistered(ctx, m.Store(), name)
	}))
	return mux
}

// nodesOnly lets through only requests with a client certificate of the cluster CA (checked by
// the TLS handshake): other nodes forwarding to this one.
func nodesOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"only the cluster's nodes may call this endpoint, with their certificates"}`+"\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}
