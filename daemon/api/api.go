// Package api is the HTTP API of a Shoal daemon, served on a unix socket for the local CLI and
// optionally on TCP with TLS and a bearer token for remote use. It is read-mostly: Git is the only
// way to change the desired state. Reads are answered from a snapshot of the shared store; logs and
// exec reach the pod's node. Its subpackage wire holds what clients share with it (the error body,
// the framing of exec streams) without the server's dependencies.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/api/wire"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Backend is what the API serves.
type Backend interface {
	Snapshot(ctx context.Context) (*cluster.Snapshot, error)
	Events(ctx context.Context) ([]cluster.Event, error)
	Logs(ctx context.Context, namespace, name, container string, opts runtime.LogOptions, w io.Writer) error
	Exec(ctx context.Context, namespace, name, container string, opts runtime.ExecOptions) (int, error)
	// Cordon marks a node unschedulable (drain: and moves its Deployment pods), or clears the mark.
	Cordon(ctx context.Context, node string, cordon, drain bool) error
	// StoreLeader names the member that leads the store ("" when unknown).
	StoreLeader(ctx context.Context) string
	// RemoveNode deletes a stopped node for good (ErrConflict while it runs).
	RemoveNode(ctx context.Context, node string) error
	// DeletePod asks for a pod to be deleted and replaced by its controller (ErrNotFound for
	// an unknown pod).
	DeletePod(ctx context.Context, namespace, name string) error
}

// ErrConflict is returned by a Backend for a request the current state does not allow.
var ErrConflict = cluster.ErrNodeRunning

// ErrNotFound is returned by a Backend for an unknown pod or container.
var ErrNotFound = runtime.ErrNotFound

// Config configures the handler.
type Config struct {
	Backend Backend
	// Token, when set, is required as "Authorization: Bearer <token>" (TCP listeners).
	Token   string
	Metrics http.Handler
	// Netplane, when set, returns what the node's service load balancer holds.
	Netplane func() (any, error)
	// Tokens, when set, manages the cluster's join tokens (`shoal token`).
	Tokens Tokens
	// Scope is what the node's store user lets the API answer: ScopeCluster on a server,
	// ScopeAgent on an agent.
	Scope  Scope
	Logger *slog.Logger
}

// Tokens manages the cluster's join tokens (membership.Membership implements it). Its errors
// wrap join.ErrNotServer on a node that cannot make tokens (403), join.ErrBadTokenSpec for a
// request it cannot honour (400) and join.ErrTokenNotFound (404).
type Tokens interface {
	CreateToken(ctx context.Context, spec join.TokenSpec) (pki.Token, join.TokenInfo, error)
	ListTokens(ctx context.Context) ([]join.TokenInfo, error)
	DeleteToken(ctx context.Context, id string) error
}

// Error is the body of an error response.
type Error = wire.Error

// NewHandler returns the API's handler.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", h.status)
	mux.HandleFunc("GET /v1/history", h.history)
	mux.HandleFunc("GET /v1/events", h.events)
	mux.HandleFunc("GET /v1/{kind}", h.list)
	mux.HandleFunc("GET /v1/top/nodes", h.topNodes)
	mux.HandleFunc("GET /v1/top/pods", h.topPods)
	mux.HandleFunc("GET /v1/namespaces/{ns}/pods/{name}/log", h.logs)
	mux.HandleFunc("POST /v1/namespaces/{ns}/pods/{name}/exec", h.exec)
	mux.HandleFunc("POST /v1/nodes/{name}/{action}", h.nodeAction)
	mux.HandleFunc("DELETE /v1/nodes/{name}", h.removeNode)
	mux.HandleFunc("DELETE /v1/namespaces/{ns}/pods/{name}", h.deletePod)
	mux.HandleFunc("GET /v1/tokens", h.listTokens)
	mux.HandleFunc("POST /v1/tokens", h.createToken)
	mux.HandleFunc("DELETE /v1/tokens/{id}", h.deleteToken)
	mux.HandleFunc("GET /v1/secrets/keyring", h.secretsStatus)
	mux.HandleFunc("POST /v1/secrets/rotate-key", h.rotateKey)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.HandleFunc("GET /v1/netplane", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Netplane == nil {
			writeError(w, http.StatusNotFound, errors.New("this node runs without a network plane (--pod-network none)"))
			return
		}
		v, err := cfg.Netplane()
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, v)
	})
	var routes http.Handler = mux
	if cfg.Scope == ScopeAgent {
		routes = h.forAgent(mux)
	}
	if cfg.Token == "" {
		return routes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(cfg.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("a bearer token is required: pass --token or set SHOAL_TOKEN"))
			return
		}
		routes.ServeHTTP(w, r)
	})
}

type handler struct {
	cfg Config
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()})
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) (*cluster.Snapshot, bool) {
	s, err := h.cfg.Backend.Snapshot(r.Context())
	if err != nil {
		writeError(w, errorCode(err, http.StatusServiceUnavailable), fmt.Errorf("read the cluster state: %w", err))
		return nil, false
	}
	return s, true
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.snapshot(w, r); ok {
		st := s.Status()
		st.StoreLeader = h.cfg.Backend.StoreLeader(r.Context())
		writeJSON(w, st)
	}
}

// HistoryEntry is one commit in `shoal history`.
type HistoryEntry struct {
	cluster.CommitRecord
	// ConvergeSeconds is the time from the commit being seen to every pod Ready (0: not yet).
	ConvergeSeconds float64 `json:"convergeSeconds,omitempty"`
	Current         bool    `json:"current,omitempty"`
}

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	s, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	out := []HistoryEntry{}
	for _, c := range s.Commits {
		e := HistoryEntry{CommitRecord: c, Current: c.SHA == s.Applied.SHA && c.Result == cluster.ResultApplied}
		if !c.ConvergedAt.IsZero() {
			e.ConvergeSeconds = c.ConvergedAt.Sub(c.SeenAt).Seconds()
		}
		out = append(out, e)
	}
	writeJSON(w, out)
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	evs, err := h.cfg.Backend.Events(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if evs == nil {
		evs = []cluster.Event{}
	}
	writeJSON(w, evs)
}

var kinds = map[string]string{
	"pods": "Pod", "pod": "Pod", "po": "Pod",
	"deployments": "Deployment", "deployment": "Deployment", "deploy": "Deployment",
	"jobs": "Job", "job": "Job",
	"daemonsets": "DaemonSet", "daemonset": "DaemonSet", "ds": "DaemonSet",
	"statefulsets": "StatefulSet", "statefulset": "StatefulSet", "sts": "StatefulSet",
	"horizontalpodautoscalers": "HorizontalPodAutoscaler", "horizontalpodautoscaler": "HorizontalPodAutoscaler", "hpa": "HorizontalPodAutoscaler",
	"cronjobs": "CronJob", "cronjob": "CronJob", "cj": "CronJob",
	"persistentvolumeclaims": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim", "pvc": "PersistentVolumeClaim",
	"services": "Service", "service": "Service", "svc": "Service",
	"configmaps": "ConfigMap", "configmap": "ConfigMap", "cm": "ConfigMap",
	"secrets": "Secret", "secret": "Secret",
	"namespaces": "Namespace", "namespace": "Namespace", "ns": "Namespace",
	"nodes": "Node", "node": "Node", "no": "Node",
}

// Resources lists the resources KindOf knows, for messages.
const Resources = "pods, deployments, daemonsets, statefulsets, horizontalpodautoscalers, jobs, cronjobs, persistentvolumeclaims, services, configmaps, secrets, namespaces or nodes"

// KindOf maps a resource name as kubectl accepts it (pods, po, deploy, svc, ...) to a kind.
func KindOf(resource string) (string, bool) {
	k, ok := kinds[strings.ToLower(resource)]
	return k, ok
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	kind, ok := KindOf(r.PathValue("kind"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown resource %q: use %s", r.PathValue("kind"), Resources))
		return
	}
	q := r.URL.Query()
	f, err := filterOf(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	var l cluster.List
	switch kind {
	case "Pod":
		l, err = s.PodList(f)
	case "Node":
		l, err = s.NodeList(f)
	default:
		l, err = s.ObjectList(kind, f)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if name := q.Get("name"); name != "" {
		l.Items = slices.DeleteFunc(l.Items, func(it any) bool { return itemName(it) != name })
		if len(l.Items) == 0 {
			writeError(w, http.StatusNotFound, fmt.Errorf("%s %q not found in namespace %q", strings.ToLower(kind), name, f.Namespace))
			return
		}
	}
	writeJSON(w, l)
}

// filterOf reads a Filter from a request's query: namespace (default "default"), all and
// selector.
func filterOf(q url.Values) (cluster.Filter, error) {
	f := cluster.Filter{Namespace: q.Get("namespace"), All: q.Get("all") == "true", Selector: manifests.Everything()}
	if f.Namespace == "" {
		f.Namespace = "default"
	}
	if sel := q.Get("selector"); sel != "" {
		s, err := manifests.ParseSelector(sel)
		if err != nil {
			return f, fmt.Errorf("selector %q: %w", sel, err)
		}
		f.Selector = s
	}
	return f, nil
}

// topNodes answers the usage of the nodes (`shoal top nodes`): a cluster.NodeUsageList, nodes
// without a sample yet marked unavailable.
func (h *handler) topNodes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := filterOf(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	l := s.TopNodes(f.Selector)
	if name := q.Get("name"); name != "" {
		l.Items = slices.DeleteFunc(l.Items, func(n cluster.NodeUsage) bool { return n.Name != name })
		if len(l.Items) == 0 {
			writeError(w, http.StatusNotFound, fmt.Errorf("node %q not found", name))
			return
		}
	}
	writeJSON(w, l)
}

// topPods answers the usage of the pods (`shoal top pods`): a cluster.PodUsageList, with the
// running pods that have no sample yet.
func (h *handler) topPods(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := filterOf(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	name := q.Get("name")
	if name != "" && !slices.ContainsFunc(s.Pods(), func(p cluster.Pod) bool {
		return p.Pod.Name == name && (f.All || p.Pod.Namespace == f.Namespace)
	}) {
		writeError(w, http.StatusNotFound, fmt.Errorf("pod %q not found in namespace %q", name, f.Namespace))
		return
	}
	writeJSON(w, s.TopPods(f, name))
}

func itemName(it any) string {
	switch v := it.(type) {
	case map[string]any:
		if m, ok := v["metadata"].(map[string]any); ok {
			n, _ := m["name"].(string)
			return n
		}
	case manifests.Object:
		return v.GetObjectMeta().Name
	}
	return ""
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := runtime.LogOptions{Follow: q.Get("follow") == "true", Previous: q.Get("previous") == "true", Timestamps: q.Get("timestamps") == "true"}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("tail %q: want a number of lines", t))
			return
		}
		opts.Tail = n
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fw := &flushWriter{w: w, rc: http.NewResponseController(w)}
	err := h.cfg.Backend.Logs(r.Context(), r.PathValue("ns"), r.PathValue("name"), q.Get("container"), opts, fw)
	if err != nil && !fw.wrote {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, errorCode(err, code), err)
	}
}

// flushWriter flushes after every write so that followed logs arrive at once.
type flushWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = true
	n, err := f.w.Write(p)
	if err == nil {
		_ = f.rc.Flush()
	}
	return n, err
}

// Exec frames: a stream byte, a 4-byte big-endian length, the payload (see package wire).
const (
	StreamStdout = wire.StreamStdout
	StreamStderr = wire.StreamStderr
	StreamExit   = wire.StreamExit
	StreamError  = wire.StreamError
)

type frameWriter struct {
	stream byte
	out    *lockedWriter
}

func (f frameWriter) Write(p []byte) (int, error) {
	if err := f.out.frame(f.stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

type lockedWriter struct {
	mu chan struct{}
	w  io.Writer
	rc *http.ResponseController
}

func (l *lockedWriter) frame(stream byte, p []byte) error {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	var hdr [5]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := l.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := l.w.Write(p); err != nil {
		return err
	}
	return l.rc.Flush()
}

func (h *handler) exec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no command: shoal exec POD -- COMMAND [ARGS...]"))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // read stdin while writing output; HTTP/1 needs the opt-in
	w.Header().Set("Content-Type", "application/vnd.shoal.exec")
	w.WriteHeader(http.StatusOK)
	out := &lockedWriter{mu: make(chan struct{}, 1), w: w, rc: rc}
	var stdin io.Reader
	if q.Get("stdin") == "true" {
		stdin = r.Body
	}
	code, err := h.cfg.Backend.Exec(r.Context(), r.PathValue("ns"), r.PathValue("name"), q.Get("container"),
		runtime.ExecOptions{Command: cmd, Stdin: stdin, Stdout: frameWriter{StreamStdout, out}, Stderr: frameWriter{StreamStderr, out}})
	if err != nil {
		_ = out.frame(StreamError, []byte(err.Error()))
		return
	}
	_ = out.frame(StreamExit, []byte(strconv.Itoa(code)))
}

func (h *handler) nodeAction(w http.ResponseWriter, r *http.Request) {
	var cordon, drain bool
	switch r.PathValue("action") {
	case "cordon":
		cordon = true
	case "drain":
		cordon, drain = true, true
	case "uncordon":
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown node action %q: use cordon, uncordon or drain", r.PathValue("action")))
		return
	}
	if err := h.cfg.Backend.Cordon(r.Context(), r.PathValue("name"), cordon, drain); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, map[string]string{"node": r.PathValue("name"), "action": r.PathValue("action")})
}

func (h *handler) removeNode(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Backend.RemoveNode(r.Context(), r.PathValue("name")); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrConflict):
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, map[string]string{"node": r.PathValue("name"), "action": "removed"})
}

func (h *handler) deletePod(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := h.cfg.Backend.DeletePod(r.Context(), ns, name); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, err)
		return
	}
	writeJSON(w, map[string]string{"pod": ns + "/" + name, "action": "deleted"})
}

// ListenUnix listens on a unix socket at path that only its owner (root) may use. A stale socket
// left by a crashed daemon is replaced; a live one is an error.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("api socket %s is in use by a running daemon: stop it or pass another --socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return l, nil
}
