package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Role is what a node is in its cluster.
type Role string

// Roles. A server may run a store member and holds the CA key when it does (it admits others
// and makes tokens); it campaigns for master. An agent is a client of the store only: it runs
// pods, never a store member, never the master, and never holds the CA key.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// ParseRole reads a role as the flags give it.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleServer, RoleAgent:
		return r, nil
	}
	return "", fmt.Errorf("role %q: use server or agent", s)
}

// TokenPrefix holds the join tokens, one record per token ID.
const TokenPrefix = "/shoal/tokens/"

// DefaultTokenTTL is how long a token admits nodes unless told otherwise, as kubeadm's.
const DefaultTokenTTL = 24 * time.Hour

// ExpiredTokenRetention is how long the record of an expired token stays in the store (on an
// etcd lease), so that a node that presents it is told that it expired rather than that it is
// unknown.
const ExpiredTokenRetention = 24 * time.Hour

// maxDescription bounds a token's description.
const maxDescription = 256

// Errors of the token records. They say what to do next.
var (
	ErrTokenUnknown = errors.New("the join token is not known to the cluster: it was deleted, or belongs to another " +
		"cluster; make a new one on a server node with \"shoal token create\"")
	ErrTokenExpired = errors.New("the join token expired")
	ErrTokenSecret  = errors.New("the join token's secret is wrong: copy the token whole, as \"shoal token create\" printed it")
	// ErrTokenRole: a node asks to be a server with an agent token.
	ErrTokenRole = errors.New("the join token admits agents only")
	// ErrBadTokenSpec: a token cannot be made as asked.
	ErrBadTokenSpec = errors.New("bad token request")
	// ErrTokenNotFound: no token of that ID to delete.
	ErrTokenNotFound = errors.New("no join token of that ID")
	// ErrNotServer: a node that holds no CA key (an agent, or a server that runs no store
	// member) is asked to make a token.
	ErrNotServer = errors.New("making a join token needs a server node")
)

// TokenRecord is a token as the store keeps it: the hash of its secret, never the secret.
type TokenRecord struct {
	ID          string    `json:"id"`
	SecretHash  string    `json:"secretHash"`
	Role        Role      `json:"role"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	// Expires is when the token stops admitting nodes; zero: never.
	Expires time.Time `json:"expires,omitzero"`
}

// TokenInfo is what may be shown of a token: all but its secret's hash.
type TokenInfo struct {
	ID          string    `json:"id"`
	Role        Role      `json:"role"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires,omitzero"`
}

// Info is what may be shown of r.
func (r TokenRecord) Info() TokenInfo {
	return TokenInfo{ID: r.ID, Role: r.Role, Description: r.Description, Created: r.Created, Expires: r.Expires}
}

// Expired reports whether the token no longer admits nodes at now.
func (i TokenInfo) Expired(now time.Time) bool { return !i.Expires.IsZero() && !now.Before(i.Expires) }

// TokenSpec is a token to make.
type TokenSpec struct {
	Role Role
	// TTL is how long the token admits nodes; 0: forever.
	TTL         time.Duration
	Description string
}

func tokenKey(id string) string { return TokenPrefix + id }

// CreateToken makes a token for the cluster whose CA has the hash caHash, and records it in the
// store. The token's secret is returned here only: the store keeps its hash. A token with a TTL
// is put on an etcd lease that outlives it by ExpiredTokenRetention, so that expired records go
// by themselves.
func CreateToken(ctx context.Context, st *store.Client, caHash string, spec TokenSpec, now time.Time) (pki.Token, TokenInfo, error) {
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return pki.Token{}, TokenInfo{}, fmt.Errorf("%w: %v", ErrBadTokenSpec, err)
	}
	if spec.TTL < 0 {
		return pki.Token{}, TokenInfo{}, fmt.Errorf("%w: the TTL %v is negative: give a duration such as 24h, or 0 for a token that never expires", ErrBadTokenSpec, spec.TTL)
	}
	if spec.TTL > 0 && spec.TTL < time.Second {
		return pki.Token{}, TokenInfo{}, fmt.Errorf("%w: the TTL %v is under a second", ErrBadTokenSpec, spec.TTL)
	}
	if err := checkDescription(spec.Description); err != nil {
		return pki.Token{}, TokenInfo{}, err
	}
	now = now.UTC().Truncate(time.Second)
	for range 5 {
		tok, err := pki.NewToken(caHash)
		if err != nil {
			return pki.Token{}, TokenInfo{}, err
		}
		rec := TokenRecord{ID: tok.ID, SecretHash: pki.HashSecret(tok.Secret), Role: spec.Role, Description: spec.Description, Created: now}
		var opts []clientv3.OpOption
		if spec.TTL > 0 {
			rec.Expires = now.Add(spec.TTL)
			lease, err := st.Etcd().Grant(ctx, int64((spec.TTL+ExpiredTokenRetention).Seconds())+1)
			if err != nil {
				return pki.Token{}, TokenInfo{}, fmt.Errorf("record the join token: %w", err)
			}
			opts = append(opts, clientv3.WithLease(lease.ID))
		}
		created, err := putNew(ctx, st, tokenKey(tok.ID), rec, opts...)
		if err != nil {
			return pki.Token{}, TokenInfo{}, fmt.Errorf("record the join token: %w", err)
		}
		if created {
			return tok, rec.Info(), nil
		}
		// Another token has this ID (one in two billion): draw again. Its lease, if any, expires.
	}
	return pki.Token{}, TokenInfo{}, errors.New("record the join token: every ID drawn is taken; try again")
}

func checkDescription(d string) error {
	if len(d) > maxDescription {
		return fmt.Errorf("%w: the description is longer than %d bytes", ErrBadTokenSpec, maxDescription)
	}
	if strings.ContainsFunc(d, unicode.IsControl) {
		return fmt.Errorf("%w: the description holds control characters (a newline?): keep it to one line", ErrBadTokenSpec)
	}
	return nil
}

// putNew writes rec at key unless the key exists; it reports whether it wrote.
func putNew(ctx context.Context, st *store.Client, key string, rec TokenRecord, opts ...clientv3.OpOption) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	resp, err := st.Etcd().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b), opts...)).
		Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// ListTokens returns every token's record but its secret's hash, expired ones included while
// the store keeps them, by ID.
func ListTokens(ctx context.Context, st *store.Client) ([]TokenInfo, error) {
	kvs, _, err := store.List[TokenRecord](ctx, st, TokenPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv.Value.Info())
	}
	return out, nil
}

// DeleteToken deletes the token id: it admits no node from then on. ErrTokenNotFound when there
// is none.
func DeleteToken(ctx context.Context, st *store.Client, id string) error {
	if !pki.IsTokenID(id) {
		return fmt.Errorf("%w: %q is not a token ID (6 of a-z0-9, as \"shoal token list\" shows)", ErrTokenNotFound, id)
	}
	resp, err := st.Etcd().Delete(ctx, tokenKey(id))
	if err != nil {
		return fmt.Errorf("delete the join token %s: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%w: %s (\"shoal token list\" shows the tokens)", ErrTokenNotFound, id)
	}
	return nil
}

// CheckToken checks a credential a joining node presented (pki.Token.Credential) against the
// store: it returns the token's record when the token is known, unexpired at now and the secret
// is right, else ErrTokenUnknown, ErrTokenExpired or ErrTokenSecret (wrapped, with what to do).
func CheckToken(ctx context.Context, st *store.Client, credential string, now time.Time) (TokenRecord, error) {
	id, secret, err := pki.ParseCredential(credential)
	if err != nil {
		return TokenRecord{}, fmt.Errorf("%w (%v)", ErrTokenUnknown, err)
	}
	rec, _, found, err := store.Get[TokenRecord](ctx, st, tokenKey(id))
	if err != nil {
		return TokenRecord{}, err
	}
	if !found {
		return TokenRecord{}, fmt.Errorf("%w (token %s)", ErrTokenUnknown, id)
	}
	// The secret first: whoever does not hold it learns nothing of the token's state.
	if !pki.CheckSecret(rec.SecretHash, secret) {
		return TokenRecord{}, fmt.Errorf("%w (token %s)", ErrTokenSecret, id)
	}
	if rec.Info().Expired(now) {
		return TokenRecord{}, fmt.Errorf("%w at %s: make a new one on a server node with \"shoal token create\" (token %s)",
			ErrTokenExpired, rec.Expires.UTC().Format(time.RFC3339), id)
	}
	return rec, nil
}
