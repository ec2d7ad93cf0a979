package membership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/store"
)

// The embedded store checks who makes each request: etcd's user is the common name of the
// client certificate, the node's name. A server is an admin; an agent may reach its own keys and
// read what it runs (Config.AgentPermissions). The founder turns authentication on as soon as its
// member serves; a node admitted later gets its user before its join is answered (package join).
//
// A store made by a version that did not check certificates is turned over without locking a
// node out. While authentication is off any client may manage users, so each node of this
// version makes its own user when it starts (a server an admin, an agent its permissions). A
// server then turns authentication on once every store member and every registered node has a
// user: every node that could reach the store then runs this version, whose members' daemons
// reach their members over TLS with their certificates (a member of an earlier version reaches
// its own over a plain socket, which would name no user). It first records join.AuthKey, makes the
// users of the nodes the cluster knows that are stopped (a store member as a server, any other
// as an agent: a node that cannot say what it is gets the lesser role) and then turns
// authentication on.

// ErrRemoved is returned once the store no longer takes this node's certificate: it was removed
// from the cluster (`shoal node remove`) and must stop acting in it.
var ErrRemoved = errors.New("this node was removed from the cluster: the store no longer takes its certificate, and the daemon " +
	"stops here (the pods it still runs keep running until `shoal node reset`); to bring the machine back, reset it and join it " +
	"again with a new token (\"shoal token create\" on a server node)")

// manageAuth reports whether this node makes store users: a node of the embedded store, given
// the agents' permissions.
func (m *Membership) manageAuth() bool { return m.ca != nil && m.cfg.AgentPermissions != nil }

// checkRemoved returns ErrRemoved when the store refuses this node a read that every node may
// make.
func (m *Membership) checkRemoved(ctx context.Context) error {
	_, err := m.st.Etcd().Get(ctx, join.AuthKey)
	if store.IsPermissionDenied(err) {
		return ErrRemoved
	}
	return nil
}

// setupAuth is Setup's part of the store's authentication: it fails with ErrRemoved for a node
// whose user is gone, makes the node's own user in a store that does not check certificates
// yet, and has a server turn authentication on when it can (at founding, at once).
func (m *Membership) setupAuth(ctx context.Context) error {
	if !m.manageAuth() {
		return nil
	}
	_, _, marked, err := store.Get[join.AuthRecord](ctx, m.st, join.AuthKey)
	if store.IsPermissionDenied(err) {
		return ErrRemoved
	}
	if err != nil {
		return fmt.Errorf("read the store's authentication record: %w", err)
	}
	if m.Role() == join.RoleAgent {
		if marked {
			return nil // its user was made when it joined, or when the store turned checks on
		}
		if err := m.st.SetUser(ctx, m.cfg.Name, m.cfg.AgentPermissions(m.cfg.Name)); err != nil {
			return fmt.Errorf("make this agent's store user: %w", err)
		}
		m.log.Info("made this node's store user, with an agent's permissions: a server turns the store's authentication on once every node has one")
		return nil
	}
	on, err := m.st.AuthEnabled(ctx)
	if err != nil {
		return err
	}
	if on {
		m.authOn.Store(true)
		return nil
	}
	if err := m.st.SetAdmin(ctx, m.cfg.Name); err != nil {
		return fmt.Errorf("make this server's store user: %w", err)
	}
	done, err := m.enableAuth(ctx)
	if err != nil {
		m.log.Warn("turn the store's authentication on; trying again", "err", err)
	}
	m.authOn.Store(done)
	return nil
}

// enableAuth turns the store's authentication on if every store member and every registered
// node has a user (see above), and reports whether it is on.
func (m *Membership) enableAuth(ctx context.Context) (bool, error) {
	users, err := m.st.Users(ctx)
	if err != nil {
		return false, err
	}
	members, err := m.st.Members(ctx)
	if err != nil {
		return false, err
	}
	var live, known []string
	if m.cfg.Nodes != nil {
		if live, known, err = m.cfg.Nodes(ctx, m.st); err != nil {
			return false, err
		}
	}
	var memberNames, waiting []string
	for _, mb := range members {
		if mb.Name == "" {
			continue // a learner not started yet: a node of this version, admitted with a user
		}
		memberNames = append(memberNames, mb.Name)
		if _, ok := users[mb.Name]; !ok {
			waiting = append(waiting, mb.Name)
		}
	}
	for _, n := range live {
		if _, ok := users[n]; !ok && !slices.Contains(waiting, n) {
			waiting = append(waiting, n)
		}
	}
	if len(waiting) > 0 {
		slices.Sort(waiting)
		if w := strings.Join(waiting, ", "); w != m.authWaiting {
			m.authWaiting = w
			m.log.Info("the store does not check certificates yet: it will once these nodes run this version (a store member that is "+
				"gone for good: `shoal node remove` it)", "waiting for", w)
		}
		return false, nil
	}
	if err := store.Put(ctx, m.st, join.AuthKey, join.AuthRecord{Since: time.Now().UTC(), By: m.cfg.Name}); err != nil {
		return false, err
	}
	for _, n := range known {
		if _, ok := users[n]; ok || n == m.cfg.Name {
			continue
		}
		if slices.Contains(memberNames, n) {
			err = m.st.SetAdmin(ctx, n)
		} else {
			err = m.st.SetUser(ctx, n, m.cfg.AgentPermissions(n))
		}
		if err != nil {
			return false, err
		}
		m.log.Info("made the store user of a stopped node that has none", "node", n, "server", slices.Contains(memberNames, n))
	}
	if err := m.st.EnableAuth(ctx, m.cfg.Name); err != nil {
		return false, err
	}
	m.log.Info("the store checks every request's certificate: each node reaches only what its role allows")
	return true, nil
}

// runAuth is the background part: a server turns authentication on once it can, then brings
// the agents' permissions up to this version's (SetUser writes nothing when they are).
func (m *Membership) runAuth(ctx context.Context) {
	if !m.manageAuth() || m.Role() != join.RoleServer {
		return
	}
	for !m.authOn.Load() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		done, err := m.enableAuth(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("turn the store's authentication on; trying again", "err", err)
		}
		m.authOn.Store(done)
	}
	if _, err := m.st.SetUsers(ctx, m.cfg.AgentPermissions); err != nil && ctx.Err() == nil {
		m.log.Warn("keep the agents' store permissions those of this version", "err", err)
	}
}

// watchRemoved returns ErrRemoved once the store refuses this node a read every node may make,
// which it checks each time the store refuses one of its requests.
func (m *Membership) watchRemoved(ctx context.Context) error {
	if !m.manageAuth() {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.st.Refused():
		}
		if err := m.checkRemoved(ctx); err != nil {
			m.log.Error(err.Error())
			return err
		}
	}
}
