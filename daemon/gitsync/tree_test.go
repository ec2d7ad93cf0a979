package gitsync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/shoal-dev/shoal/manifests"
)

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
`

// syncedTree fetches the upstream at dir with cfg and returns the Syncer
// and the head commit.
func syncedTree(t *testing.T, dir string, cfg Config) (*Syncer, string) {
	t.Helper()
	cfg.URL = dir
	s := newSyncer(t, cfg)
	start(t, s)
	head := runGit(t, dir, "rev-parse", "HEAD")
	waitHead(t, s, head, 10*time.Second)
	return s, head
}

func TestTreeLoadsManifests(t *testing.T) {
	up := newUpstream(t, "", map[string]string{
		"README.md":                   "# desired state\n",
		"deploy/prod/config.yaml":     configMap("web-config"),
		"deploy/prod/svc/web.yaml":    service,
		"deploy/prod/.hidden/x.yaml":  "not: [valid",
		"deploy/staging/config.yaml":  configMap("staging"),
		"deploy/prod/tools/run.sh":    "#!/bin/sh\necho hi\n",
		"deploy/prod/notes/empty.txt": "x",
	})
	if err := os.Chmod(filepath.Join(up, "deploy/prod/tools/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	runGit(t, up, "add", ".")
	runGit(t, up, "commit", "-q", "-m", "executable")
	s, head := syncedTree(t, up, Config{Path: "deploy/prod"})
	ctx := context.Background()

	fsys, err := s.Tree(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{})
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	var names []string
	for _, o := range set.Objects {
		names = append(names, o.GetObjectMeta().Name)
	}
	if got := strings.Join(names, ","); got != "web-config,web" || set.Files != 2 {
		t.Errorf("loaded %v from %d files, want web-config,web from 2", names, set.Files)
	}
	if file, _ := set.Source(set.Objects[1]); file != "svc/web.yaml" {
		t.Errorf("Source = %q, want svc/web.yaml", file)
	}

	if err := fstest.TestFS(fsys, "config.yaml", "svc/web.yaml", "tools/run.sh", "notes/empty.txt", ".hidden/x.yaml"); err != nil {
		t.Errorf("fstest: %v", err)
	}
	fi, err := fs.Stat(fsys, "tools/run.sh")
	if err != nil || fi.Mode() != 0o555 || fi.Size() != int64(len("#!/bin/sh\necho hi\n")) {
		t.Errorf("Stat(tools/run.sh) = %v, %v", fi, err)
	}
	if _, err := fsys.Open("missing.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}

	if _, err := s.Tree(ctx, head[:12]); err == nil {
		t.Error("Tree accepted a short SHA")
	}
	s.src.path = "deploy/nowhere"
	if _, err := s.Tree(ctx, head); err == nil || !strings.Contains(err.Error(), `no directory "deploy/nowhere"`) {
		t.Errorf("Tree with a missing path = %v", err)
	}
	s.src.path = "README.md"
	if _, err := s.Tree(ctx, head); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Tree with a file as path = %v", err)
	}
}

func TestTreeSymlinkRefused(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"real/config.yaml": configMap("real")})
	if err := os.Symlink("real/config.yaml", filepath.Join(up, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(up, "linkdir")); err != nil {
		t.Fatal(err)
	}
	runGit(t, up, "add", "link.yaml", "linkdir")
	runGit(t, up, "commit", "-q", "-m", "links")
	s, head := syncedTree(t, up, Config{})
	ctx := context.Background()
	fsys, err := s.Tree(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link.yaml", "linkdir"} {
		fi, err := fs.Stat(fsys, name)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("Stat(%s) = %v, %v; want a symbolic link", name, fi, err)
		}
		if _, err := fsys.Open(name); !errors.Is(err, ErrSymlink) {
			t.Errorf("Open(%s) = %v, want ErrSymlink", name, err)
		}
	}
	if _, err := fsys.Open("linkdir/config.yaml"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Open through a link = %v, want ErrSymlink", err)
	}
	_, err = manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "link.yaml") || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("LoadFS of a tree with links = %v, want the link refused", err)
	}
}

func TestTreeSubmodule(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a.yaml": configMap("a")})
	sha := runGit(t, up, "rev-parse", "HEAD")
	runGit(t, up, "update-index", "--add", "--cacheinfo", "160000,"+sha+",vendor")
	runGit(t, up, "commit", "-q", "-m", "submodule")
	s, head := syncedTree(t, up, Config{})
	ctx := context.Background()
	fsys, err := s.Tree(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := fs.Stat(fsys, "vendor")
	if err != nil || fi.Mode()&fs.ModeIrregular == 0 {
		t.Errorf("Stat(vendor) = %v, %v; want irregular", fi, err)
	}
	if _, err := fs.ReadDir(fsys, "vendor"); !errors.Is(err, ErrSubmodule) {
		t.Errorf("ReadDir(vendor) = %v, want ErrSubmodule", err)
	}
	_, err = manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "submodule") {
		t.Errorf("LoadFS of a tree with a submodule = %v, want the submodule named", err)
	}
}

func TestTreeLargeBlob(t *testing.T) {
	up := newUpstream(t, "", map[string]string{
		"small.yaml": configMap("small"),
		"big.yaml":   "# " + strings.Repeat("x", 4096) + "\n",
	})
	s, head := syncedTree(t, up, Config{MaxObjectSize: 1024})
	fsys, err := s.Tree(context.Background(), head)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(fsys, "small.yaml"); err != nil {
		t.Errorf("ReadFile(small.yaml): %v", err)
	}
	_, err = fsys.Open("big.yaml")
	if !errors.Is(err, ErrObjectTooLarge) || !strings.Contains(err.Error(), "4099 bytes, more than 1024") {
		t.Errorf("Open(big.yaml) = %v, want ErrObjectTooLarge with the sizes", err)
	}
}

func TestRepoTreeBuildsKustomizationsFromGitObjects(t *testing.T) {
	up := newUpstream(t, "", map[string]string{
		"base/kustomization.yaml": "resources:\n- svc.yaml\nconfigMapGenerator:\n- name: cfg\n  envs: [app.env]\n",
		"base/svc.yaml":           service,
		"base/app.env":            "MODE=prod\n",
		"prod/kustomization.yaml": "resources:\n- ../base\nnamePrefix: prod-\n",
	})
	s, head := syncedTree(t, up, Config{Path: "prod"})
	ctx := context.Background()
	// The work tree changes; what is built is the commit.
	if err := os.WriteFile(filepath.Join(up, "base", "app.env"), []byte("MODE=dirty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, dir, err := s.RepoTree(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	if dir != "prod" {
		t.Errorf("dir %q, want prod", dir)
	}
	set, err := manifests.LoadFS(ctx, repo, dir, manifests.LoadOptions{})
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	var names []string
	for _, o := range set.Objects {
		names = append(names, o.GetObjectMeta().Name)
		if cm, ok := o.(*manifests.ConfigMap); ok && cm.Data["MODE"] != "prod" {
			t.Errorf("ConfigMap data %v: want the committed app.env", cm.Data)
		}
	}
	if len(names) != 2 || !strings.HasPrefix(names[0], "prod-cfg-") || names[1] != "prod-web" {
		t.Errorf("objects %v", names)
	}
	if file, line := set.Source(set.Objects[1]); file != "../base/svc.yaml" || line != 1 {
		t.Errorf("Source = %s:%d, want ../base/svc.yaml:1", file, line)
	}

	s.src.path = "nowhere"
	if _, _, err := s.RepoTree(ctx, head); err == nil || !strings.Contains(err.Error(), `no directory "nowhere"`) {
		t.Errorf("RepoTree with a missing path = %v", err)
	}
}

func TestCommitTree(t *testing.T) {
	up := newUpstream(t, "", map[string]string{"a/x.yaml": configMap("x"), "big.txt": strings.Repeat("b", 2048)})
	head := runGit(t, up, "rev-parse", "HEAD")
	repo, err := git.PlainOpen(up)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := CommitTree(repo, plumbing.NewHash(head), 1024)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(fsys, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "x.yaml"); err != nil {
		t.Errorf("fstest: %v", err)
	}
	if _, err := fs.ReadFile(fsys, "big.txt"); !errors.Is(err, ErrObjectTooLarge) {
		t.Errorf("reading a blob over the limit: %v", err)
	}
	if _, err := CommitTree(repo, plumbing.NewHash(strings.Repeat("0", 40)), 0); err == nil {
		t.Error("CommitTree of a missing commit succeeded")
	}
}
