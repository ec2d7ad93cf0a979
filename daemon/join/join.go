// Package join admits new nodes into a cluster and lets a node join one.
//
// A node joins by calling POST /v1/join on a server node (one that holds the CA key), over TLS.
// It has no CA yet, so it pins the cluster CA by the hash in its join token; it proves that it
// was given the token with the token's ID and secret, which the admitting node checks against
// the token's record in the store (kubeadm's bootstrap tokens: the record holds only a hash of
// the secret, the token's role and when it expires; see CreateToken). It sends a certificate
// request (its key never leaves it) and gets its certificate signed by the cluster CA.
//
// A node joins as a server or as an agent (Role). An agent token admits agents only; a server
// token admits either. Every server gets the CA key: a server may become master, and the master
// opens the keyring of the cluster's Secrets with a key derived from it; a server also admits
// others and makes tokens. An agent is a store client only and never gets the CA key. While the
// store has fewer than MaxMembers members, a server is added as a store member: first as a
// learner that does not vote, so that a node which never starts costs the cluster no quorum; it
// promotes itself once it has caught up. Further servers are store clients, as agents are.
//
// The certificate names the node's role (pki.CertRole), and before the join is answered the
// admitting node makes the node's store user, named as its certificate: an admin for a server,
// an agent's own permissions for an agent (Admitter.AgentPermissions).
package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
)

// Ports a node serves other nodes on.
const (
	DefaultPort      = 7443 // the cluster endpoint: joins and node-to-node calls
	DefaultPeerPort  = 2380 // the store's peer traffic
	DefaultStorePort = 2379 // the store's client traffic
)

// MaxMembers is how many nodes run a store member: three survive the loss of any one.
const MaxMembers = 3

// Path is where the cluster endpoint takes joins.
const Path = "/v1/join"

// Request is what a joining node sends.
type Request struct {
	Node      string   `json:"node"`
	Addresses []string `json:"addresses"`
	CSR       string   `json:"csr"`
	// PeerURL is where the node's store member would listen; empty for a node that must not
	// run one.
	PeerURL string `json:"peerURL,omitempty"`
	// Role is what the node asks to be; "": what its token admits.
	Role Role `json:"role,omitempty"`
}

// Response is what an admitted node gets.
type Response struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	// Role is what the node was admitted as.
	Role Role `json:"role"`
	// CAKey is the CA's key, for a server: it lets it open the keyring of the cluster's
	// Secrets as master, admit further nodes and make tokens. An agent gets none.
	CAKey string `json:"caKey,omitempty"`
	// Member is set when the node runs a store member (a server); InitialCluster is then the
	// member list to start with.
	Member         bool   `json:"member"`
	InitialCluster string `json:"initialCluster,omitempty"`
	// Endpoints are the store's client URLs (those of the other members).
	Endpoints []string `json:"endpoints"`
}

// Error is the body of a refused join.
type Error struct {
	Error string `json:"error"`
}

// Admitter serves joins on a node that holds the CA key, checking the tokens joining nodes
// present against the token records in Store.
type Admitter struct {
	CA    *pki.CA
	Store *store.Client
	// NodeLive reports whether a node of that name is registered and alive.
	NodeLive func(ctx context.Context, name string) (bool, error)
	// NodeKnown reports whether the cluster still knows a node of that name (it registered and
	// was not removed): a new node may not take the name, and with it the Secrets sealed to
	// that node, until `shoal node remove` forgot it. Nil: no such check.
	NodeKnown func(ctx context.Context, name string) (bool, error)
	// AgentPermissions are the store permissions of an agent's user. When set, the node's store
	// user is made before the join is answered: an admin for a server, these for an agent. Nil:
	// no users are made (a store without authentication).
	AgentPermissions func(node string) []store.Permission
	Logger           *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// ServeHTTP admits one node.
func (a *Admitter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	credential, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		refuse(w, http.StatusUnauthorized, "no join token: pass --join-token-file with a token from \"shoal token create\" on a server node")
		return
	}
	rec, err := CheckToken(r.Context(), a.Store, credential, a.now())
	switch {
	case errors.Is(err, ErrTokenUnknown), errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenSecret):
		a.log().Warn("join refused", "err", err)
		refuse(w, http.StatusUnauthorized, err.Error())
		return
	case err != nil:
		w.Header().Set("Retry-After", "1")
		refuse(w, http.StatusServiceUnavailable, "check the join token: "+err.Error())
		return
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		refuse(w, http.StatusBadRequest, "the join request is not valid JSON: "+err.Error())
		return
	}
	role, err := admittedRole(req.Role, rec)
	if err != nil {
		a.log().Warn("join refused", "node", req.Node, "token", rec.ID, "err", err)
		refuse(w, http.StatusForbidden, err.Error())
		return
	}
	resp, code, err := a.admit(r.Context(), req, role)
	if err != nil {
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		a.log().Warn("join refused", "node", req.Node, "err", err)
		refuse(w, code, err.Error())
		return
	}
	a.log().Info("node admitted", "node", req.Node, "role", resp.Role, "member", resp.Member, "token", rec.ID, "addresses", req.Addresses)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// admittedRole is the role a node that asked for want is admitted as with the token rec.
func admittedRole(want Role, rec TokenRecord) (Role, error) {
	switch want {
	case "":
		return rec.Role, nil
	case RoleAgent:
		return RoleAgent, nil // a server token admits agents too
	case RoleServer:
		if rec.Role != RoleServer {
			return "", fmt.Errorf("%w: a node with --role server needs a server token "+
				"(\"shoal token create --role server\" on a server node), or join this one with --role agent (token %s)", ErrTokenRole, rec.ID)
		}
		return RoleServer, nil
	}
	return "", fmt.Errorf("the node asks for the role %q: use server or agent", want)
}

func (a *Admitter) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// StaleJoin is how long a store member added for a joining node may stay unstarted before
// another join removes it: the node failed before it could start it, and etcd admits one
// learner at a time.
const StaleJoin = 10 * time.Minute

// JoinsPrefix records, under the member's id, when a learner was added and for which node.
const JoinsPrefix = "/shoal/joins/"

func pendingKey(id uint64) string { return fmt.Sprintf("%s%016x", JoinsPrefix, id) }

type pendingJoin struct {
	Node    string    `json:"node"`
	PeerURL string    `json:"peerURL"`
	Added   time.Time `json:"added"`
}

// dropStaleJoins removes members added for a join more than StaleJoin ago that never started
// (except one at peerURL, which the node now asking takes over), and the records of joins that
// completed.
func (a *Admitter) dropStaleJoins(ctx context.Context, members []store.Member, peerURL string) ([]store.Member, error) {
	kvs, _, err := store.List[pendingJoin](ctx, a.Store, JoinsPrefix)
	if err != nil {
		return nil, err
	}
	byKey := map[string]pendingJoin{}
	for _, kv := range kvs {
		byKey[kv.Key] = kv.Value
	}
	var keep []store.Member
	for _, m := range members {
		key := pendingKey(m.ID)
		rec, ok := byKey[key]
		delete(byKey, key)
		switch {
		case !ok || m.Started():
			if ok {
				_ = store.Delete(ctx, a.Store, key)
			}
		case !slices.Contains(m.PeerURLs, peerURL) && a.now().Sub(rec.Added) > StaleJoin:
			a.log().Warn("removing a store member whose node never started it", "node", rec.Node, "peer", rec.PeerURL, "added", rec.Added)
			if err := a.Store.RemoveMember(ctx, m.ID); err != nil {
				return nil, err
			}
			_ = store.Delete(ctx, a.Store, key)
			continue
		}
		keep = append(keep, m)
	}
	for key := range byKey { // members that are gone
		_ = store.Delete(ctx, a.Store, key)
	}
	return keep, nil
}

func (a *Admitter) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Admitter) admit(ctx context.Context, req Request, role Role) (Response, int, error) {
	if role == RoleAgent {
		req.PeerURL = "" // an agent never runs a store member
	}
	var ips []net.IP
	for _, s := range req.Addresses {
		ip := net.ParseIP(s)
		if ip == nil {
			return Response{}, http.StatusBadRequest, fmt.Errorf("address %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	if a.NodeLive != nil {
		live, err := a.NodeLive(ctx, req.Node)
		if err != nil {
			return Response{}, http.StatusServiceUnavailable, err
		}
		if live {
			return Response{}, http.StatusConflict, fmt.Errorf("a node named %q is already in the cluster and running: "+
				"give the new node another --node-name", req.Node)
		}
	}
	if a.NodeKnown != nil {
		known, err := a.NodeKnown(ctx, req.Node)
		if err != nil {
			return Response{}, http.StatusServiceUnavailable, err
		}
		if known {
			return Response{}, http.StatusConflict, fmt.Errorf("a node named %q is still in the cluster, stopped: if it is gone for good "+
				"or lost its data, run `shoal node remove %s` on a server node first; else give the new node another --node-name", req.Node, req.Node)
		}
	}
	members, err := a.Store.Members(ctx)
	if err != nil {
		return Response{}, http.StatusServiceUnavailable, err
	}
	for _, m := range members {
		if m.Name == req.Node {
			return Response{}, http.StatusConflict, fmt.Errorf("node %q is still a store member: if it lost its data, "+
				"run `shoal node remove %s` on another node first", req.Node, req.Node)
		}
	}
	cert, err := a.CA.SignNodeRole([]byte(req.CSR), req.Node, string(role), ips, nil, a.now())
	if err != nil {
		return Response{}, http.StatusBadRequest, err
	}
	// The node's store user, before it gets its certificate: a server promotes its learner
	// through the other members, which takes an admin.
	if a.AgentPermissions != nil {
		if err := SetNodeUser(ctx, a.Store, req.Node, role, a.AgentPermissions); err != nil {
			return Response{}, http.StatusServiceUnavailable, err
		}
	}
	resp := Response{CA: string(a.CA.CertPEM), Cert: string(cert), Role: role}
	if role == RoleServer {
		resp.CAKey = string(a.CA.KeyPEM)
	}
	// A member that was added for this address but never started (the node failed before it
	// could) is taken over; otherwise a new learner is added while there is room.
	if members, err = a.dropStaleJoins(ctx, members, req.PeerURL); err != nil {
		return Response{}, http.StatusServiceUnavailable, err
	}
	var pending *store.Member
	for i, m := range members {
		if !m.Started() && req.PeerURL != "" && slices.Contains(m.PeerURLs, req.PeerURL) {
			pending = &members[i]
		}
	}
	if pending == nil && req.PeerURL != "" && len(members) < MaxMembers {
		id, after, err := a.Store.AddLearner(ctx, req.PeerURL)
		if errors.Is(err, store.ErrTooManyLearners) {
			return Response{}, http.StatusServiceUnavailable, fmt.Errorf("%w; the node tries again", err)
		}
		if err != nil {
			return Response{}, http.StatusServiceUnavailable, err
		}
		if len(after) > MaxMembers {
			// Another node was added between the count and this add: take this one back, and
			// the node joins as a client.
			if err := a.Store.RemoveMember(ctx, id); err != nil {
				return Response{}, http.StatusServiceUnavailable, err
			}
			after = slices.DeleteFunc(after, func(m store.Member) bool { return m.ID == id })
			id = 0
		}
		members = after
		for i, m := range members {
			if id != 0 && m.ID == id {
				pending = &members[i]
			}
		}
		if id != 0 {
			rec := pendingJoin{Node: req.Node, PeerURL: req.PeerURL, Added: a.now()}
			if err := store.Put(ctx, a.Store, pendingKey(id), rec); err != nil {
				a.log().Warn("record the pending join", "node", req.Node, "err", err)
			}
		}
	}
	for _, m := range members {
		if m.Started() && (pending == nil || m.ID != pending.ID) {
			resp.Endpoints = append(resp.Endpoints, m.ClientURLs...)
		}
	}
	if pending != nil {
		var cluster []string
		for _, m := range members {
			name := m.Name
			if m.ID == pending.ID {
				name = req.Node
			}
			if name == "" {
				continue
			}
			for _, u := range m.PeerURLs {
				cluster = append(cluster, name+"="+u)
			}
		}
		resp.Member = true
		resp.InitialCluster = strings.Join(cluster, ",")
	}
	return resp, http.StatusOK, nil
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: msg})
}

// RefuseHandler answers joins on a node that cannot admit any (an agent, or a server of an
// earlier version that has no CA key), naming the nodes that can.
func RefuseHandler(members func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refuse(w, http.StatusMisdirectedRequest, "this node does not hold the cluster CA key and cannot admit nodes: join through one of "+
			strings.Join(members(), ", "))
	})
}

// Address turns a --join value (HOST or HOST:PORT) into the cluster endpoint's URL.
func Address(s string) (string, error) {
	s = strings.TrimPrefix(strings.TrimSuffix(s, "/"), "https://")
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return "", fmt.Errorf("--join %q: give the address of a node of the cluster, HOST or HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), fmt.Sprint(DefaultPort)
	}
	if host == "" {
		return "", fmt.Errorf("--join %q: no host", s)
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// Join asks the node at url (see Address) to admit this one, trying again while the cluster
// says so (another member still joining) or cannot be reached, until ctx ends. A refusal (a
// token that is unknown, expired or of the wrong role, a name in use) is not tried again. It
// returns the response and the cluster CA it pinned.
func Join(ctx context.Context, url string, tok pki.Token, req Request, log *slog.Logger) (Response, *pki.CA, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Response{}, nil, fmt.Errorf("join: %w", err)
	}
	delay := 500 * time.Millisecond
	for {
		resp, ca, retry, err := try(ctx, url, tok, body)
		if err == nil {
			return resp, ca, nil
		}
		if !retry {
			return Response{}, nil, err
		}
		if log != nil {
			log.Warn("join: trying again", "at", url, "err", err)
		}
		select {
		case <-ctx.Done():
			return Response{}, nil, fmt.Errorf("join %s: %w (last: %v)", url, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func try(ctx context.Context, url string, tok pki.Token, body []byte) (Response, *pki.CA, bool, error) {
	var seen *pki.CA
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.PinnedTLS(tok.CAHash, &seen)}}
	defer client.CloseIdleConnections()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url+Path, bytes.NewReader(body))
	if err != nil {
		return Response{}, nil, false, fmt.Errorf("join %s: %w", url, err)
	}
	hr.Header.Set("Authorization", "Bearer "+tok.Credential())
	hr.Header.Set("Content-Type", "application/json")
	r, err := client.Do(hr)
	if err != nil {
		// A node that does not present the pinned CA is not retried: it is not this cluster.
		if strings.Contains(err.Error(), "join token names") || strings.Contains(err.Error(), "not signed by the cluster CA") {
			return Response{}, nil, false, fmt.Errorf("join %s: %w", url, err)
		}
		return Response{}, nil, true, fmt.Errorf("join %s: %w", url, err)
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return Response{}, nil, true, fmt.Errorf("join %s: %w", url, err)
	}
	if r.StatusCode != http.StatusOK {
		var e Error
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		retry := r.StatusCode == http.StatusServiceUnavailable || r.StatusCode >= 500
		return Response{}, nil, retry, fmt.Errorf("join %s: refused (%s): %s", url, r.Status, e.Error)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return Response{}, nil, false, fmt.Errorf("join %s: the answer: %w", url, err)
	}
	if seen == nil || !bytes.Equal(bytes.TrimSpace([]byte(resp.CA)), bytes.TrimSpace(seen.CertPEM)) {
		return Response{}, nil, false, fmt.Errorf("join %s: the answer names another CA than the node presented", url)
	}
	return resp, seen, false, nil
}
