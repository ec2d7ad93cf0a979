package imagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuildTestApp(t *testing.T) {
	p := BuildTestApp(t)
	out, err := exec.Command(p, "print", "hello").Output()
	if err != nil {
		t.Fatalf("run testapp: %v", err)
	}
	if strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("testapp print: got %q", out)
	}
	if p2 := BuildTestApp(t); p2 == p {
		t.Fatalf("second call returned the same path %s", p2)
	}
}

func TestTestAppImageDeterministic(t *testing.T) {
	a, b := TestAppImage(t), TestAppImage(t)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same options, different digests: %s %s", da, db)
	}
	c := TestAppImage(t, WithUser("65534"))
	dc, _ := c.Digest()
	if dc == da {
		t.Fatalf("WithUser did not change the image")
	}
	cf, err := c.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65534" || cf.Config.Entrypoint[0] != "/testapp" || cf.Config.Cmd[0] != "serve" || cf.Config.WorkingDir != "/" {
		t.Fatalf("config: %+v", cf.Config)
	}
}

func TestRegistryAndArchives(t *testing.T) {
	img := TestAppImage(t, WithFiles(File{Path: "hello.txt", Content: []byte("hi")}))
	host := StartRegistry(t)
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("registry host %q is not on 127.0.0.1", host)
	}
	digest := Push(t, img, host+"/app:v1")
	ref, err := name.ParseReference(host+"/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if desc.Digest.String() != digest {
		t.Fatalf("registry has %s, pushed %s", desc.Digest, digest)
	}

	dir := t.TempDir()
	docker := filepath.Join(dir, "docker.tar")
	WriteDockerArchive(t, img, "example.com/app:v1", docker)
	tag, _ := name.NewTag("example.com/app:v1")
	if _, err := tarball.ImageFromPath(docker, &tag); err != nil {
		t.Fatalf("read docker archive: %v", err)
	}

	oci := filepath.Join(dir, "oci.tar")
	WriteOCIArchive(t, img, "example.com/app:v1", oci)
	if fi, err := os.Stat(oci); err != nil || fi.Size() == 0 {
		t.Fatalf("oci archive: %v", err)
	}
	lay := filepath.Join(dir, "layout")
	WriteOCILayout(t, img, "example.com/app:v1", lay)
	idx, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != digest {
		t.Fatalf("layout index: %+v", im.Manifests)
	}
}
