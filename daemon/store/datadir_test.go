package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// usedStore returns the directory of a store that has been started, written to and stopped.
func usedStore(t *testing.T) string {
	t.Helper()
	dir := storeDir(t)
	e := startStore(t, dir)
	c := connect(t, e)
	if err := Put(testCtx(t), c, "/shoal/commits/applied", "abc"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.Close()
	return dir
}

func walFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no WAL file in %s: %v", dir, err)
	}
	return m[0]
}

func overwrite(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

func garbage(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestBadDataDir(t *testing.T) {
	t.Parallel()
	db := func(dir string) string { return filepath.Join(dir, "member", "snap", "db") }
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"garbage db", func(t *testing.T, dir string) {
			if err := os.WriteFile(db(dir), garbage(64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"db overwritten at the start", func(t *testing.T, dir string) {
			overwrite(t, db(dir), 0, garbage(16<<10))
		}},
		{"truncated db", func(t *testing.T, dir string) {
			// cut into the pages in use (the file may be longer than they are)
			b, err := bolt.Open(db(dir), 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var used int64
			b.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
			b.Close()
			if err := os.Truncate(db(dir), used-int64(os.Getpagesize())); err != nil {
				t.Fatal(err)
			}
		}},
		{"tiny db", func(t *testing.T, dir string) {
			if err := os.Truncate(db(dir), 100); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty db", func(t *testing.T, dir string) {
			if err := os.Truncate(db(dir), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"db missing", func(t *testing.T, dir string) {
			if err := os.Remove(db(dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"member dir missing", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "member")); err != nil {
				t.Fatal(err)
			}
		}},
		{"wal missing", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "member", "wal")); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage wal", func(t *testing.T, dir string) {
			overwrite(t, walFile(t, dir), 0, garbage(4096))
		}},
		{"wal with a bad name", func(t *testing.T, dir string) {
			w := walFile(t, dir)
			if err := os.Rename(w, filepath.Join(filepath.Dir(w), "bad.wal")); err != nil {
				t.Fatal(err)
			}
		}},
		{"database is a directory", func(t *testing.T, dir string) {
			if err := os.Remove(db(dir)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(db(dir), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := usedStore(t)
			tc.damage(t, dir)
			e, err := StartEmbedded(testCtx(t), EmbedConfig{Dir: dir})
			if err == nil {
				e.Close()
				t.Fatal("the damaged store started")
			}
			msg := err.Error()
			for _, want := range []string{"the store in " + dir + " cannot be opened", "move it aside"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			t.Log(msg)
		})
	}
}

func TestFreshDirWithoutMarkerStarts(t *testing.T) {
	t.Parallel()
	// A directory that exists but was never a store (created by the operator) is fine.
	dir := storeDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	startStore(t, dir)
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  EmbedConfig
	}{
		{"no dir", EmbedConfig{}},
		{"cluster state", EmbedConfig{Dir: "x", ClusterState: "old"}},
		{"relative socket", EmbedConfig{Dir: "x", ClientURL: "unix://x.sock"}},
		{"unix peer", EmbedConfig{Dir: "x", PeerURL: "unix:///tmp/shoal-peer.sock"}},
		{"scheme", EmbedConfig{Dir: "x", ClientURL: "ftp://127.0.0.1:1"}},
		{"peer host name", EmbedConfig{Dir: "x", PeerURL: "http://example.invalid:2380"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir = filepath.Join(t.TempDir(), tc.cfg.Dir)
			if tc.name == "no dir" {
				tc.cfg.Dir = ""
			}
			e, err := StartEmbedded(testCtx(t), tc.cfg)
			if err == nil {
				e.Close()
				t.Fatal("started")
			}
			t.Log(err)
		})
	}
}
