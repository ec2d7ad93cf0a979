package atomicfile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// leftovers returns the temporary files WriteFile left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteFile(t *testing.T) {
	old := syscall.Umask(0o077) // the mode must not depend on the umask
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name   string
		before []byte // nil: no file before
		data   []byte
		perm   os.FileMode
	}{
		{"new key", nil, []byte("-----BEGIN EC PRIVATE KEY-----\n"), 0o600},
		{"new certificate", nil, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644},
		{"replace", []byte("old content, longer than the new one"), []byte("new"), 0o600},
		{"replace with a read-only mode", []byte("old"), []byte("new"), 0o400},
		{"empty", []byte("old"), nil, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "file")
			if tc.before != nil {
				if err := os.WriteFile(p, tc.before, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, tc.data, tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("content %q, %v; want %q", got, err, tc.data)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, tc.perm)
			}
			if l := leftovers(t, dir); len(l) > 0 {
				t.Errorf("temporary files left: %v", l)
			}
		})
	}
}

// TestWriteFileFails: when a step fails, the old content stays and no temporary file is left.
func TestWriteFileFails(t *testing.T) {
	boom := errors.New("injected failure")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (path string)
	}{
		{"sync fails", func(t *testing.T, dir string) string {
			syncFile = func(*os.File) error { return boom }
			t.Cleanup(func() { syncFile = (*os.File).Sync })
			return filepath.Join(dir, "file")
		}},
		{"rename fails", func(t *testing.T, dir string) string {
			rename = func(string, string) error { return boom }
			t.Cleanup(func() { rename = os.Rename })
			return filepath.Join(dir, "file")
		}},
		{"no such directory", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "file")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "file"), []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := tc.setup(t, dir)
			err := WriteFile(p, []byte("new content"), 0o600)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("WriteFile: %v, want an error naming %s", err, p)
			}
			if got, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(got) != "old" {
				t.Errorf("after the failure: %q, %v; want the old content", got, err)
			}
			if l := leftovers(t, dir); len(l) > 0 {
				t.Errorf("temporary files left: %v", l)
			}
		})
	}
}

// TestWriteFileNoSpace fills a small tmpfs: the write fails for real (ENOSPC) and the old content
// stays.
func TestWriteFileNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	p := filepath.Join(dir, "node.key")
	if err := WriteFile(p, []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(p, bytes.Repeat([]byte("k"), 1<<20), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write larger than the file system: %v, want ENOSPC", err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "old key" {
		t.Errorf("after ENOSPC: %q, %v; want the old key", got, err)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// The contents the child of TestKillLoop writes in turn: of different sizes, so that a partial
// or mixed file is none of them.
var killContents = [][]byte{
	bytes.Repeat([]byte("A"), 64<<10),
	bytes.Repeat([]byte("b"), 3000),
	bytes.Repeat([]byte("C"), 200<<10),
}

const childEnv = "ATOMICFILE_TEST_CHILD_PATH"

// TestKillLoopChild is the child of TestKillLoop: it writes a key file in a loop until killed.
func TestKillLoopChild(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("the child of TestKillLoop")
	}
	for i := 0; ; i++ {
		if err := WriteFile(p, killContents[i%len(killContents)], 0o600); err != nil {
			os.Exit(3)
		}
	}
}

// TestKillLoop kills a process that writes a key file in a loop with SIGKILL at random moments:
// the file is always one of the contents written whole, never empty or partial. (A process kill
// leaves the page cache intact; a power loss is what the fsyncs are for, which this cannot test.)
func TestKillLoop(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "node.key")
	if err := WriteFile(p, killContents[0], 0o600); err != nil {
		t.Fatal(err)
	}
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	seen := map[byte]int{}
	for i := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillLoopChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+p)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child needs a few milliseconds to start; then each write takes well under one.
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child ended by itself: %v", i, err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: mode %v, %v", i, fi.Mode().Perm(), err)
		}
		whole := false
		for _, c := range killContents {
			whole = whole || bytes.Equal(got, c)
		}
		if !whole {
			t.Fatalf("round %d: the file holds %d bytes that are none of the contents written", i, len(got))
		}
		seen[got[0]]++
	}
	// A kill during a write leaves its temporary file: never the key itself.
	t.Logf("%d kills; the file held %v (by first byte); %d temporary files left by killed writes",
		rounds, seen, len(leftovers(t, dir)))
	if len(seen) < 2 {
		t.Errorf("the file always held the same content (%v): the child did not write", seen)
	}
}
