package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/internal/atomicfile"
	"github.com/shoal-dev/shoal/manifests"
	"golang.org/x/sys/unix"
)

// storageCapacity returns the size in bytes of the filesystem that holds dir: the ephemeral
// storage the node offers its pods (their writable layers, logs and emptyDir volumes live in
// the data dir).
func storageCapacity(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	return int64(st.Blocks) * unit, nil
}

// taintsFile is where a node keeps its taints with the time it first had each, so that a
// restart with the same --node-taint flags does not restart the clocks of NoExecute
// tolerations.
const taintsFile = "taints.json"

// nodeTaints returns the node's taints as it registers them: a NoExecute taint keeps the
// time recorded in dataDir when the node had it already, and is stamped now when new. It
// records the taints in dataDir for the next start; a record it cannot read counts as none.
func nodeTaints(dataDir string, taints []manifests.Taint, now time.Time) ([]cluster.NodeTaint, error) {
	path := filepath.Join(dataDir, taintsFile)
	var before []cluster.NodeTaint
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &before) // a damaged record: the taints start now
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []cluster.NodeTaint
	for _, t := range taints {
		nt := cluster.NodeTaint{Taint: t}
		if t.Effect == manifests.TaintEffectNoExecute {
			nt.TimeAdded = now.UTC().Truncate(time.Second)
			for _, b := range before {
				if b.Taint == t && !b.TimeAdded.IsZero() {
					nt.TimeAdded = b.TimeAdded
				}
			}
		}
		out = append(out, nt)
	}
	if len(out) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove %s: %w", path, err)
		}
		return nil, nil
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("record taints: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("record taints: %w", err)
	}
	return out, nil
}
