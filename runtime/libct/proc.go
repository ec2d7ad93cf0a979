package libct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procStartTime returns field 22 (starttime, in clock ticks since boot) of /proc/<pid>/stat.
// Together with the PID it names one process for its whole life.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command field", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// procWatch follows one process through a pidfd registered with Go's poller, so waiting for
// the exit needs neither polling nor a goroutine per process.
type procWatch struct {
	f *os.File
}

// watchProc opens a pidfd for pid and checks that it is still the process started at
// startTime (so a recycled PID is never mistaken for it). It returns ok=false if the
// process is gone.
func watchProc(pid int, startTime uint64) (w *procWatch, ok bool, err error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	st, err := procStartTime(pid)
	if err != nil || st != startTime {
		unix.Close(fd)
		return nil, false, nil //nolint:nilerr // gone or recycled: not ours any more
	}
	return &procWatch{f: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}, true, nil
}

func (w *procWatch) exited() bool {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return true
	}
	done := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		done = err == nil && n > 0
	})
	if done {
		w.reap()
	}
	return done
}

// reap collects the exit status if the process is our child (the daemon that started the
// shim); for a re-adopted shim waitid fails with ECHILD, which is fine.
func (w *procWatch) reap() {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
	})
}

// wait blocks until the process exits or ctx ends.
func (w *procWatch) wait(ctx context.Context) error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		// A deadline left by an earlier, cancelled wait (or set by a concurrent waiter
		// whose ctx ended) must not end this one.
		// Reset first, then check ctx: a cancellation after the check sets the deadline
		// again through AfterFunc, so it cannot be lost.
		_ = w.f.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, perr := unix.Poll(fds, 0)
			return perr == nil && n > 0
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	w.reap()
	return nil
}

func (w *procWatch) close() { _ = w.f.Close() }

// writeJSONAtomic writes v to path through a synced temporary file and a rename, so readers
// see the old or the new content, never a torn one, even after a crash.
func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
