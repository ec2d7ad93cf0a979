package gitsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// MaxWebhookBody is the largest webhook request body accepted.
const MaxWebhookBody = 1 << 20

// WebhookConfig configures WebhookHandler.
type WebhookConfig struct {
	// Secret is shared with the Git server: the HMAC key of GitHub, Gitea
	// and generic webhooks, the token of GitLab webhooks. Without it every
	// request is refused.
	Secret string
	// Logger receives refused requests; nil discards them.
	Logger *slog.Logger
}

// trigger is what a webhook asks of the Syncer.
type trigger interface {
	Trigger()
	RefName() string
}

// WebhookHandler serves push webhooks that make s fetch at once:
//
//	POST /hooks/github   X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>
//	POST /hooks/gitea    X-Gitea-Signature: <hex HMAC-SHA256 of the body>
//	POST /hooks/gitlab   X-Gitlab-Token: <secret>
//	POST /hooks/generic  X-Signature-256: sha256=<hex HMAC-SHA256 of the body>
//
// A push to the followed ref triggers a fetch (202 Accepted); other events
// and refs are acknowledged and ignored (204). A bad signature or token gets
// 401, a malformed body 400, a body over 1 MiB 413. The generic hook's body
// may be empty or a JSON object with an optional "ref" (full or short
// name). Without a secret every request is refused with 403.
func WebhookHandler(s *Syncer, cfg WebhookConfig) http.Handler {
	return newWebhookHandler(s, cfg)
}

func newWebhookHandler(s trigger, cfg WebhookConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &webhooks{s: s, secret: []byte(cfg.Secret), log: cfg.Logger}
	mux := http.NewServeMux()
	for name, p := range providers {
		mux.Handle("/hooks/"+name, h.handler(name, p))
	}
	return mux
}

type webhooks struct {
	s      trigger
	secret []byte
	log    *slog.Logger
}

// provider is one kind of webhook sender.
type provider struct {
	// authentic checks the request's signature or token.
	authentic func(secret, body []byte, h http.Header) bool
	// push returns whether the request is a push event and its ref ("" for
	// a generic request without a ref).
	push func(h http.Header, body []byte) (isPush bool, ref string, err error)
}

var providers = map[string]provider{
	"github": {
		authentic: func(secret, body []byte, h http.Header) bool {
			return validHMAC(secret, body, h.Get("X-Hub-Signature-256"), "sha256=")
		},
		push: func(h http.Header, body []byte) (bool, string, error) {
			return eventRef(h.Get("X-GitHub-Event") == "push", body)
		},
	},
	"gitea": {
		authentic: func(secret, body []byte, h http.Header) bool {
			return validHMAC(secret, body, h.Get("X-Gitea-Signature"), "")
		},
		push: func(h http.Header, body []byte) (bool, string, error) {
			return eventRef(h.Get("X-Gitea-Event") == "push", body)
		},
	},
	"gitlab": {
		authentic: func(secret, _ []byte, h http.Header) bool {
			tok := h.Get("X-Gitlab-Token")
			return tok != "" && subtle.ConstantTimeCompare([]byte(tok), secret) == 1
		},
		push: func(h http.Header, body []byte) (bool, string, error) {
			ev := h.Get("X-Gitlab-Event")
			return eventRef(ev == "Push Hook" || ev == "Tag Push Hook", body)
		},
	},
	"generic": {
		authentic: func(secret, body []byte, h http.Header) bool {
			return validHMAC(secret, body, h.Get("X-Signature-256"), "sha256=")
		},
		push: func(_ http.Header, body []byte) (bool, string, error) {
			if len(strings.TrimSpace(string(body))) == 0 {
				return true, "", nil
			}
			return eventRef(true, body)
		},
	},
}

// eventRef parses the ref of a push event's JSON body.
func eventRef(isPush bool, body []byte) (bool, string, error) {
	var p struct {
		Ref *string `json:"ref"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return false, "", fmt.Errorf("body is not a JSON object: %w", err)
	}
	if !isPush {
		return false, "", nil
	}
	if p.Ref == nil {
		return true, "", nil
	}
	if *p.Ref == "" {
		return false, "", errors.New(`"ref" is empty`)
	}
	return true, *p.Ref, nil
}

// validHMAC checks that sig is prefix + the hex HMAC-SHA256 of body.
func validHMAC(secret, body []byte, sig, prefix string) bool {
	hexSig, ok := strings.CutPrefix(sig, prefix)
	if !ok || hexSig == "" {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// matchRef reports whether a pushed ref is the followed one; the generic
// hook also accepts the short name.
func matchRef(pushed, followed string) bool {
	if pushed == followed {
		return true
	}
	short := strings.TrimPrefix(strings.TrimPrefix(followed, "refs/heads/"), "refs/tags/")
	return !strings.HasPrefix(pushed, "refs/") && pushed == short
}

func (wh *webhooks) handler(name string, p provider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(wh.secret) == 0 {
			http.Error(w, "webhooks are disabled: configure a webhook secret on this node and in the Git server", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxWebhookBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if !p.authentic(wh.secret, body, r.Header) {
			wh.log.Warn("refused webhook with a bad signature or token", "provider", name, "remote", r.RemoteAddr)
			http.Error(w, "bad signature or token: check that the webhook secret matches this node's", http.StatusUnauthorized)
			return
		}
		isPush, ref, err := p.push(r.Header, body)
		if err != nil {
			http.Error(w, "malformed webhook: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !isPush || (ref != "" && !matchRef(ref, wh.s.RefName())) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		wh.s.Trigger()
		w.WriteHeader(http.StatusAccepted)
	})
}
