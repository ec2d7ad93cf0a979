package libct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A container's environment may hold Secret values (env valueFrom.secretKeyRef, envFrom
// secretRef), so it is never written to disk. The daemon hands it to the shim in a sealed memfd
// on fd envFD; the shim reads it from there to start the container and keeps the fd open for the
// container's whole life. A daemon, also one restarted since, reads it back for Exec from
// /proc/<shim>/fd/<envFD>, which only root can open. If the shim is gone while the container runs
// on, the init's /proc/<pid>/environ is the fallback.
const (
	envFD        = 4           // the shim's fd with the environment; fd 3 is the handshake
	envMemfdName = "shoal-env" // the memfd's name, shown by /proc/<shim>/fd as "/memfd:shoal-env (deleted)"
	// envSeals make the memfd immutable once written: what the daemon reads back is what the
	// container was started with.
	envSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	// maxEnvSize bounds what is read back; the kernel caps an exec's whole environment far lower.
	maxEnvSize = 16 << 20
)

// errEnvGone: the process that held the environment is gone, or its PID is someone else's now.
var errEnvGone = errors.New("process gone")

// encodeEnv lays env out as /proc/<pid>/environ does: each entry followed by a NUL byte. Entries
// hold no NUL (Config.validate refuses them), so the encoding is exact.
func encodeEnv(env []string) []byte {
	n := 0
	for _, e := range env {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	for _, e := range env {
		b = append(b, e...)
		b = append(b, 0)
	}
	return b
}

// decodeEnv reverses encodeEnv; it also reads /proc/<pid>/environ, whose last entry may lack its
// NUL.
func decodeEnv(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	env := make([]string, len(parts))
	for i, p := range parts {
		env[i] = string(p)
	}
	return env
}

// newEnvFile returns a sealed memfd holding env, to be inherited by the shim as envFD.
func newEnvFile(env []string) (*os.File, error) {
	fd, err := unix.MemfdCreate(envMemfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) { // MFD_NOEXEC_SEAL is Linux 6.3+
		fd, err = unix.MemfdCreate(envMemfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd for the container's environment: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+envMemfdName)
	if _, err := f.Write(encodeEnv(env)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the container's environment to its memfd: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, envSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the container's environment memfd: %w", err)
	}
	return f, nil
}

// readEnvFile reads an environment memfd from its start, whatever its file offset.
func readEnvFile(f *os.File) ([]string, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxEnvSize {
		return nil, fmt.Errorf("environment of %d bytes, more than the %d an exec takes", fi.Size(), maxEnvSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return decodeEnv(b), nil
}

// shimEnv reads the environment that the shim started at startTime holds on envFD.
func shimEnv(pid int, startTime uint64) ([]string, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(envFD)
	// Look before opening: open(2) on a pipe the process holds could block or steal its data.
	target, err := os.Readlink(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errEnvGone
	}
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(target, "/memfd:"+envMemfdName+" ") {
		return nil, fmt.Errorf("the shim's fd %d is %s, not its environment", envFD, target)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errEnvGone
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err != nil || seals&envSeals != envSeals {
		return nil, fmt.Errorf("the shim's fd %d is not a sealed environment (seals %#x, %v)", envFD, seals, err)
	}
	// A shim alive now with the recorded start time was alive, with this PID, at the open.
	if t, err := procStartTime(pid); err != nil || t != startTime {
		return nil, errEnvGone
	}
	return readEnvFile(f)
}

// procEnviron reads the environment a process was started with from /proc/<pid>/environ,
// checking that the PID still names the process started at startTime.
func procEnviron(pid int, startTime uint64) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return nil, errEnvGone
	}
	if err != nil {
		return nil, err
	}
	if t, err := procStartTime(pid); err != nil || t != startTime {
		return nil, errEnvGone
	}
	return decodeEnv(b), nil
}

// Env returns the container's environment: Config.Env as Start was given it, without the PATH
// and HOME defaults the runtime adds. The environment is not kept on disk (it may hold Secret
// values): the handle Start returned knows it, and the shim of a re-adopted container holds it in
// memory for the container's life. If the shim is gone and the container runs on, it is read
// from the container init's /proc/<pid>/environ, which has the defaults too and whatever the init
// wrote over it in place. ErrNotRunning if neither process is there.
func (c *Container) Env(_ context.Context) ([]string, error) {
	c.mu.Lock()
	env, known := c.env, c.envKnown
	c.mu.Unlock()
	if known {
		return slices.Clone(env), nil
	}
	env, serr := shimEnv(c.st.ShimPID, c.st.ShimStart)
	if serr != nil {
		var ierr error
		if env, ierr = procEnviron(c.st.InitPID, c.st.InitStart); ierr != nil {
			err := fmt.Errorf("environment of container %q: from its shim: %v; from its init: %w", c.id, serr, ierr)
			if errors.Is(ierr, errEnvGone) {
				err = fmt.Errorf("%w: %w", ErrNotRunning, err)
			}
			return nil, err
		}
	}
	c.mu.Lock()
	c.env, c.envKnown = env, true
	c.mu.Unlock()
	return slices.Clone(env), nil
}
