package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/linux"
)

// Reset removes everything a node runs and keeps: its pods (stopped with the given grace), their
// cgroups and mounts, and, with removeData, the data directory. The daemon must be stopped.
func Reset(ctx context.Context, dataDir, cgroupParent string, grace time.Duration, removeData bool, log *slog.Logger) error {
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	images, err := image.NewStore(ctx, image.Config{Root: filepath.Join(dataDir, "images"), Logger: log})
	if err != nil {
		return fmt.Errorf("reset: %w (stop the daemon first)", err)
	}
	defer images.Close()
	driver, err := linux.New(linux.Config{Root: filepath.Join(dataDir, "runtime"), Images: images, CgroupParent: cgroupParent, Logger: log})
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	rt, err := lifecycle.New(lifecycle.Config{Driver: driver, Logger: log, EvictionInterval: -1, StateDir: lifecycleDir(dataDir)})
	if err != nil {
		return err
	}
	defer rt.Close()
	pods, err := rt.Pods(ctx)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	var errs []error
	for _, p := range pods {
		log.Info("removing pod", "pod", p.Namespace+"/"+p.Name, "uid", p.UID)
		if err := rt.RemovePod(ctx, p.UID, &grace); err != nil {
			errs = append(errs, err)
		}
	}
	// Leftover containers without a sandbox (a start cut short).
	ctrs, err := driver.Containers(ctx, "")
	if err == nil {
		for _, c := range ctrs {
			if err := driver.RemoveContainer(ctx, c.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The network plane before the cgroups: the load balancer may be attached to the node's cgroup.
	if err := resetNetwork(ctx, dataDir); err != nil {
		errs = append(errs, err)
	}
	for _, cg := range []string{cgroupParent + "/pods", cgroupParent + "/shims", cgroupParent} {
		if err := libct.RemoveCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	if parent := filepath.Dir(cgroupParent); parent != "/" && parent != "." {
		_ = libct.RemoveCgroup(parent) // shared with other nodes: only when it is empty
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if removeData {
		images.Close()
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	return nil
}
