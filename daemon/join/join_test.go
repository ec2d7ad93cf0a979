package join

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
)

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":              "https://10.0.0.1:7443",
		"10.0.0.1:9000":         "https://10.0.0.1:9000",
		"https://node1.lan/":    "https://node1.lan:7443",
		"[fd00::1]:7443":        "https://[fd00::1]:7443",
		"fd00::1":               "https://[fd00::1]:7443",
		"https://10.0.0.1:7443": "https://10.0.0.1:7443",
	} {
		got, err := Address(in)
		if err != nil || got != want {
			t.Errorf("Address(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "http://x/y", "user@host", "a b"} {
		if got, err := Address(bad); err == nil {
			t.Errorf("Address(%q) = %q, want an error", bad, got)
		}
	}
}

// TestAdmitterRefuses checks what is refused before the store is asked anything.
func TestAdmitterRefuses(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	a := &Admitter{CA: ca, Token: tok}
	for _, tc := range []struct {
		name, method, auth, body string
		code                     int
	}{
		{"get", http.MethodGet, "Bearer " + tok.Secret, "", http.StatusMethodNotAllowed},
		{"no token", http.MethodPost, "", "{}", http.StatusUnauthorized},
		{"wrong token", http.MethodPost, "Bearer " + strings.Repeat("0", 32), "{}", http.StatusUnauthorized},
		{"not json", http.MethodPost, "Bearer " + tok.Secret, "{", http.StatusBadRequest},
		{"bad address", http.MethodPost, "Bearer " + tok.Secret, `{"node":"n2","addresses":["nope"]}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Errorf("status %d, want %d: %s", w.Code, tc.code, w.Body.String())
			}
		})
	}
	w := httptest.NewRecorder()
	RefuseHandler(func() []string { return []string{"10.0.0.1"} }).ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, nil))
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Errorf("refuse: %d %s", w.Code, w.Body.String())
	}
}
