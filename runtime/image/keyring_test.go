package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/shoal-dev/shoal/runtime/imagetest"
)

func auth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestKeyringLookup(t *testing.T) {
	var k Keyring
	err := k.AddConfigJSON(fmt.Appendf(nil, `{"auths":{
		"registry.example.com": {"auth": %q},
		"registry.example.com/team": {"username": "team", "password": "t"},
		"https://index.docker.io/v1/": {"auth": %q},
		"*.corp.example": {"auth": %q},
		"127.0.0.1:5000": {"auth": %q}
	}}`, auth("host", "h"), auth("hub", "d"), auth("glob", "g"), auth("local", "l")))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.AddDockercfg(fmt.Appendf(nil, `{"registry.example.com": {"auth": %q}}`, auth("second", "s"))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo string
		want []string // usernames, in order
	}{
		{"registry.example.com/app", []string{"host", "second"}},
		{"registry.example.com/team/app", []string{"team", "host", "second"}},
		{"docker.io/library/busybox", []string{"hub"}},
		{"eu.corp.example/app", []string{"glob"}},
		{"a.eu.corp.example/app", nil}, // a glob stands for one part
		{"127.0.0.1:5000/private", []string{"local"}},
		{"127.0.0.1:5001/private", nil}, // another port
		{"other.example.com/app", nil},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			var got []string
			for _, c := range k.Lookup(tt.repo) {
				got = append(got, c.Username)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Lookup(%q) = %v, want %v", tt.repo, got, tt.want)
			}
		})
	}
	for _, tt := range []struct{ ref, want string }{
		{"busybox", "docker.io/library/busybox"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox"},
		{"127.0.0.1:5000/a/b@sha256:" + strings.Repeat("0", 64), "127.0.0.1:5000/a/b"},
	} {
		r, err := name.ParseReference(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := lookupName(r); got != tt.want {
			t.Errorf("lookupName(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestKeyringRejectsBadConfigs(t *testing.T) {
	for _, in := range []string{`[]`, `{"auths": 1}`, `{}`, `{"auths":{"x":{"auth":"%%%"}}}`} {
		var k Keyring
		if err := k.AddConfigJSON([]byte(in)); err == nil {
			t.Errorf("AddConfigJSON(%s) accepted it", in)
		}
	}
	var k Keyring
	if err := k.AddDockercfg([]byte(`{"auths": {}}x`)); err == nil {
		t.Errorf("AddDockercfg accepted bad JSON")
	}
}

func FuzzKeyring(f *testing.F) {
	f.Add([]byte(`{"auths":{"registry.example.com/team":{"auth":"dTpw"}}}`), "registry.example.com/team/app")
	f.Add([]byte(`{"*.example":{"username":"u"}}`), "a.example/x")
	f.Fuzz(func(t *testing.T, data []byte, repo string) {
		var k Keyring
		_ = k.AddConfigJSON(data)
		_ = k.AddDockercfg(data)
		_ = k.Lookup(repo)
	})
}

func TestPullWithKeyring(t *testing.T) {
	ctx := context.Background()
	const user, pass = "puller", "s3cret"
	host := imagetest.StartRegistryWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); (!ok || u != user || p != pass) && r.Header.Get("X-Shoal-Test-Push") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img := smallImage(t, "private")
	imagetest.Push(t, img, host+"/private:v1", withHeader("X-Shoal-Test-Push", "1"))
	nodeConfig := t.TempDir()
	t.Setenv("DOCKER_CONFIG", nodeConfig) // the node has no credentials
	keyring := func(t *testing.T, cfg string) *Keyring {
		var k Keyring
		if err := k.AddConfigJSON([]byte(cfg)); err != nil {
			t.Fatal(err)
		}
		return &k
	}
	good := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth(user, pass))
	wrong := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth(user, "nope"))
	other := fmt.Sprintf(`{"auths":{"registry.example.com":{"auth":%q}}}`, auth(user, pass))

	tests := []struct {
		name string
		kr   *Keyring
		ok   bool
	}{
		{"no keyring", nil, false},
		{"credentials for another registry", keyring(t, other), false},
		{"wrong credentials", keyring(t, wrong), false},
		{"the pod's credentials", keyring(t, good), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, host)
			got, err := s.PullWithKeyring(ctx, host+"/private:v1", PullIfNotPresent, tt.kr)
			if !tt.ok {
				var pe *PullError
				if !errors.As(err, &pe) || pe.Reason != ReasonUnauthorized || !strings.Contains(err.Error(), "imagePullSecret") {
					t.Fatalf("err = %v, want an unauthorized PullError with a hint", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull with the pod's credentials: %v", err)
			}
			if got.Digest != digestOf(t, img) {
				t.Fatalf("digest %s", got.Digest)
			}
		})
	}

	t.Run("the node's credentials after wrong ones of the pod", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(nodeConfig, "config.json"), []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(nodeConfig, "config.json")) })
		s := newTestStore(t, host)
		if _, err := s.PullWithKeyring(ctx, host+"/private:v1", PullAlways, keyring(t, wrong)); err != nil {
			t.Fatalf("pull: %v", err)
		}
	})
}
