package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// With authentication on, etcd takes a request's user from the common name of the client
// certificate it came with (the store's client URLs require one). Users have no password: a
// node's certificate is its only credential, so deleting its user is what revokes it.

// AdminRole is etcd's built-in role with every permission, membership changes included.
const AdminRole = "root"

// rootUser must exist, with AdminRole, before etcd turns authentication on. No certificate
// names it (node names are checked by the CA), so nobody logs in as it.
const rootUser = "root"

// userRolePrefix names the role that holds a non-admin user's permissions.
const userRolePrefix = "shoal:"

// Permission is a range of keys a user may read, or read and write: the key Key alone, or
// every key that starts with Key when Prefix is set.
type Permission struct {
	Key    string
	Prefix bool
	Write  bool
}

func (p Permission) rangeEnd() string {
	if p.Prefix {
		return clientv3.GetPrefixRangeEnd(p.Key)
	}
	return ""
}

func (p Permission) permType() clientv3.PermissionType {
	if p.Write {
		return clientv3.PermissionType(clientv3.PermReadWrite)
	}
	return clientv3.PermissionType(clientv3.PermRead)
}

// AuthEnabled reports whether the store checks who makes each request. Only an admin may ask
// once it does: a refusal is an answer too.
func (c *Client) AuthEnabled(ctx context.Context) (bool, error) {
	st, err := c.cli.AuthStatus(ctx)
	if IsPermissionDenied(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the store's authentication status: %w", err)
	}
	return st.Enabled, nil
}

// EnableAuth turns the store's authentication on, with admins (the common names of their
// certificates) as users of AdminRole; users the store has already keep their roles. It is a
// no-op when authentication is on, except that the admins are made (or kept) admins. After it,
// a client whose certificate names no user can do nothing.
func (c *Client) EnableAuth(ctx context.Context, admins ...string) error {
	for _, name := range append([]string{rootUser}, admins...) {
		if err := c.SetAdmin(ctx, name); err != nil {
			return err
		}
	}
	on, err := c.AuthEnabled(ctx)
	if err != nil || on {
		return err
	}
	if _, err := c.cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("turn the store's authentication on: %w", err)
	}
	return nil
}

// SetAdmin makes name a user with every permission: a server node, which may become master
// and admits other nodes. A user who is an admin already is only read.
func (c *Client) SetAdmin(ctx context.Context, name string) error {
	user, err := c.user(ctx, name)
	if err != nil {
		return fmt.Errorf("make %s a store admin: %w", name, err)
	}
	if user == nil {
		if err := c.addUser(ctx, name); err != nil {
			return err
		}
	}
	if user == nil || !slices.Contains(user.Roles, AdminRole) {
		if _, err := c.cli.UserGrantRole(ctx, name, AdminRole); err != nil {
			return fmt.Errorf("make %s a store admin: %w", name, err)
		}
	}
	// A server that was an agent before loses its agent role; the admin role covers it.
	if user != nil && slices.Contains(user.Roles, userRolePrefix+name) {
		if _, err := c.cli.RoleDelete(ctx, userRolePrefix+name); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
			return fmt.Errorf("make %s a store admin: drop its former role: %w", name, err)
		}
	}
	return nil
}

// SetUser gives user name exactly perms, through a role of its own: permissions it had and
// perms lacks are revoked, the others granted. A user who was an admin stops being one. A user
// who has exactly perms already is only read, not written: servers call it for every agent when
// they start, to keep the agents' permissions those of their version.
func (c *Client) SetUser(ctx context.Context, name string, perms []Permission) error {
	if name == rootUser {
		return fmt.Errorf("set the store permissions of %q: the name is reserved for the store's administrator", name)
	}
	user, err := c.user(ctx, name)
	if err != nil {
		return fmt.Errorf("set the store permissions of %s: %w", name, err)
	}
	var roles []string
	if user != nil {
		roles = user.Roles
	}
	return c.setUser(ctx, name, user != nil, roles, perms)
}

// SetUsers gives every user that is not an admin the permissions perms returns for it (as
// SetUser does), reading the users once: a server calls it when it starts, to keep the agents'
// permissions those of its version. It returns the users it read.
func (c *Client) SetUsers(ctx context.Context, perms func(name string) []Permission) (int, error) {
	list, err := c.cli.UserList(ctx)
	if err != nil {
		return 0, fmt.Errorf("list the store's users: %w", err)
	}
	n := 0
	for _, name := range list.Users {
		if name == rootUser {
			continue
		}
		u, err := c.cli.UserGet(ctx, name)
		if errors.Is(err, rpctypes.ErrUserNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("read the store user %s: %w", name, err)
		}
		n++
		if slices.Contains(u.Roles, AdminRole) {
			continue
		}
		if err := c.setUser(ctx, name, true, u.Roles, perms(name)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// setUser is SetUser for a user that exists or not, with the roles it has.
func (c *Client) setUser(ctx context.Context, name string, exists bool, granted []string, perms []Permission) error {
	role := userRolePrefix + name
	if !exists {
		if err := c.addUser(ctx, name); err != nil {
			return err
		}
	}
	if !slices.Contains(granted, role) {
		// A role of its own, unless a user of that name left it behind.
		if _, err := c.cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("set the store permissions of %s: %w", name, err)
		}
	}
	have, err := c.cli.RoleGet(ctx, role)
	if err != nil {
		return fmt.Errorf("set the store permissions of %s: %w", name, err)
	}
	want := map[[2]string]Permission{}
	for _, p := range perms {
		k := [2]string{p.Key, p.rangeEnd()}
		if q, ok := want[k]; ok {
			p.Write = p.Write || q.Write
		}
		want[k] = p
	}
	for _, hp := range have.Perm {
		k := [2]string{string(hp.Key), string(hp.RangeEnd)}
		if p, ok := want[k]; ok && hp.PermType == authpb.Permission_Type(p.permType()) {
			delete(want, k)
			continue
		}
		if _, err := c.cli.RoleRevokePermission(ctx, role, k[0], k[1]); err != nil {
			return fmt.Errorf("set the store permissions of %s: revoke %q: %w", name, k[0], err)
		}
	}
	keys := make([][2]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if a[0] != b[0] {
			return compare(a[0], b[0])
		}
		return compare(a[1], b[1])
	})
	for _, k := range keys {
		p := want[k]
		if _, err := c.cli.RoleGrantPermission(ctx, role, k[0], k[1], p.permType()); err != nil {
			return fmt.Errorf("set the store permissions of %s: grant %q: %w", name, k[0], err)
		}
	}
	if !slices.Contains(granted, role) {
		if _, err := c.cli.UserGrantRole(ctx, name, role); err != nil {
			return fmt.Errorf("set the store permissions of %s: %w", name, err)
		}
	}
	if slices.Contains(granted, AdminRole) {
		if _, err := c.cli.UserRevokeRole(ctx, name, AdminRole); err != nil && !errors.Is(err, rpctypes.ErrRoleNotGranted) {
			return fmt.Errorf("set the store permissions of %s: revoke the admin role: %w", name, err)
		}
	}
	return nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeleteUser removes user name and its role: a certificate naming it no longer opens the
// store. Deleting a user that does not exist is not an error.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	if name == rootUser {
		return fmt.Errorf("delete the store user %q: the store's administrator stays", name)
	}
	user, err := c.user(ctx, name)
	if err != nil {
		return fmt.Errorf("delete the store user %s: %w", name, err)
	}
	if user != nil {
		if _, err := c.cli.UserDelete(ctx, name); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
			return fmt.Errorf("delete the store user %s: %w", name, err)
		}
	}
	roles, err := c.cli.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("delete the store role of %s: %w", name, err)
	}
	if slices.Contains(roles.Roles, userRolePrefix+name) {
		if _, err := c.cli.RoleDelete(ctx, userRolePrefix+name); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
			return fmt.Errorf("delete the store role of %s: %w", name, err)
		}
	}
	return nil
}

// Users lists the store's users (root excepted) with whether each is an admin.
func (c *Client) Users(ctx context.Context) (map[string]bool, error) {
	list, err := c.cli.UserList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the store's users: %w", err)
	}
	out := map[string]bool{}
	for _, u := range list.Users {
		if u == rootUser {
			continue
		}
		got, err := c.cli.UserGet(ctx, u)
		if err != nil {
			if errors.Is(err, rpctypes.ErrUserNotFound) {
				continue
			}
			return nil, fmt.Errorf("read the store user %s: %w", u, err)
		}
		out[u] = slices.Contains(got.Roles, AdminRole)
	}
	return out, nil
}

// user returns the store's user name, nil when there is none. It asks for the list first, so
// that a user that does not exist costs no failed request (etcd's client logs each one).
func (c *Client) user(ctx context.Context, name string) (*clientv3.AuthUserGetResponse, error) {
	if name == "" {
		return nil, errors.New("a store user needs a name: the common name of its certificate")
	}
	list, err := c.cli.UserList(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(list.Users, name) {
		return nil, nil
	}
	u, err := c.cli.UserGet(ctx, name)
	if errors.Is(err, rpctypes.ErrUserNotFound) {
		return nil, nil
	}
	return u, err
}

func (c *Client) addUser(ctx context.Context, name string) error {
	_, err := c.cli.UserAddWithOptions(ctx, name, "", &clientv3.UserAddOptions{NoPassword: true})
	if err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("add the store user %s: %w", name, err)
	}
	return nil
}

// IsPermissionDenied reports whether err is the store refusing a request its user may not
// make (or a certificate that names no user).
func IsPermissionDenied(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrUserEmpty) ||
		errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrUserNotFound) ||
		errors.Is(err, rpctypes.ErrInvalidAuthToken)
}
