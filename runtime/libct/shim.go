package libct

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Files in a container's state directory.
const (
	specFile  = "spec.json"  // shimSpec without Env, written by the daemon before the shim starts
	stateFile = "state.json" // shimState, written by the shim once the container runs
	exitFile  = "exit.json"  // exitRecord, written by the shim when the container exited
	shimLog   = "shim.log"   // the shim's own stderr
)

// shimSpec is everything the shim needs to create the container but its environment, which
// comes on envFD (see env.go).
type shimSpec struct {
	Config     Config `json:"config"`
	Rootfs     string `json:"rootfs"`
	LcRoot     string `json:"libcontainerRoot"`
	ShimCgroup string `json:"shimCgroup"`
}

// MarshalJSON leaves Config.Env out, whatever the caller set: the environment may hold Secret
// values and never goes to disk. Decoding still reads the Env of a spec.json from an earlier
// version.
func (s shimSpec) MarshalJSON() ([]byte, error) {
	type plain shimSpec // without this method
	p := plain(s)
	p.Config.Env = nil
	return json.Marshal(p)
}

// shimState names the shim and the container init for their whole lives (PID + start time).
type shimState struct {
	ShimPID   int       `json:"shimPid"`
	ShimStart uint64    `json:"shimStartTime"`
	InitPID   int       `json:"initPid"`
	InitStart uint64    `json:"initStartTime"`
	StartedAt time.Time `json:"startedAt"`
}

// exitRecord is the container init's exit, recorded by the shim.
type exitRecord struct {
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// handshake is the shim's one message to the daemon on fd 3.
type handshake struct {
	PID     int    `json:"pid,omitempty"`
	Error   string `json:"error,omitempty"`
	Invalid bool   `json:"invalid,omitempty"` // the error is ErrInvalidConfig
}

// copyDrainTimeout bounds how long the shim waits for the log pipes to close after the
// container's init exited.
const copyDrainTimeout = 5 * time.Second

// runShim is the shim process: "<binary> shim <container state dir>".
func runShim(dir string) int {
	// The shim lives as long as its container: keep it small.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(8 << 20)
	// Stay alive through the signals a session or a node shutdown sends: the exit of
	// the container must still be recorded.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)

	hs := os.NewFile(3, "handshake")
	reply := func(h handshake) {
		_ = json.NewEncoder(hs).Encode(h)
		hs.Close()
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "shoal shim:", err)
		reply(handshake{Error: err.Error(), Invalid: errors.Is(err, ErrInvalidConfig)})
		return 1
	}
	unix.CloseOnExec(3)
	// The environment: read once to start the container, then held open for the container's
	// life, so that the daemon can read it back (also after a restart). Never inherited by the
	// container.
	unix.CloseOnExec(envFD)
	envf := os.NewFile(envFD, "env")
	defer envf.Close()

	var sp shimSpec
	if err := readJSON(filepath.Join(dir, specFile), &sp); err != nil {
		return fail(err)
	}
	cfg := &sp.Config
	env, err := readEnvFile(envf)
	if err != nil {
		return fail(fmt.Errorf("read the container's environment from fd %d: %w", envFD, err))
	}
	cfg.Env = env
	// Orphaned processes of the container are reparented to the shim, which reaps them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("set child subreaper: %w", err))
	}
	if sp.ShimCgroup != "" {
		m, err := manager.New(&cgroups.Cgroup{Path: sp.ShimCgroup, Resources: &cgroups.Resources{SkipDevices: true}})
		if err == nil {
			err = m.Apply(os.Getpid())
		}
		if err != nil {
			return fail(fmt.Errorf("join shim cgroup %s: %w", sp.ShimCgroup, err))
		}
	}

	u, err := resolveUser(sp.Rootfs, cfg.User, cfg.SupplementalGroups)
	if err != nil {
		return fail(err)
	}
	spec, err := buildSpec(cfg, sp.Rootfs, u)
	if err != nil {
		return fail(err)
	}
	lcCfg, err := libcontainerConfig(cfg.ID, spec)
	if err != nil {
		return fail(err)
	}
	lw, err := openLogWriter(cfg.LogPath, cfg.LogMaxSize, cfg.LogMaxFiles)
	if err != nil {
		return fail(err)
	}
	defer lw.close()

	ct, err := libcontainer.Create(sp.LcRoot, cfg.ID, lcCfg)
	if err != nil {
		return fail(fmt.Errorf("%w %q: %w", ErrCreateContainer, cfg.ID, err))
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = ct.Destroy()
		return fail(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = ct.Destroy()
		return fail(err)
	}
	proc := &libcontainer.Process{
		Args:             cfg.Args,
		Env:              spec.Process.Env,
		Cwd:              cfg.Cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.Groups,
		Stdout:           outW,
		Stderr:           errW,
		Init:             true,
	}
	runErr := ct.Run(proc)
	outW.Close()
	errW.Close()
	if runErr != nil {
		_ = ct.Destroy()
		return fail(fmt.Errorf("%w %q: %w", ErrCreateContainer, cfg.ID, runErr))
	}
	pid, _ := proc.Pid()
	lcState, err := ct.State()
	if err != nil {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
		_ = ct.Destroy()
		return fail(fmt.Errorf("%w %q: read state: %w", ErrCreateContainer, cfg.ID, err))
	}
	self, _ := procStartTime(os.Getpid())
	st := shimState{ShimPID: os.Getpid(), ShimStart: self, InitPID: pid, InitStart: lcState.InitProcessStartTime, StartedAt: lcState.Created}
	if err := writeJSONAtomic(filepath.Join(dir, stateFile), st); err != nil {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
		_ = ct.Destroy()
		return fail(err)
	}
	reply(handshake{PID: pid})

	copied := make(chan struct{}, 2)
	for _, s := range []struct {
		name string
		r    *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		go func() {
			if err := lw.copyStream(s.name, s.r); err != nil {
				fmt.Fprintln(os.Stderr, "shoal shim: log", s.name+":", err)
				_, _ = io.Copy(io.Discard, s.r) // keep draining so the container never blocks
			}
			s.r.Close()
			copied <- struct{}{}
		}()
	}

	ps, waitErr := proc.Wait()
	rec := exitRecord{ExitCode: 255}
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				rec.Signal = int(ws.Signal())
				rec.ExitCode = 128 + rec.Signal
			case ws.Exited():
				rec.ExitCode = ws.ExitStatus()
			}
		}
	} else {
		fmt.Fprintln(os.Stderr, "shoal shim: wait for container init:", waitErr)
	}
	rec.FinishedAt = time.Now().UTC()
	reapOrphans()
	deadline := time.NewTimer(copyDrainTimeout)
	for n := 0; n < 2; n++ {
		select {
		case <-copied:
		case <-deadline.C:
			n = 2
		}
	}
	deadline.Stop()
	if m, err := manager.NewWithPaths(lcState.Config.Cgroups, lcState.CgroupPaths); err == nil {
		if n, err := m.OOMKillCount(); err == nil && n > 0 {
			rec.OOMKilled = true
		}
	}
	if err := lw.flush(); err != nil {
		fmt.Fprintln(os.Stderr, "shoal shim: log:", err)
	}
	if err := writeJSONAtomic(filepath.Join(dir, exitFile), rec); err != nil {
		fmt.Fprintln(os.Stderr, "shoal shim: record exit:", err)
		return 1
	}
	return 0
}

// reapOrphans collects exited children that were reparented to the shim.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
