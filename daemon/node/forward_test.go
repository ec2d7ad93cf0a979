package node

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
)

// TestServersOnly calls a handler behind serversOnly over mutual TLS with certificates of each
// role: only a server's, of a node registered now, gets through.
func TestServersOnly(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(node, role string) ([]byte, []byte) {
		keyPEM, csr, err := pki.NewRequest(node)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := ca.SignNodeRole(csr, node, role, nil, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, keyPEM
	}
	srvCert, srvKey := sign("n1", "server")
	tc, err := pki.ServerTLS(ca, srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	registered := func(_ context.Context, name string) (bool, error) { return name != "gone", nil }
	ts := httptest.NewUnstartedServer(serversOnly(registered, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("through"))
	})))
	ts.TLS = tc
	ts.StartTLS()
	defer ts.Close()
	for _, tc := range []struct {
		node, role string
		code       int
		want       string
	}{
		{"n2", "server", http.StatusOK, "through"},
		{"n3", "agent", http.StatusForbidden, "node n3 has the role agent"},
		{"n4", "", http.StatusForbidden, "names no role"},
		{"gone", "server", http.StatusForbidden, "not registered"},
		{"", "", http.StatusUnauthorized, "with their certificates"},
	} {
		t.Run(tc.node+"-"+tc.role, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13, ServerName: "n1"}
			if tc.node != "" {
				c, k := sign(tc.node, tc.role)
				if cfg, err = pki.ClientTLS(ca, c, k); err != nil {
					t.Fatal(err)
				}
				cfg.ServerName = "n1"
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			resp, err := hc.Get(ts.URL + "/v1/namespaces/default/pods/p/log")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := new(strings.Builder)
			_, _ = io.Copy(body, resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(body.String(), tc.want) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tc.code, tc.want)
			}
		})
	}
}
