package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/shoal-dev/shoal/daemon/cluster"
)

// SecretsBackend is a Backend that keeps the cluster's keyring (cluster.Backend): `shoal secrets`.
// Its errors wrap cluster.ErrNoCAKey on a node that cannot open the keyring and
// cluster.ErrNotEncrypted in a cluster that keeps none (409 both).
type SecretsBackend interface {
	// SecretsStatus reports the keyring's keys and what uses each.
	SecretsStatus(ctx context.Context) (cluster.SecretsReport, error)
	// RotateSecretsKey adds a new primary key, encrypts every stored Secret with it and removes
	// the other keys; run again, it finishes a rotation cut short.
	RotateSecretsKey(ctx context.Context) (cluster.SecretsReport, error)
}

func (h *handler) secretsBackend(w http.ResponseWriter) (SecretsBackend, bool) {
	sb, ok := h.cfg.Backend.(SecretsBackend)
	if !ok {
		writeError(w, http.StatusNotFound, errors.New("this daemon keeps no keyring"))
	}
	return sb, ok
}

func secretsCode(err error) int {
	if errors.Is(err, cluster.ErrNoCAKey) || errors.Is(err, cluster.ErrNotEncrypted) {
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// secretsStatus answers GET /v1/secrets/keyring with a cluster.SecretsReport.
func (h *handler) secretsStatus(w http.ResponseWriter, r *http.Request) {
	sb, ok := h.secretsBackend(w)
	if !ok {
		return
	}
	rep, err := sb.SecretsStatus(r.Context())
	if err != nil {
		writeError(w, secretsCode(err), err)
		return
	}
	writeJSON(w, rep)
}

// rotateKey answers POST /v1/secrets/rotate-key with what the rotation did (cluster.SecretsReport).
func (h *handler) rotateKey(w http.ResponseWriter, r *http.Request) {
	sb, ok := h.secretsBackend(w)
	if !ok {
		return
	}
	rep, err := sb.RotateSecretsKey(r.Context())
	if err != nil {
		writeError(w, secretsCode(err), err)
		return
	}
	h.cfg.Logger.Info("secrets key rotated", "primary", rep.Primary, "added", rep.Added, "resumed", rep.Resumed,
		"reencrypted", rep.Reencrypted, "removed", rep.Removed)
	writeJSON(w, rep)
}
