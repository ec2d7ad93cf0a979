package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/membership"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/runtime"
)

// forwardingBackend is the API's backend on a node of a cluster: it reads the cluster from the
// store, and reaches the pods of other nodes (logs, exec) through their cluster endpoints, with
// this node's certificate, as the Kubernetes API server reaches kubelets.
type forwardingBackend struct {
	*cluster.Backend
	tls *tls.Config // this node's client TLS; nil: no forwarding (an agent: its CLI sees its own pods only)
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

// clusterHandler is the node's cluster endpoint: the joins of other nodes (membership, which
// checks their tokens), and the logs and exec of the pods placed on this node, for the servers
// that forward them for their CLI's users (local, which never forwards further). Nothing else:
// a node's certificate does not open this node's API.
func clusterHandler(m *membership.Membership, backend *cluster.Backend, local http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(join.Path, m.JoinHandler(func(ctx context.Context, name string) (bool, error) {
		return cluster.NodeRegistered(ctx, m.Store(), name)
	}, func(ctx context.Context, name string) (bool, error) {
		return cluster.NodeKnown(ctx, m.Store(), name)
	}))
	pods := serversOnly(func(ctx context.Context, name string) (bool, error) {
		return cluster.NodeRegistered(ctx, m.Store(), name)
	}, podsHere(backend, local))
	mux.Handle("GET /v1/namespaces/{ns}/pods/{name}/log", pods)
	mux.Handle("POST /v1/namespaces/{ns}/pods/{name}/exec", pods)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		refuse(w, http.StatusForbidden, "the cluster endpoint serves other nodes only the logs and exec of this node's pods, "+
			"for a server that forwards its CLI's; use the API of a server node (its socket, or --api-listen)")
	})
	return mux
}

// serversOnly lets through only requests with a client certificate of the cluster CA (checked by
// the TLS handshake) that names a server (the role the CA signed into it: checked offline, and an
// agent cannot sign one) of a node registered now (a removed node cannot register again).
func serversOnly(registered func(ctx context.Context, name string) (bool, error), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			refuse(w, http.StatusUnauthorized, "only the cluster's nodes may call this endpoint, with their certificates")
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		node := cert.Subject.CommonName
		switch role := pki.CertRole(cert); role {
		case string(join.RoleServer):
		case "":
			refuse(w, http.StatusForbidden, "the certificate of node "+node+" names no role (an earlier version signed it): only a server's "+
				"certificate opens another node's cluster endpoint; a server that holds the CA key signs itself one with its role when it starts")
			return
		default:
			refuse(w, http.StatusForbidden, "node "+node+" has the role "+role+": only servers call another node's cluster endpoint, to "+
				"forward the logs and exec of its pods")
			return
		}
		ok, err := registered(r.Context(), node)
		if err != nil {
			w.Header().Set("Retry-After", "1")
			refuse(w, http.StatusServiceUnavailable, "check the calling node's registration: "+err.Error())
			return
		}
		if !ok {
			refuse(w, http.StatusForbidden, "node "+node+" is not registered in the cluster (stopped, or removed): a node calls "+
				"another's cluster endpoint only while it runs")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// podsHere lets through only the requests for pods placed on this node.
func podsHere(b *cluster.Backend, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		here, err := b.PodPlacedHere(r.Context(), ns, name)
		if err != nil {
			w.Header().Set("Retry-After", "1")
			refuse(w, http.StatusServiceUnavailable, "find pod "+ns+"/"+name+": "+err.Error())
			return
		}
		if !here {
			refuse(w, http.StatusForbidden, "pod "+ns+"/"+name+" is not placed on this node: the cluster endpoint serves the logs and "+
				"exec of this node's pods only")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Error{Error: msg})
}
