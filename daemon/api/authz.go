package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/store"
)

// Scope is what the API of a node can answer, from what the node's store user may read and
// write (Config.Scope).
type Scope int

const (
	// ScopeCluster is a server's API: the whole cluster.
	ScopeCluster Scope = iota
	// ScopeAgent is an agent's API: its store user reaches its own node, its pods, the applied
	// commit, the nodes and the Services (cluster.AgentPermissions). `shoal status`, `get pods`,
	// `get nodes`, `get services`, `top`, and the logs and exec of its own pods work; the rest
	// (cordon, drain, node remove, delete pod, tokens, Secrets, history, events, the other
	// kinds, and what concerns pods of other nodes) is refused with 403 and says to run the
	// command on a server node.
	ScopeAgent
)

// podPlacer is what a Backend that knows which pods are placed on its node has
// (cluster.Backend).
type podPlacer interface {
	PodPlacedHere(ctx context.Context, namespace, name string) (bool, error)
}

// agentKinds are the kinds an agent's API lists.
var agentKinds = map[string]bool{"Pod": true, "Node": true, "Service": true}

// forAgent wraps the handler of an agent's API: what the agent's store user may not reach is
// refused before it is asked for. (The join tokens refuse an agent themselves: Tokens.)
func (h *handler) forAgent(inner http.Handler) http.Handler {
	mux := http.NewServeMux()
	refuse := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusForbidden, fmt.Errorf("%s: %w", what, cluster.ErrNeedsServer))
		}
	}
	for pattern, what := range map[string]string{
		"POST /v1/nodes/{name}/{action}":         "cordon, uncordon and drain change the cluster",
		"DELETE /v1/nodes/{name}":                "node remove changes the cluster",
		"DELETE /v1/namespaces/{ns}/pods/{name}": "delete pod changes the cluster",
		"GET /v1/secrets/keyring":                "the keyring of the Secrets is a server's",
		"POST /v1/secrets/rotate-key":            "the keyring of the Secrets is a server's",
		"GET /v1/history":                        "the history of the commits is a server's to read",
		"GET /v1/events":                         "the events are a server's to read",
	} {
		mux.HandleFunc(pattern, refuse(what))
	}
	mux.HandleFunc("GET /v1/{kind}", func(w http.ResponseWriter, r *http.Request) {
		kind, ok := KindOf(r.PathValue("kind"))
		switch {
		case !ok:
		case !agentKinds[kind]:
			refuse("an agent reads no "+r.PathValue("kind")+" of the desired state")(w, r)
			return
		case kind == "Pod" && r.URL.Query().Get("name") != "":
			ns := r.URL.Query().Get("namespace")
			if ns == "" {
				ns = "default"
			}
			if !h.placedHere(w, r, ns, r.URL.Query().Get("name")) {
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
	for _, pattern := range []string{"GET /v1/namespaces/{ns}/pods/{name}/log", "POST /v1/namespaces/{ns}/pods/{name}/exec"} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if h.placedHere(w, r, r.PathValue("ns"), r.PathValue("name")) {
				inner.ServeHTTP(w, r)
			}
		})
	}
	mux.Handle("/", inner)
	return mux
}

// placedHere checks that a pod is placed on this node, and answers 403 when it is not: an agent
// cannot see where the others are.
func (h *handler) placedHere(w http.ResponseWriter, r *http.Request, namespace, name string) bool {
	pp, ok := h.cfg.Backend.(podPlacer)
	if !ok {
		return true
	}
	here, err := pp.PodPlacedHere(r.Context(), namespace, name)
	if err != nil {
		writeError(w, errorCode(err, http.StatusServiceUnavailable), fmt.Errorf("find pod %s/%s: %w", namespace, name, err))
		return false
	}
	if !here {
		writeError(w, http.StatusForbidden, fmt.Errorf("pod %s/%s is not on this node: %w", namespace, name, cluster.ErrNeedsServer))
	}
	return here
}

// errorCode is 403 for an error of what the node's store user may not do, else code.
func errorCode(err error, code int) int {
	if errors.Is(err, cluster.ErrNeedsServer) || store.IsPermissionDenied(err) {
		return http.StatusForbidden
	}
	return code
}
