package join

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
)

// AuthKey records that the embedded store checks certificates, or is about to: nodes no longer
// make their own store users (package membership). Every node may read it, so that a node whose
// read of it is refused knows that its user is gone: it was removed from the cluster.
const AuthKey = "/shoal/auth"

// AuthRecord is the value of AuthKey: since when, and which server turned the checks on.
type AuthRecord struct {
	Since time.Time `json:"since"`
	By    string    `json:"by"`
}

// SetNodeUser makes node's store user for its role: an admin for a server, an agent's own
// permissions (perms) for an agent. It writes nothing when the user is so already.
func SetNodeUser(ctx context.Context, st *store.Client, node string, role Role, perms func(node string) []store.Permission) error {
	var err error
	if role == RoleServer {
		err = st.SetAdmin(ctx, node)
	} else {
		err = st.SetUser(ctx, node, perms(node))
	}
	if err != nil {
		return fmt.Errorf("make the store user of %s: %w", node, err)
	}
	return nil
}
