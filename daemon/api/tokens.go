package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
)

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Role is server or agent.
	Role string `json:"role"`
	// TTL is how long the token admits nodes, as Go writes durations ("24h", "90m"); "0" for
	// ever, "" for the default (join.DefaultTokenTTL).
	TTL         string `json:"ttl,omitempty"`
	Description string `json:"description,omitempty"`
}

// CreatedToken answers POST /v1/tokens: the token, shown this once, and its record.
type CreatedToken struct {
	Token string         `json:"token"`
	Info  join.TokenInfo `json:"info"`
}

// TokenList answers GET /v1/tokens: the tokens without their secrets.
type TokenList struct {
	Items []join.TokenInfo `json:"items"`
}

func (h *handler) tokens(w http.ResponseWriter) (Tokens, bool) {
	if h.cfg.Tokens == nil {
		writeError(w, http.StatusNotFound, errors.New("this API serves no join tokens: use the unix socket of a node of the cluster"))
		return nil, false
	}
	return h.cfg.Tokens, true
}

func (h *handler) listTokens(w http.ResponseWriter, r *http.Request) {
	t, ok := h.tokens(w)
	if !ok {
		return
	}
	list, err := t.ListTokens(r.Context())
	if err != nil {
		writeError(w, tokenCode(err), err)
		return
	}
	if list == nil {
		list = []join.TokenInfo{}
	}
	writeJSON(w, TokenList{Items: list})
}

func (h *handler) createToken(w http.ResponseWriter, r *http.Request) {
	t, ok := h.tokens(w)
	if !ok {
		return
	}
	var req TokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("the token request is not valid JSON: %w", err))
		return
	}
	role, err := join.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ttl := join.DefaultTokenTTL
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("ttl %q: %w; give a duration such as 24h or 90m, or 0 for a token that never expires", req.TTL, err))
			return
		}
	}
	tok, info, err := t.CreateToken(r.Context(), join.TokenSpec{Role: role, TTL: ttl, Description: req.Description})
	if err != nil {
		writeError(w, tokenCode(err), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(CreatedToken{Token: tok.String(), Info: info})
}

func (h *handler) deleteToken(w http.ResponseWriter, r *http.Request) {
	t, ok := h.tokens(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if err := t.DeleteToken(r.Context(), id); err != nil {
		writeError(w, tokenCode(err), err)
		return
	}
	writeJSON(w, map[string]string{"token": id, "action": "deleted"})
}

func tokenCode(err error) int {
	switch {
	case errors.Is(err, join.ErrNotServer):
		return http.StatusForbidden
	case errors.Is(err, join.ErrBadTokenSpec):
		return http.StatusBadRequest
	case errors.Is(err, join.ErrTokenNotFound):
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}
