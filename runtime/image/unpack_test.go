package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"golang.org/x/sys/unix"
)

type entry struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body: body}
}
func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}
func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}
func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.ModTime.IsZero() {
			h.ModTime = imagetest.Epoch
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a temp dir with the layer dir and a sentinel dir next to it
// that a malicious layer tries to reach.
type sandbox struct {
	top, layer, outside string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	top := t.TempDir()
	sb := sandbox{top: top, layer: filepath.Join(top, "layer"), outside: filepath.Join(top, "outside")}
	for _, d := range []string{sb.layer, sb.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb.outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Unpacked modes may deny writing; removeAll copes with that.
	t.Cleanup(func() { _ = removeAll(sb.layer) })
	return sb
}

// intact fails unless the sentinel dir holds exactly its secret and
// nothing else appeared next to the layer dir.
func (sb sandbox) intact(t testing.TB) {
	t.Helper()
	if got := listTree(t, sb.outside); len(got) != 1 || got[0] != "secret" {
		t.Errorf("outside dir changed: %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(sb.outside, "secret")); err != nil || string(b) != "secret" {
		t.Errorf("outside secret changed: %q %v", b, err)
	}
	ents, _ := os.ReadDir(sb.top)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("entries next to the layer: %v", names)
	}
	if _, err := os.Lstat("/shoal-escape"); err == nil {
		t.Errorf("/shoal-escape was created")
	}
}

func TestUnpackMaliciousLayers(t *testing.T) {
	tests := []struct {
		name    string
		entries func(sb sandbox) []entry
		wantErr bool
		check   func(t *testing.T, sb sandbox)
	}{
		{
			name:    "dot-dot traversal",
			entries: func(sandbox) []entry { return []entry{reg("../../outside/secret", "pwned"), reg("a/../../x", "pwned")} },
			wantErr: true,
		},
		{
			name:    "absolute path is contained",
			entries: func(sandbox) []entry { return []entry{reg("/shoal-escape", "contained")} },
			check: func(t *testing.T, sb sandbox) {
				if b, err := os.ReadFile(filepath.Join(sb.layer, "shoal-escape")); err != nil || string(b) != "contained" {
					t.Errorf("absolute entry not placed in the layer: %q %v", b, err)
				}
			},
		},
		{
			name: "relative symlink escape then write through it",
			entries: func(sandbox) []entry {
				return []entry{symlink("evil", "../outside"), reg("evil/secret", "pwned"), reg("evil/new", "pwned")}
			},
			wantErr: true,
		},
		{
			name: "absolute symlink escape then write through it",
			entries: func(sb sandbox) []entry {
				return []entry{symlink("evil", sb.outside), reg("evil/new", "pwned")}
			},
			wantErr: true,
		},
		{
			name: "symlink to root resolves inside the layer",
			entries: func(sandbox) []entry {
				return []entry{symlink("up", "../../../.."), reg("up/inside", "ok")}
			},
			check: func(t *testing.T, sb sandbox) {
				if b, err := os.ReadFile(filepath.Join(sb.layer, "inside")); err != nil || string(b) != "ok" {
					t.Errorf("write through in-layer symlink: %q %v", b, err)
				}
			},
		},
		{
			name: "regular file replaces a symlink instead of writing through it",
			entries: func(sb sandbox) []entry {
				return []entry{symlink("f", filepath.Join(sb.outside, "secret")), reg("f", "pwned")}
			},
			check: func(t *testing.T, sb sandbox) {
				fi, err := os.Lstat(filepath.Join(sb.layer, "f"))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("f is not a regular file: %v %v", fi, err)
				}
			},
		},
		{
			name:    "hard link to outside via dot-dot",
			entries: func(sandbox) []entry { return []entry{hardlink("hl", "../outside/secret")} },
			wantErr: true,
		},
		{
			name: "hard link to outside via symlink",
			entries: func(sb sandbox) []entry {
				return []entry{symlink("evil", sb.outside), hardlink("hl", "evil/secret")}
			},
			wantErr: true,
		},
		{
			name:    "hard link to an absolute host path",
			entries: func(sandbox) []entry { return []entry{hardlink("hl", "/etc/passwd")} },
			wantErr: true,
		},
		{
			name:    "hard link inside the layer",
			entries: func(sandbox) []entry { return []entry{reg("a", "data"), hardlink("b", "a")} },
			check: func(t *testing.T, sb sandbox) {
				a, _ := os.Stat(filepath.Join(sb.layer, "a"))
				b, _ := os.Stat(filepath.Join(sb.layer, "b"))
				if a == nil || b == nil || !os.SameFile(a, b) {
					t.Errorf("a and b are not the same file")
				}
			},
		},
		{
			name: "hard link to a symlink links the symlink",
			entries: func(sb sandbox) []entry {
				return []entry{symlink("s", filepath.Join(sb.outside, "secret")), hardlink("h", "s")}
			},
			check: func(t *testing.T, sb sandbox) {
				fi, err := os.Lstat(filepath.Join(sb.layer, "h"))
				if err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("h: %v %v", fi, err)
				}
			},
		},
		{
			name:    "whiteout named dot-dot",
			entries: func(sandbox) []entry { return []entry{reg("d/.wh...", "")} },
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			data := tarBytes(t, tc.entries(sb)...)
			_, err := unpackLayer(context.Background(), sb.layer, bytes.NewReader(data), testLogger())
			if tc.wantErr && err == nil {
				t.Errorf("unpack succeeded, want it refused")
			}
			if !tc.wantErr && err != nil {
				t.Errorf("unpack: %v", err)
			}
			sb.intact(t)
			if tc.check != nil && err == nil {
				tc.check(t, sb)
			}
		})
	}
}

// A malicious layer pulled from a registry fails the pull and leaves no
// layer behind.
func TestPullMaliciousLayerRefused(t *testing.T) {
	sb := newSandbox(t)
	host := imagetest.StartRegistry(t)
	bad := imagetest.RawLayer(t, tarBytes(t, symlink("evil", sb.outside), reg("evil/new", "pwned")))
	imagetest.Push(t, imagetest.Image(t, v1.Config{}, bad), host+"/evil:v1")
	s := newTestStore(t, host)
	_, err := s.Pull(context.Background(), host+"/evil:v1", PullIfNotPresent)
	if !errors.Is(err, ErrPullFailed) {
		t.Fatalf("pull of a malicious layer: %v, want ErrPullFailed", err)
	}
	sb.intact(t)
	s.Close()
	assertNoPartials(t, s)
	if got := listTree(t, filepath.Join(s.root, "layers", "sha256")); len(got) != 0 {
		t.Fatalf("layers left: %v", got)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("overlay whiteouts need root")
	}
	sb := newSandbox(t)
	data := tarBytes(t,
		dir("opaque/", 0o755),
		reg("opaque/.wh..wh..opq", ""),
		reg("opaque/kept", "new"),
		dir("sub/", 0o755),
		reg("sub/.wh.gone", ""),
		reg(".wh.topgone", ""),
		reg("replaced", "x"),
		reg(".wh.replaced", ""),
	)
	if _, err := unpackLayer(context.Background(), sb.layer, bytes.NewReader(data), testLogger()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"sub/gone", "topgone", "replaced"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(sb.layer, p), &st); err != nil {
			t.Fatalf("whiteout %s: %v", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want char device 0/0", p, st.Mode, st.Rdev)
		}
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(sb.layer, "opaque"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr: %q %v", buf[:n], err)
	}
	for _, p := range []string{"opaque/.wh..wh..opq", "sub/.wh.gone", ".wh.topgone"} {
		if _, err := os.Lstat(filepath.Join(sb.layer, p)); err == nil {
			t.Errorf("%s was written as a file", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sb.layer, "opaque/kept")); string(b) != "new" {
		t.Errorf("opaque/kept: %q", b)
	}
}

func TestUnpackMetadata(t *testing.T) {
	root := os.Geteuid() == 0
	sb := newSandbox(t)
	mtime := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	file := reg("bin/suid", "#!")
	file.hdr.Mode, file.hdr.Uid, file.hdr.Gid, file.hdr.ModTime = 0o4755, 1000, 1001, mtime
	file.hdr.PAXRecords = map[string]string{
		"SCHILY.xattr.user.shoal":             "yes",
		"SCHILY.xattr.trusted.overlay.origin": "forged",
	}
	ro := dir("ro/", 0o555)
	ro.hdr.ModTime = mtime
	inRO := reg("ro/file", "in read-only dir")
	link := symlink("link", "/bin/suid")
	link.hdr.Uid, link.hdr.Gid = 7, 8
	fifo := entry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600}}
	dev := entry{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}}
	data := tarBytes(t, dir("bin/", 0o711), file, ro, inRO, link, fifo, dev)
	size, err := unpackLayer(context.Background(), sb.layer, bytes.NewReader(data), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len("#!")+len("in read-only dir")) {
		t.Errorf("size %d", size)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(sb.layer, "bin/suid"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o4755 {
		t.Errorf("mode %o, want 4755", st.Mode&0o7777)
	}
	if time.Unix(st.Mtim.Unix()).UTC() != mtime {
		t.Errorf("mtime %v, want %v", time.Unix(st.Mtim.Unix()), mtime)
	}
	if root && (st.Uid != 1000 || st.Gid != 1001) {
		t.Errorf("owner %d:%d, want 1000:1001", st.Uid, st.Gid)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(sb.layer, "bin/suid"), "user.shoal", buf); err == nil && string(buf[:n]) != "yes" {
		t.Errorf("user.shoal = %q", buf[:n])
	} else if err != nil && err != unix.ENOTSUP {
		t.Errorf("user.shoal: %v", err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(sb.layer, "bin/suid"), "trusted.overlay.origin", buf); err == nil {
		t.Errorf("overlay attribute taken from the layer")
	}
	fi, err := os.Stat(filepath.Join(sb.layer, "ro"))
	if err != nil || fi.Mode().Perm() != 0o555 || !fi.ModTime().Equal(mtime) {
		t.Errorf("ro dir: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	if fi, err := os.Stat(filepath.Join(sb.layer, "bin")); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("bin dir mode: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(sb.layer, "link")); err != nil || target != "/bin/suid" {
		t.Errorf("link -> %q %v", target, err)
	}
	if root {
		if err := unix.Lstat(filepath.Join(sb.layer, "link"), &st); err != nil || st.Uid != 7 || st.Gid != 8 {
			t.Errorf("symlink owner %d:%d %v", st.Uid, st.Gid, err)
		}
		if err := unix.Lstat(filepath.Join(sb.layer, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("device node: %+v %v", st, err)
		}
	} else if _, err := os.Lstat(filepath.Join(sb.layer, "null")); err == nil {
		t.Errorf("device node created without root")
	}
	if fi, err := os.Lstat(filepath.Join(sb.layer, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
	sb.intact(t)
}

// FuzzUnpack feeds arbitrary tar streams to the unpacker; whatever they
// hold, nothing may appear outside the layer directory.
func FuzzUnpack(f *testing.F) {
	f.Add(tarBytes(f, reg("../../outside/x", "x")))
	f.Add(tarBytes(f, symlink("evil", "../outside"), reg("evil/x", "x")))
	f.Add(tarBytes(f, symlink("evil", "/"), reg("evil/x", "x"), hardlink("h", "evil/x")))
	f.Add(tarBytes(f, dir("d/", 0o755), reg("d/.wh..wh..opq", ""), reg("d/.wh.x", "")))
	f.Add(tarBytes(f, reg("a", "1"), hardlink("b", "a"), symlink("a", "b"), reg("a/c", "")))
	f.Add(tarBytes(f, dir("/", 0o755), reg("/abs", "x"), dir("x/y/z/", 0o000), reg("x/y/z/f", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t)
		_, _ = unpackLayer(context.Background(), sb.layer, bytes.NewReader(data), testLogger())
		sb.intact(t)
	})
}
