package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// Limits of termination messages, as the kubelet's.
const (
	maxMessage        = 4096 // bytes read from the end of the termination message file
	maxLogMessage     = 2048 // bytes of the log tail that stands in for an empty file
	maxLogMessageLine = 80   // lines of that tail
)

// terminationLog makes a container's termination message file in its pod's directory: empty,
// and writable by any user, as the container may run as any (the kubelet makes it 0666 too).
func (d *Driver) terminationLog(podDir, id, dest string) (string, error) {
	if !filepath.IsAbs(dest) {
		return "", fmt.Errorf("terminationMessagePath %q must be an absolute path", dest)
	}
	dir := filepath.Join(podDir, "termination")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("termination message file: %w", err)
	}
	p := filepath.Join(dir, id)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return "", fmt.Errorf("termination message file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("termination message file: %w", err)
	}
	if err := os.Chmod(p, 0o666); err != nil { // whatever the umask
		return "", fmt.Errorf("termination message file: %w", err)
	}
	return p, nil
}

// withMessage fills in the termination message of an exited container. It is read once (the
// file and the log of an exited container no longer change) and remembered until the container
// is removed; a new process reads it again from disk.
func (d *Driver) withMessage(ctx context.Context, c *libct.Container, m containerMeta, info lifecycle.ContainerInfo) lifecycle.ContainerInfo {
	if info.Status != lifecycle.ContainerExited || m.TerminationLog == "" {
		return info
	}
	d.msgMu.Lock()
	msg, ok := d.messages[info.ID]
	d.msgMu.Unlock()
	if !ok {
		msg = readMessage(ctx, c.LogPath(), m, info.ExitCode)
		if ctx.Err() != nil {
			return info
		}
		d.msgMu.Lock()
		d.messages[info.ID] = msg
		d.msgMu.Unlock()
	}
	info.Message = msg
	return info
}

// readMessage reads a termination message as the kubelet does: the last 4096 bytes of the
// file; with FallbackToLogsOnError, when the file is empty (or gone) and the container failed,
// the last 80 lines of its log, at most their last 2048 bytes.
func readMessage(ctx context.Context, logPath string, m containerMeta, exitCode int32) string {
	fallback := m.TerminationPolicy == manifests.TerminationMessageFallbackToLogsOnError && exitCode != 0
	data, err := readTail(m.TerminationLog, maxMessage)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !fallback {
			return ""
		}
	case err != nil:
		return fmt.Sprintf("Error on reading termination log %s: %v", m.TerminationLog, err)
	case len(data) > 0 || !fallback:
		return string(data)
	}
	tail := &tailBuffer{max: maxLogMessage}
	if err := libct.ReadLog(ctx, logPath, libct.LogOptions{Tail: maxLogMessageLine}, tail); err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return string(tail.b)
}

// readTail reads at most max bytes from the end of the file at path.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	return io.ReadAll(io.NewSectionReader(f, off, max))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}
