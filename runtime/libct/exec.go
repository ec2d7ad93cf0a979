package libct

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// ExecConfig describes a process to run inside a running container.
type ExecConfig struct {
	Args []string
	// Env is added to the container's environment (see Container.Env; same names override).
	Env []string
	// Cwd defaults to the container's working directory, User to the container's user.
	Cwd, User string
	// Stdin, if set, must reach EOF for Exec to return; Stdout and Stderr may be nil.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Exec runs a process in the running container's namespaces and cgroup, with the
// container's capabilities, seccomp profile and no_new_privs, and returns its exit code
// (128+signal if a signal killed it). Cancelling ctx kills the process. Used by "shoal exec"
// and exec probes.
func (c *Container) Exec(ctx context.Context, ec ExecConfig) (int, error) {
	if len(ec.Args) == 0 {
		return -1, fmt.Errorf("exec in container %q: %w: no command", c.id, ErrInvalidConfig)
	}
	st, err := c.State(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec in container %q: %w", c.id, err)
	}
	if st.Status != StatusRunning {
		return -1, fmt.Errorf("exec in container %q: %w", c.id, ErrNotRunning)
	}
	lc, err := c.libcontainer()
	if err != nil {
		return -1, fmt.Errorf("exec in container %q: %w", c.id, err)
	}
	cfg := c.sp.Config
	userSpec := ec.User
	if userSpec == "" {
		userSpec = cfg.User
	}
	u, err := resolveUser(c.sp.Rootfs, userSpec, cfg.SupplementalGroups)
	if err != nil {
		return -1, fmt.Errorf("exec in container %q: %w", c.id, err)
	}
	cwd := ec.Cwd
	if cwd == "" {
		cwd = cfg.Cwd
	}
	env, err := c.Env(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec in container %q: %w", c.id, err)
	}
	proc := &libcontainer.Process{
		Args:             ec.Args,
		Env:              withDefaultEnv(mergeEnv(env, ec.Env), u.Home),
		Cwd:              cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.Groups,
		Stdin:            ec.Stdin,
		Stdout:           ec.Stdout,
		Stderr:           ec.Stderr,
	}
	if err := lc.Run(proc); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			err = ErrNotRunning
		}
		return -1, fmt.Errorf("exec %q in container %q: %w", ec.Args[0], c.id, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = proc.Signal(unix.SIGKILL) })
	ps, err := proc.Wait()
	stop()
	code := -1
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			case ws.Exited():
				code = ws.ExitStatus()
			}
		}
	}
	if ctx.Err() != nil {
		return code, fmt.Errorf("exec %q in container %q: %w", ec.Args[0], c.id, ctx.Err())
	}
	if ps == nil && err != nil {
		return code, fmt.Errorf("exec %q in container %q: wait: %w", ec.Args[0], c.id, err)
	}
	return code, nil
}

// mergeEnv returns base with the entries of extra added, extra winning on equal names.
func mergeEnv(base, extra []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(extra))
	for _, e := range append(append([]string(nil), base...), extra...) {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}
