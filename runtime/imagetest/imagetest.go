// Package imagetest builds OCI images and serves registries for Shoal's
// tests and benchmarks: the static test program packed into an image, an
// in-process registry on 127.0.0.1, and docker and OCI archives.
//
// It is a normal package so any package's tests can use it; only test code
// should import it. The programs it packs live below it: grpchealth (a gRPC
// health server) here, and tests/testapp.
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the modification time of every file in images built here, so
// the same content always gives the same digests.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultPath is the PATH set in the test app image.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// binary is a test program built once per process.
type binary struct {
	once sync.Once
	bin  []byte
	err  error
}

var testApp, grpcHealth binary

// ModuleRoot returns the directory of the go.mod enclosing the working
// directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildTestApp builds tests/testapp (static, CGO_ENABLED=0, stripped) and
// returns the path of a copy in a temporary directory of t. The build runs
// once per process; later calls copy the cached binary.
func BuildTestApp(t testing.TB) string {
	t.Helper()
	bin := testAppBinary(t)
	p := filepath.Join(t.TempDir(), "testapp")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatalf("write testapp: %v", err)
	}
	return p
}

func testAppBinary(t testing.TB) []byte {
	t.Helper()
	return testApp.build(t, "./tests/testapp")
}

// build builds the package pkg of the module (static, CGO_ENABLED=0, stripped) once per
// process and returns the binary.
func (b *binary) build(t testing.TB, pkg string) []byte {
	t.Helper()
	root := ModuleRoot(t)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-testbin-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, o)
			return
		}
		b.bin, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", pkg, b.err)
	}
	return b.bin
}

// GRPCHealthPath is where GRPCHealthImage holds the gRPC health server.
const GRPCHealthPath = "/grpchealth"

// GRPCHealthImage returns an OCI image of the gRPC health server of
// runtime/imagetest/grpchealth at /grpchealth: Entrypoint ["/grpchealth"],
// Cmd ["9090"] (the server SERVING on port 9090), with /tmp. The same build
// gives the same digest.
func GRPCHealthImage(t testing.TB) v1.Image {
	t.Helper()
	bin := grpcHealth.build(t, "./runtime/imagetest/grpchealth")
	layer := Layer(t,
		File{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		File{Path: "grpchealth", Mode: 0o755, Content: bin},
	)
	return Image(t, v1.Config{Entrypoint: []string{GRPCHealthPath}, Cmd: []string{"9090"}, WorkingDir: "/"}, layer)
}

// File is one entry of a layer built by Layer.
type File struct {
	Path     string      // inside the image, e.g. "etc/passwd" or "/etc/passwd"
	Mode     fs.FileMode // permission bits plus fs.ModeDir, fs.ModeSymlink ...; 0 means 0644 file
	Content  []byte      // file content
	Linkname string      // symlink target, or hard link target when Hardlink is set
	Hardlink bool
	UID, GID int
}

// Layer returns an uncompressed-tar layer (OCI media type, gzip on the
// wire) with the given entries in order. Mode bits select the entry type.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(f.Path, "/"),
			Mode:    int64(f.Mode.Perm()),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case f.Hardlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, f.Linkname
		case f.Mode&fs.ModeDir != 0:
			hdr.Typeflag = tar.TypeDir
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Linkname
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Content))
			if f.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("layer: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Content); err != nil {
				t.Fatalf("layer: %v", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("layer: %v", err)
	}
	return RawLayer(t, buf.Bytes())
}

// RawLayer returns a layer (OCI media type, gzip on the wire) whose
// uncompressed content is exactly tarBytes. It is how tests build
// malformed or malicious layers.
func RawLayer(t testing.TB, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	return l
}

// Image returns an OCI image for linux/GOARCH with the given layers
// (bottom first) and config.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: Epoch}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	return img
}

// Option changes the test app image.
type Option func(*appOptions)

type appOptions struct {
	user  string
	cmd   []string
	env   []string
	files []File
	base  []v1.Layer
}

// WithUser sets the image's User ("65534", "nobody", "1000:1000").
func WithUser(user string) Option { return func(o *appOptions) { o.user = user } }

// WithCmd replaces the default Cmd ["serve"].
func WithCmd(cmd ...string) Option { return func(o *appOptions) { o.cmd = cmd } }

// WithEnv adds environment entries (KEY=VALUE) after PATH.
func WithEnv(env ...string) Option { return func(o *appOptions) { o.env = append(o.env, env...) } }

// WithFiles adds a layer with files on top of the app layer.
func WithFiles(files ...File) Option {
	return func(o *appOptions) { o.files = append(o.files, files...) }
}

// WithBaseLayers puts layers below the app layer.
func WithBaseLayers(layers ...v1.Layer) Option {
	return func(o *appOptions) { o.base = append(o.base, layers...) }
}

// TestAppImage returns an OCI image whose layer holds the test program at
// /testapp, /etc/passwd and /etc/group with root and nobody (65534), and
// /tmp (mode 1777). Entrypoint ["/testapp"], Cmd ["serve"], PATH set,
// WorkingDir "/". The same options give the same digest.
func TestAppImage(t testing.TB, opts ...Option) v1.Image {
	t.Helper()
	o := appOptions{cmd: []string{"serve"}}
	for _, opt := range opts {
		opt(&o)
	}
	bin := testAppBinary(t)
	app := Layer(t,
		File{Path: "etc", Mode: fs.ModeDir | 0o755},
		File{Path: "etc/passwd", Content: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
		File{Path: "etc/group", Content: []byte("root:x:0:\nnobody:x:65534:\n")},
		File{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		File{Path: "testapp", Mode: 0o755, Content: bin},
	)
	layers := append(append([]v1.Layer{}, o.base...), app)
	if len(o.files) > 0 {
		layers = append(layers, Layer(t, o.files...))
	}
	return Image(t, v1.Config{
		Entrypoint: []string{"/testapp"},
		Cmd:        o.cmd,
		Env:        append([]string{DefaultPath}, o.env...),
		WorkingDir: "/",
		User:       o.user,
	}, layers...)
}

// StartRegistry serves an in-memory registry over plain HTTP on
// 127.0.0.1 and returns its host ("127.0.0.1:PORT"). It is closed in
// t.Cleanup.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return StartRegistryWith(t, nil)
}

// StartRegistryWith is StartRegistry with the registry handler wrapped by
// wrap (for request counting, authentication or fault injection).
func StartRegistryWith(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := http.Handler(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push pushes img to ref (e.g. host+"/app:v1") over plain HTTP and returns
// its manifest digest.
func Push(t testing.TB, img v1.Image, ref string, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	opts = append([]remote.Option{remote.WithContext(context.Background())}, opts...)
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return d.String()
}

// PushIndex pushes a multi-platform index to ref and returns its digest.
func PushIndex(t testing.TB, idx v1.ImageIndex, ref string, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return d.String()
}

// WriteDockerArchive writes img tagged tag as a docker archive ("docker
// save" format) to path.
func WriteDockerArchive(t testing.TB, img v1.Image, tag, path string) {
	t.Helper()
	tg, err := name.NewTag(tag)
	if err != nil {
		t.Fatalf("docker archive: %v", err)
	}
	if err := tarball.WriteToFile(path, tg, img); err != nil {
		t.Fatalf("docker archive: %v", err)
	}
}

// WriteOCIArchive writes img as a tar of an OCI image layout to path, named
// ref through the org.opencontainers.image.ref.name annotation (as
// "podman save --format oci-archive" and skopeo's oci-archive do).
func WriteOCIArchive(t testing.TB, img v1.Image, ref, path string) {
	t.Helper()
	dir := t.TempDir()
	WriteOCILayout(t, img, ref, dir)
	if err := tarDir(dir, path); err != nil {
		t.Fatalf("oci archive: %v", err)
	}
}

// WriteOCILayout writes img into the OCI image layout directory dir, named
// ref as WriteOCIArchive does.
func WriteOCILayout(t testing.TB, img v1.Image, ref, dir string) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("oci layout: %v", err)
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatalf("oci layout: %v", err)
	}
}

// tarDir writes the regular files and directories below dir to a tar file.
func tarDir(dir, out string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			f.Close()
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			f.Close()
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				f.Close()
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
