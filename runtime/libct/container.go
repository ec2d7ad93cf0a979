package libct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Container is a handle on one container started or re-adopted by a Runner. Its methods
// are safe for concurrent use. Handles are cheap; several may refer to the same container.
type Container struct {
	r   *Runner
	id  string
	dir string
	sp  shimSpec
	st  shimState

	mu    sync.Mutex
	watch *procWatch // the shim; nil once it is known to be gone
	// env is the container's environment once known (envKnown): from Start, or read back from
	// the shim by Env. It is never on disk.
	env      []string
	envKnown bool
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Config returns the container's Config with defaults applied and without Env, which is not
// kept on disk (see Env).
func (c *Container) Config() Config { return c.sp.Config }

// PID returns the container init's PID on the host.
func (c *Container) PID() int { return c.st.InitPID }

// LogPath returns the container's log file (see ReadLog).
func (c *Container) LogPath() string { return c.sp.Config.LogPath }

// Start creates and starts the container described by cfg and returns once its process
// runs. It is idempotent per ID: if that container is already running it is returned
// unchanged. A container that exists but exited gives ErrAlreadyExists (Delete it first).
// A failure to create the container gives an error wrapping ErrCreateContainer with
// libcontainer's cause; a bad Config gives ErrInvalidConfig.
func (r *Runner) Start(ctx context.Context, cfg Config) (*Container, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
	}
	if !cfg.Privileged && !cfg.SeccompUnconfined { // the container gets a seccomp profile
		if err := CheckSeccomp(); err != nil {
			return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
		}
	}
	unlock := r.lock(cfg.ID)
	defer unlock()

	dir := r.dir(cfg.ID)
	if _, err := os.Stat(dir); err == nil {
		c, err := r.load(ctx, cfg.ID)
		switch {
		case err == nil:
			st, err := c.State(ctx)
			if err != nil {
				return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
			}
			if st.Status == StatusRunning {
				return c, nil
			}
			return nil, fmt.Errorf("start container %q: %w (status %s); delete it first", cfg.ID, ErrAlreadyExists, st.Status)
		case errors.Is(err, ErrNotFound):
			// Left over from a start that never finished (the daemon died during it).
			if err := r.cleanup(cfg.ID); err != nil {
				return nil, fmt.Errorf("start container %q: clean up an unfinished start: %w", cfg.ID, err)
			}
		default:
			return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
		}
	}

	cfg.setDefaults(dir)
	if err := checkMountSources(cfg.Mounts); err != nil {
		return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
	}
	c, err := r.start(ctx, dir, cfg)
	if err != nil {
		if cerr := r.cleanup(cfg.ID); cerr != nil {
			err = fmt.Errorf("%w (and clean up: %v)", err, cerr)
		}
		return nil, fmt.Errorf("start container %q: %w", cfg.ID, err)
	}
	return c, nil
}

func (r *Runner) start(ctx context.Context, dir string, cfg Config) (*Container, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	rootfs, err := mountRootfs(dir, cfg.Lower)
	if err != nil {
		return nil, err
	}
	// spec.json has everything but the environment (shimSpec.MarshalJSON leaves it out), which
	// goes to the shim in a memfd.
	sp := shimSpec{Config: cfg, Rootfs: rootfs, LcRoot: r.lcRoot(), ShimCgroup: r.shimCgroupOf(cfg.ID)}
	if err := writeJSONAtomic(filepath.Join(dir, specFile), sp); err != nil {
		return nil, err
	}
	envf, err := newEnvFile(cfg.Env)
	if err != nil {
		return nil, err
	}
	err = r.spawnShim(ctx, dir, envf)
	envf.Close() // the shim holds its own copy of the fd
	if err != nil {
		return nil, err
	}
	c, err := r.load(ctx, cfg.ID)
	if err != nil {
		return nil, err
	}
	c.env, c.envKnown = slices.Clone(cfg.Env), true
	return c, nil
}

// spawnShim starts the shim detached from the daemon, with envf (the container's environment)
// as its fd 4, and waits for its handshake on fd 3.
func (r *Runner) spawnShim(ctx context.Context, dir string, envf *os.File) error {
	hsR, hsW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer hsR.Close()
	logf, err := os.OpenFile(filepath.Join(dir, shimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		hsW.Close()
		return err
	}
	cmd := exec.Command(r.shimPath, "shim", dir)
	cmd.Dir = "/"
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{hsW, envf} // fds 3 and envFD
	// A new session: no controlling terminal and no signals aimed at the daemon's process
	// group. No parent-death signal: the shim outlives the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	hsW.Close()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start shim %s: %w", r.shimPath, err)
	}
	pidfd, perr := unix.PidfdOpen(cmd.Process.Pid, 0)
	_ = cmd.Process.Release() // reaped through pidfd by Container.Wait/State

	stop := context.AfterFunc(ctx, func() { _ = hsR.SetReadDeadline(time.Unix(1, 0)) })
	msg, rerr := io.ReadAll(io.LimitReader(hsR, 64<<10))
	stop()
	var hs handshake
	if rerr == nil && len(msg) > 0 {
		rerr = json.Unmarshal(msg, &hs)
	}
	kill := func() {
		if perr != nil {
			return
		}
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
		unix.Close(pidfd)
	}
	switch {
	case rerr != nil && ctx.Err() != nil:
		kill()
		return fmt.Errorf("wait for shim: %w", ctx.Err())
	case rerr != nil:
		kill()
		return fmt.Errorf("%w: read shim handshake: %v%s", ErrCreateContainer, rerr, shimLogTail(dir))
	case len(msg) == 0:
		kill()
		return fmt.Errorf("%w: shim exited without a word%s", ErrCreateContainer, shimLogTail(dir))
	case hs.Error != "":
		kill()
		cls := ErrCreateContainer
		if hs.Invalid {
			cls = ErrInvalidConfig
		}
		return fmt.Errorf("%w: %s", cls, strings.TrimPrefix(hs.Error, cls.Error()+" "))
	}
	if perr == nil {
		unix.Close(pidfd) // the Container opens its own, checked against the recorded start time
	}
	return nil
}

func shimLogTail(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, shimLog))
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s == "" {
		return ""
	}
	return "; shim log: " + s
}

// load reads a container's state dir. It returns ErrNotFound unless the shim has reported
// the container started.
func (r *Runner) load(_ context.Context, id string) (*Container, error) {
	dir := r.dir(id)
	c := &Container{r: r, id: id, dir: dir}
	if err := readJSON(filepath.Join(dir, specFile), &c.sp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load container %q: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("load container %q: %w", id, err)
	}
	if c.sp.Config.Env != nil {
		// A spec.json written before the environment was kept off disk; its shim has no copy.
		c.env, c.envKnown = c.sp.Config.Env, true
		c.sp.Config.Env = nil
	}
	if err := readJSON(filepath.Join(dir, stateFile), &c.st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load container %q: %w (its start did not finish)", id, ErrNotFound)
		}
		return nil, fmt.Errorf("load container %q: %w", id, err)
	}
	w, ok, err := watchProc(c.st.ShimPID, c.st.ShimStart)
	if err != nil {
		return nil, fmt.Errorf("load container %q: %w", id, err)
	}
	if ok {
		c.watch = w
	}
	return c, nil
}

// shimGone reports whether the shim has exited (reaping it if it was our child).
func (c *Container) shimGone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch == nil {
		return true
	}
	if c.watch.exited() {
		c.watch.close()
		c.watch = nil
		return true
	}
	return false
}

func (c *Container) readExit() (*exitRecord, error) {
	var rec exitRecord
	err := readJSON(filepath.Join(c.dir, exitFile), &rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// State reports the container's status. It does not block.
func (c *Container) State(_ context.Context) (State, error) {
	st := State{ID: c.id, PID: c.st.InitPID, StartedAt: c.st.StartedAt, LogPath: c.sp.Config.LogPath, Status: StatusRunning}
	gone := c.shimGone()
	rec, err := c.readExit()
	if err != nil {
		return st, fmt.Errorf("state of container %q: %w", c.id, err)
	}
	if rec == nil && !gone {
		return st, nil
	}
	if rec == nil {
		// The shim died without recording the exit (it was killed). The container may
		// still run on its own, without logging.
		if t, err := procStartTime(c.st.InitPID); err == nil && t == c.st.InitStart {
			return st, nil
		}
		rec = &exitRecord{ExitCode: 255}
		st.Reason = ReasonUnknown
	}
	st.Status = StatusExited
	st.ExitCode, st.Signal, st.OOMKilled, st.FinishedAt = rec.ExitCode, rec.Signal, rec.OOMKilled, rec.FinishedAt
	switch {
	case st.Reason != "":
	case rec.OOMKilled:
		st.Reason = ReasonOOMKilled
	case rec.ExitCode == 0:
		st.Reason = ReasonCompleted
	default:
		st.Reason = ReasonError
	}
	return st, nil
}

// Wait blocks until the container has exited (and its exit is recorded) or ctx ends.
func (c *Container) Wait(ctx context.Context) (State, error) {
	c.mu.Lock()
	w := c.watch
	c.mu.Unlock()
	if w != nil {
		if err := w.wait(ctx); err != nil {
			return State{}, fmt.Errorf("wait for container %q: %w", c.id, err)
		}
	}
	st, err := c.State(ctx)
	if err != nil || st.Status == StatusExited {
		return st, err
	}
	// Shim gone, container still running on its own: follow the init itself.
	iw, ok, err := watchProc(c.st.InitPID, c.st.InitStart)
	if err != nil {
		return st, fmt.Errorf("wait for container %q: %w", c.id, err)
	}
	if ok {
		defer iw.close()
		if err := iw.wait(ctx); err != nil {
			return State{}, fmt.Errorf("wait for container %q: %w", c.id, err)
		}
	}
	return c.State(ctx)
}

func (c *Container) libcontainer() (*libcontainer.Container, error) {
	lc, err := libcontainer.Load(c.r.lcRoot(), c.id)
	if err != nil {
		return nil, fmt.Errorf("load libcontainer state: %w", err)
	}
	return lc, nil
}

// Signal sends sig to the container's init process.
func (c *Container) Signal(_ context.Context, sig os.Signal) error {
	lc, err := c.libcontainer()
	if err != nil {
		return fmt.Errorf("signal container %q: %w", c.id, err)
	}
	if err := lc.Signal(sig); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("signal container %q: %w", c.id, ErrNotRunning)
		}
		return fmt.Errorf("signal container %q: %w", c.id, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace for the container to exit, then sends SIGKILL and
// waits for the exit. Stopping an exited container returns its state.
func (c *Container) Stop(ctx context.Context, grace time.Duration) (State, error) {
	st, err := c.State(ctx)
	if err != nil || st.Status == StatusExited {
		return st, err
	}
	if grace > 0 {
		if err := c.Signal(ctx, unix.SIGTERM); err != nil && !errors.Is(err, ErrNotRunning) {
			return st, fmt.Errorf("stop: %w", err)
		}
		gctx, cancel := context.WithTimeout(ctx, grace)
		st, err = c.Wait(gctx)
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, fmt.Errorf("stop container %q: %w", c.id, ctx.Err())
		}
	}
	if err := c.Signal(ctx, unix.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return st, fmt.Errorf("stop: %w", err)
	}
	return c.Wait(ctx)
}

// DeleteOption changes what Delete removes.
type DeleteOption func(*deleteOpts)

type deleteOpts struct{ removeLogs bool }

// RemoveLogs makes Delete also remove the container's log files.
func RemoveLogs() DeleteOption { return func(o *deleteOpts) { o.removeLogs = true } }

// Delete kills the container if it still runs, waits for its exit to be recorded, then
// removes its rootfs mount, cgroup, libcontainer state and state directory. Logs are kept
// unless RemoveLogs is given. Delete of a deleted container is a no-op.
func (c *Container) Delete(ctx context.Context, opts ...DeleteOption) error {
	var o deleteOpts
	for _, f := range opts {
		f(&o)
	}
	unlock := c.r.lock(c.id)
	defer unlock()
	if _, err := os.Stat(c.dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := c.Stop(ctx, 0); err != nil {
		return fmt.Errorf("delete container %q: %w", c.id, err)
	}
	c.mu.Lock()
	w := c.watch
	c.mu.Unlock()
	if w != nil {
		if err := w.wait(ctx); err != nil {
			return fmt.Errorf("delete container %q: wait for shim: %w", c.id, err)
		}
		c.shimGone()
	}
	if err := c.r.cleanup(c.id); err != nil {
		return fmt.Errorf("delete container %q: %w", c.id, err)
	}
	if o.removeLogs {
		files, _ := logFiles(c.sp.Config.LogPath)
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete container %q: remove log: %w", c.id, err)
			}
		}
	}
	return nil
}

// cleanup removes everything a container left: libcontainer state and cgroup, rootfs
// mount, shim cgroup and state dir. The container must not be running.
func (r *Runner) cleanup(id string) error {
	var errs []error
	if lc, err := libcontainer.Load(r.lcRoot(), id); err == nil {
		if err := lc.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("destroy libcontainer state: %w", err))
		}
	} else if !errors.Is(err, libcontainer.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("load libcontainer state: %w", err))
	}
	dir := r.dir(id)
	if err := unmountRootfs(dir); err != nil {
		errs = append(errs, err)
	} else if mounted, _ := isMountPoint(filepath.Join(dir, "rootfs")); !mounted {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if m, err := manager.New(&cgroups.Cgroup{Path: r.shimCgroupOf(id), Resources: &cgroups.Resources{SkipDevices: true}}); err == nil {
		if err := m.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("remove shim cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}
