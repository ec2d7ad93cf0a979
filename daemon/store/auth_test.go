package store

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
)

// tlsStore starts a member whose network client URL takes only certificates of a new CA, and
// returns a function that connects with a certificate naming a given user.
func tlsStore(t *testing.T) func(user string) *Client {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	certFor := func(name string) (string, string) {
		keyPEM, csr, err := pki.NewRequest(name)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.SignNode(csr, name, []net.IP{net.ParseIP("127.0.0.1")}, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := os.WriteFile(c, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	srvCert, srvKey := certFor("server-1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clientURL := "https://" + l.Addr().String()
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerURL := "http://" + l2.Addr().String()
	l.Close()
	l2.Close()
	files := TLSFiles{CertFile: srvCert, KeyFile: srvKey, CAFile: caFile}
	e, err := StartEmbedded(testCtx(t), EmbedConfig{Dir: storeDir(t), Name: "server-1", NetworkClientURL: clientURL,
		PeerURL: peerURL, InitialCluster: "server-1=" + peerURL, ClientTLS: files})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return func(user string) *Client {
		t.Helper()
		c, k := certFor(user)
		cl, err := Connect(testCtx(t), Config{Endpoints: []string{clientURL}, CertFile: c, KeyFile: k, CAFile: caFile, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
}

// TestAuthByCertificate checks, on a real member with client certificates, that an agent's
// user reaches only its keys, that an admin reaches everything, and that a deleted user's
// certificate no longer opens the store.
func TestAuthByCertificate(t *testing.T) {
	connectAs := tlsStore(t)
	ctx := testCtx(t)
	admin := connectAs("server-1")
	if err := admin.EnableAuth(ctx, "server-1"); err != nil {
		t.Fatalf("EnableAuth: %v", err)
	}
	if err := admin.EnableAuth(ctx, "server-1"); err != nil {
		t.Fatalf("EnableAuth again: %v", err)
	}
	if on, err := admin.AuthEnabled(ctx); err != nil || !on {
		t.Fatalf("AuthEnabled = %v, %v", on, err)
	}
	perms := []Permission{
		{Key: "/shoal/nodes/agent-1", Write: true},
		{Key: "/shoal/status/agent-1/", Prefix: true, Write: true},
		{Key: "/shoal/services/", Prefix: true},
	}
	if err := admin.SetUser(ctx, "agent-1", perms); err != nil {
		t.Fatalf("SetUser: %v", err)
	}
	if err := admin.SetUser(ctx, "agent-1", perms); err != nil {
		t.Fatalf("SetUser again: %v", err)
	}
	for _, k := range []string{"/shoal/services/web", "/shoal/placements/agent-1/u1", "/shoal/status/agent-2/u2"} {
		if err := Put(ctx, admin, k, "v"); err != nil {
			t.Fatalf("admin put %s: %v", k, err)
		}
	}
	agent := connectAs("agent-1")
	for _, tc := range []struct {
		key         string
		read, write bool
	}{
		{"/shoal/nodes/agent-1", true, true},
		{"/shoal/status/agent-1/u1", true, true},
		{"/shoal/services/web", true, false},
		{"/shoal/placements/agent-1/u1", false, false},
		{"/shoal/status/agent-2/u2", false, false},
		{"/shoal/nodes/agent-2", false, false},
	} {
		_, err := agent.Etcd().Get(ctx, tc.key)
		if tc.read != (err == nil) || (err != nil && !IsPermissionDenied(err)) {
			t.Errorf("agent get %s: %v, want allowed=%v", tc.key, err, tc.read)
		}
		err = Put(ctx, agent, tc.key, "x")
		if tc.write != (err == nil) || (err != nil && !IsPermissionDenied(err)) {
			t.Errorf("agent put %s: %v, want allowed=%v", tc.key, err, tc.write)
		}
	}
	// Fewer permissions: the status prefix is revoked, the rest stays.
	if err := admin.SetUser(ctx, "agent-1", perms[:1]); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, agent, "/shoal/status/agent-1/u1", "x"); !IsPermissionDenied(err) {
		t.Errorf("put after the permission was revoked: %v, want permission denied", err)
	}
	users, err := admin.Users(ctx)
	if err != nil || len(users) != 2 || !users["server-1"] || users["agent-1"] {
		t.Errorf("Users = %v, %v; want server-1 admin and agent-1 not", users, err)
	}
	// Every agent's permissions brought to a version's, the admins untouched.
	n, err := admin.SetUsers(ctx, func(name string) []Permission {
		return []Permission{{Key: "/shoal/nodes/" + name, Write: true}, {Key: "/shoal/services/", Prefix: true}}
	})
	if err != nil || n != 2 {
		t.Fatalf("SetUsers: %d, %v", n, err)
	}
	if _, err := agent.Etcd().Get(ctx, "/shoal/services/web"); err != nil {
		t.Errorf("after SetUsers the agent reads the services: %v", err)
	}
	if err := Put(ctx, admin, "/shoal/placements/agent-1/u2", "v"); err != nil {
		t.Errorf("after SetUsers the admin writes: %v", err)
	}
	// A certificate whose name is no user can do nothing.
	stranger := connectAs("stranger")
	if _, err := stranger.Etcd().Get(ctx, "/shoal/services/web"); !IsPermissionDenied(err) {
		t.Errorf("a certificate of no user read the store: %v", err)
	}
	if err := admin.DeleteUser(ctx, "agent-1"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteUser(ctx, "agent-1"); err != nil {
		t.Fatalf("DeleteUser again: %v", err)
	}
	if _, err := agent.Etcd().Get(ctx, "/shoal/nodes/agent-1"); !IsPermissionDenied(err) {
		t.Errorf("a deleted user's certificate still reads the store: %v", err)
	}
	if err := admin.SetUser(ctx, "root", nil); err == nil {
		t.Error("SetUser root: want an error")
	}
}
