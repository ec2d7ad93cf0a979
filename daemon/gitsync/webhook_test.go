package gitsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const hookSecret = "shoal-test-secret"

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

// hookRequest builds a provider's push request for ref, signed with secret.
func hookRequest(provider, ref, secret string) *http.Request {
	body := `{"ref":"` + ref + `","after":"0123"}`
	req := httptest.NewRequest(http.MethodPost, "/hooks/"+provider, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch provider {
	case "github":
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+sign(secret, body))
	case "gitea":
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Signature", sign(secret, body))
	case "gitlab":
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("X-Gitlab-Token", secret)
	case "generic":
		req.Header.Set("X-Signature-256", "sha256="+sign(secret, body))
	}
	return req
}

type fakeTrigger struct{ n atomic.Int32 }

func (f *fakeTrigger) Trigger()        { f.n.Add(1) }
func (f *fakeTrigger) RefName() string { return "refs/heads/main" }

func TestWebhookHandler(t *testing.T) {
	generic := func(body, sig string) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/hooks/generic", strings.NewReader(body))
		req.Header.Set("X-Signature-256", sig)
		return req
	}
	cases := []struct {
		name    string
		secret  string
		req     *http.Request
		code    int
		trigger bool
	}{
		{"github push", hookSecret, hookRequest("github", "refs/heads/main", hookSecret), 202, true},
		{"gitea push", hookSecret, hookRequest("gitea", "refs/heads/main", hookSecret), 202, true},
		{"gitlab push", hookSecret, hookRequest("gitlab", "refs/heads/main", hookSecret), 202, true},
		{"generic push", hookSecret, hookRequest("generic", "refs/heads/main", hookSecret), 202, true},
		{"generic short ref", hookSecret, generic(`{"ref":"main"}`, "sha256="+sign(hookSecret, `{"ref":"main"}`)), 202, true},
		{"generic empty body", hookSecret, generic("", "sha256="+sign(hookSecret, "")), 202, true},
		{"github other branch", hookSecret, hookRequest("github", "refs/heads/dev", hookSecret), 204, false},
		{"gitlab tag", hookSecret, hookRequest("gitlab", "refs/tags/main", hookSecret), 204, false},
		{"generic other ref", hookSecret, generic(`{"ref":"dev"}`, "sha256="+sign(hookSecret, `{"ref":"dev"}`)), 204, false},
		{"github bad signature", hookSecret, hookRequest("github", "refs/heads/main", "wrong"), 401, false},
		{"gitea bad signature", hookSecret, hookRequest("gitea", "refs/heads/main", "wrong"), 401, false},
		{"gitlab bad token", hookSecret, hookRequest("gitlab", "refs/heads/main", "wrong"), 401, false},
		{"generic bad signature", hookSecret, hookRequest("generic", "refs/heads/main", "wrong"), 401, false},
		{"generic no signature", hookSecret, generic(`{}`, ""), 401, false},
		{"generic signature not hex", hookSecret, generic(`{}`, "sha256=zz"), 401, false},
		{"github ping", hookSecret, func() *http.Request {
			r := hookRequest("github", "refs/heads/main", hookSecret)
			r.Header.Set("X-GitHub-Event", "ping")
			return r
		}(), 204, false},
		{"malformed json", hookSecret, generic(`{"ref":`, "sha256="+sign(hookSecret, `{"ref":`)), 400, false},
		{"ref not a string", hookSecret, generic(`{"ref":1}`, "sha256="+sign(hookSecret, `{"ref":1}`)), 400, false},
		{"body too large", hookSecret, func() *http.Request {
			body := `{"ref":"` + strings.Repeat("x", MaxWebhookBody) + `"}`
			return generic(body, "sha256="+sign(hookSecret, body))
		}(), 413, false},
		{"GET", hookSecret, httptest.NewRequest(http.MethodGet, "/hooks/github", nil), 405, false},
		{"no secret", "", hookRequest("github", "refs/heads/main", ""), 403, false},
		{"no secret gitlab", "", hookRequest("gitlab", "refs/heads/main", ""), 403, false},
		{"unknown provider", hookSecret, httptest.NewRequest(http.MethodPost, "/hooks/bitbucket", nil), 404, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTrigger{}
			rec := httptest.NewRecorder()
			newWebhookHandler(f, WebhookConfig{Secret: tc.secret}).ServeHTTP(rec, tc.req)
			if rec.Code != tc.code {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tc.code, strings.TrimSpace(rec.Body.String()))
			}
			if got := f.n.Load() == 1; got != tc.trigger {
				t.Errorf("triggered = %v, want %v", got, tc.trigger)
			}
		})
	}
}

// TestWebhookFetches sends each provider's webhook to a Syncer following a
// repository served by git http-backend and polling only hourly: a good
// webhook brings the new commit at once, a bad one nothing.
func TestWebhookFetches(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	srv := serveHTTP(t, filepath.Dir(up))
	s := newSyncer(t, Config{URL: srv.url(filepath.Base(up))})
	start(t, s)
	waitHead(t, s, runGit(t, up, "rev-parse", "HEAD"), 10*time.Second)
	hooks := httptest.NewServer(WebhookHandler(s, WebhookConfig{Secret: hookSecret, Logger: testLogger(t)}))
	t.Cleanup(hooks.Close)

	post := func(provider, secret string) int {
		t.Helper()
		req := hookRequest(provider, "refs/heads/main", secret)
		out, err := http.NewRequest(http.MethodPost, hooks.URL+req.URL.Path, req.Body)
		if err != nil {
			t.Fatal(err)
		}
		out.Header = req.Header
		resp, err := hooks.Client().Do(out)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, provider := range []string{"github", "gitea", "gitlab", "generic"} {
		t.Run(provider, func(t *testing.T) {
			sha := commitFiles(t, up, map[string]string{"a.yaml": configMap("a" + strings.Repeat("a", i+1))}, provider)
			if code := post(provider, "wrong"); code != http.StatusUnauthorized {
				t.Fatalf("bad signature: status %d, want 401", code)
			}
			noHead(t, s, 300*time.Millisecond)
			if code := post(provider, hookSecret); code != http.StatusAccepted {
				t.Fatalf("good signature: status %d, want 202", code)
			}
			waitHead(t, s, sha, 5*time.Second)
		})
	}
}

func FuzzWebhookPayload(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "push")
	f.Add([]byte(`{"ref":""}`), "push")
	f.Add([]byte(`{}`), "ping")
	f.Add([]byte(`[1,2]`), "push")
	f.Add([]byte(`{"ref":"main","commits":[{"id":"x"}]}`), "Push Hook")
	f.Fuzz(func(t *testing.T, body []byte, event string) {
		for name, p := range providers {
			h := http.Header{}
			h.Set("X-GitHub-Event", event)
			h.Set("X-Gitea-Event", event)
			h.Set("X-Gitlab-Event", event)
			isPush, ref, err := p.push(h, body)
			if err != nil && isPush {
				t.Fatalf("%s: error %v with isPush", name, err)
			}
			if ref != "" && !isPush {
				t.Fatalf("%s: ref %q without a push", name, ref)
			}
			_ = p.authentic([]byte(hookSecret), body, h)
			_ = matchRef(ref, "refs/heads/main")
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/hooks/generic", bytes.NewReader(body))
		req.Header.Set("X-Signature-256", "sha256="+sign(hookSecret, string(body)))
		newWebhookHandler(&fakeTrigger{}, WebhookConfig{Secret: hookSecret}).ServeHTTP(rec, req)
		switch rec.Code {
		case 202, 204, 400:
		default:
			t.Fatalf("generic hook answered %d", rec.Code)
		}
	})
}
