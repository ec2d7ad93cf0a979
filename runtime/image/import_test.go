package image

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/shoal-dev/shoal/runtime/imagetest"
)

func TestImport(t *testing.T) {
	ctx := context.Background()
	img := smallImage(t, "base", "top")
	tests := []struct {
		name       string
		write      func(t *testing.T, path string)
		wantName   string
		sameDigest bool // the archive keeps the registry manifest
	}{
		{"docker archive", func(t *testing.T, p string) {
			imagetest.WriteDockerArchive(t, img, "example.com/shoal/app:v1", p)
		}, "example.com/shoal/app:v1", false},
		{"OCI archive", func(t *testing.T, p string) {
			imagetest.WriteOCIArchive(t, img, "example.com/shoal/app:v2", p)
		}, "example.com/shoal/app:v2", true},
		{"gzipped OCI archive", func(t *testing.T, p string) {
			plain := filepath.Join(t.TempDir(), "plain.tar")
			imagetest.WriteOCIArchive(t, img, "example.com/shoal/app:v3", plain)
			gzipFile(t, plain, p)
		}, "example.com/shoal/app:v3", true},
		{"OCI layout directory", func(t *testing.T, p string) {
			imagetest.WriteOCILayout(t, img, "example.com/shoal/app:v4", p)
		}, "example.com/shoal/app:v4", true},
		{"docker.io short name", func(t *testing.T, p string) {
			imagetest.WriteDockerArchive(t, img, "busybox:latest", p)
		}, "index.docker.io/library/busybox:latest", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			p := filepath.Join(t.TempDir(), "image.tar")
			tc.write(t, p)
			imgs, err := s.Import(ctx, p)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if len(imgs) != 1 {
				t.Fatalf("imported %d images", len(imgs))
			}
			got := imgs[0]
			if got.Ref != tc.wantName || !got.Pinned {
				t.Fatalf("imported %q pinned=%v, want %q", got.Ref, got.Pinned, tc.wantName)
			}
			cfgName, _ := img.ConfigName()
			if got.ID != cfgName.String() {
				t.Errorf("ID %s, want %s", got.ID, cfgName)
			}
			if tc.sameDigest && got.Digest != digestOf(t, img) {
				t.Errorf("digest %s, want the registry digest %s", got.Digest, digestOf(t, img))
			}
			if len(got.Layers) != 2 || got.Cmd[0] != "/bin/true" {
				t.Fatalf("image: %+v", got)
			}
			if b, err := os.ReadFile(filepath.Join(got.Layers[1], "d", "f1")); err != nil || string(b) != "top" {
				t.Fatalf("top layer content: %q %v", b, err)
			}
			viaPull, err := s.Pull(ctx, tc.wantName, PullNever)
			if err != nil || viaPull.Digest != got.Digest {
				t.Fatalf("Pull Never of an imported image: %v %v", viaPull, err)
			}
			assertNoPartials(t, s)
		})
	}
}

func gzipFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestImportRejectsGarbage(t *testing.T) {
	s := newTestStore(t)
	p := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(p, []byte("this is not a tar file at all, not even close......"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(context.Background(), p); err == nil {
		t.Fatal("import of garbage succeeded")
	}
	assertNoPartials(t, s)
}

func TestImportDirSkipsImported(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	imagetest.WriteDockerArchive(t, smallImage(t, "one"), "example.com/one:v1", filepath.Join(dir, "one.tar"))
	imagetest.WriteOCIArchive(t, smallImage(t, "two"), "example.com/two:v1", filepath.Join(dir, "two.tar"))
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t)
	imgs, err := s.ImportDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("imported %d images, want 2", len(imgs))
	}
	again, err := s.ImportDir(ctx, dir)
	if err != nil || len(again) != 0 {
		t.Fatalf("second ImportDir imported %d images (%v), want 0", len(again), err)
	}
	// A touched file with the same content is recognised by its digest.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "one.tar"), later, later); err != nil {
		t.Fatal(err)
	}
	again, err = s.ImportDir(ctx, dir)
	if err != nil || len(again) != 0 {
		t.Fatalf("ImportDir after touch imported %d images (%v), want 0", len(again), err)
	}
	// A new archive is imported; a removed image is imported again.
	imagetest.WriteDockerArchive(t, smallImage(t, "three"), "example.com/three:v1", filepath.Join(dir, "three.tar"))
	if err := s.Remove(ctx, "example.com/one:v1"); err != nil {
		t.Fatal(err)
	}
	again, err = s.ImportDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range again {
		names = append(names, img.Ref)
	}
	if len(again) != 2 || names[0] != "example.com/one:v1" || names[1] != "example.com/three:v1" {
		t.Fatalf("imported %v, want one and three", names)
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	base := imagetest.Layer(t, imagetest.File{Path: "base", Content: []byte("shared")})
	a := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File{Path: "a", Content: []byte("only a")}))
	b := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File{Path: "b", Content: []byte("only b")}))
	imagetest.Push(t, a, host+"/a:v1")
	imagetest.Push(t, b, host+"/b:v1")
	archive := filepath.Join(t.TempDir(), "pinned.tar")
	imagetest.WriteOCIArchive(t, smallImage(t, "pinned"), "example.com/pinned:v1", archive)

	s := newTestStore(t, host)
	ia, err := s.Pull(ctx, host+"/a:v1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := s.Pull(ctx, host+"/b:v1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := s.Import(ctx, archive)
	if err != nil {
		t.Fatal(err)
	}

	res, err := s.GC(ctx, func(id string) bool { return id == ia.ID })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ImagesRemoved) != 1 || res.ImagesRemoved[0] != ib.Digest {
		t.Fatalf("removed %v, want only b (%s)", res.ImagesRemoved, ib.Digest)
	}
	if res.LayersRemoved != 1 || res.BlobsRemoved != 2 || res.BytesFreed < int64(len("only b")) {
		t.Errorf("result %+v, want 1 layer and 2 blobs", res)
	}
	for _, l := range append(ia.Layers, pinned[0].Layers...) {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("layer of a kept image removed: %v", err)
		}
	}
	if _, err := os.Stat(ib.Layers[1]); !os.IsNotExist(err) {
		t.Errorf("b's own layer kept: %v", err)
	}
	if _, err := s.Get(ctx, host+"/b:v1"); err == nil {
		t.Error("b still listed")
	}
	if got, err := s.Pull(ctx, host+"/a:v1", PullNever); err != nil || got.Digest != ia.Digest {
		t.Errorf("a after GC: %v", err)
	}

	// Nothing in use: everything but the pinned import goes.
	res, err = s.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ImagesRemoved) != 1 || res.LayersRemoved != 2 {
		t.Errorf("second GC: %+v", res)
	}
	imgs, _ := s.List(ctx)
	if len(imgs) != 1 || imgs[0].Ref != "example.com/pinned:v1" {
		t.Fatalf("left: %+v", imgs)
	}
	if n := len(listTree(t, filepath.Join(s.root, "layers", "sha256"))); n == 0 {
		t.Fatal("pinned image's layer removed")
	}
	if err := s.Remove(ctx, "example.com/pinned:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"layers/sha256", "blobs/sha256", "tmp"} {
		if got := listTree(t, filepath.Join(s.root, d)); len(got) != 0 {
			t.Errorf("%s not empty after removing everything: %v", d, got)
		}
	}
}

// TestImportDirAtOpen drops archives into the import directory of a node: they are imported when
// the store opens, once; a broken archive is logged and the store still opens.
func TestImportDirAtOpen(t *testing.T) {
	ctx := context.Background()
	root, dir := t.TempDir(), filepath.Join(t.TempDir(), "import")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	imagetest.WriteDockerArchive(t, smallImage(t, "one"), "example.com/one:v1", filepath.Join(dir, "one.tar"))
	if err := os.WriteFile(filepath.Join(dir, "broken.tar"), []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() *Store {
		s, err := NewStore(ctx, Config{Root: root, ImportDir: dir, Logger: testLogger()})
		if err != nil {
			t.Fatalf("NewStore with a broken archive in the import dir: %v", err)
		}
		return s
	}
	s := open()
	img, err := s.Get(ctx, "example.com/one:v1")
	if err != nil || !img.Pinned {
		t.Fatalf("archive not imported at open: %v, %+v", err, img)
	}
	s.Close()
	s = open()
	defer s.Close()
	imgs, err := s.List(ctx)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("reopen: %d images (%v), want the one imported image", len(imgs), err)
	}
}

func TestPackBinaryImports(t *testing.T) {
	ctx := context.Background()
	bin := imagetest.BuildTestApp(t)
	img, err := PackBinary(bin, PackConfig{Path: "/usr/bin/testapp", Cmd: []string{"serve"}, User: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := PackBinary(bin, PackConfig{Path: "/usr/bin/testapp", Cmd: []string{"serve"}, User: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("packing the same binary twice gave %s and %s; want one digest", d1, d2)
	}
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := WriteDockerArchive(img, "localhost/shoal/app:v1", archive); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t)
	imgs, err := s.Import(ctx, archive)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import: %v, %d images", err, len(imgs))
	}
	got := imgs[0]
	if got.Ref != "localhost/shoal/app:v1" || got.User != "65534" || len(got.Entrypoint) != 1 || got.Entrypoint[0] != "/usr/bin/testapp" {
		t.Errorf("imported image %+v", got)
	}
	if _, err := os.Stat(filepath.Join(got.Layers[0], "usr/bin/testapp")); err != nil {
		t.Errorf("binary not in the layer: %v", err)
	}
}
