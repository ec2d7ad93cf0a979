package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/internal/atomicfile"
)

// clusterState is what a node keeps about its place in the cluster (cluster.json).
type clusterState struct {
	// Member is set on nodes that run a store member.
	Member bool `json:"member"`
	// Joined is set on nodes that joined another node's cluster (the founder has it unset).
	Joined bool `json:"joined,omitempty"`
	// InitialCluster is the member list a joined member starts with.
	InitialCluster string `json:"initialCluster,omitempty"`
	// Endpoints are the store's client URLs the node last knew of other members.
	Endpoints []string `json:"endpoints,omitempty"`
	// Promoted is set once a joined member votes.
	Promoted bool `json:"promoted,omitempty"`
	// Role is what the node joined as ("": a node of an earlier version, a server).
	Role join.Role `json:"role,omitempty"`
	// FoundingToken is set on the founder once it has made the cluster's first join token.
	FoundingToken bool `json:"foundingToken,omitempty"`
}

// followMembers keeps the store endpoints a client node starts with current: the members it
// joined through may all be replaced while it runs.
func followMembers(ctx context.Context, dataDir string, st *store.Client, log *slog.Logger) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		eps, err := st.SyncEndpoints(ctx)
		if err != nil || len(eps) == 0 {
			continue
		}
		state, err := loadState(dataDir)
		if err != nil || state == nil || slices.Equal(state.Endpoints, eps) {
			continue
		}
		state.Endpoints = eps
		if err := saveState(dataDir, state); err != nil {
			log.Warn("save the store's endpoints", "err", err)
		}
	}
}

// loadState reads the node's cluster state, nil for a node that has none yet.
func loadState(dataDir string) (*clusterState, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stateFileName, err)
	}
	var st clusterState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w; restore it or remove the node and join it again with an empty data dir",
			filepath.Join(dataDir, stateFileName), err)
	}
	return &st, nil
}

// saveState replaces the node's cluster state durably (see package atomicfile).
func saveState(dataDir string, st *clusterState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, stateFileName)
	if err := atomicfile.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the node's cluster state: %w", err)
	}
	return nil
}
