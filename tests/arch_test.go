package tests

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/shoal-dev/shoal"

type goPackage struct {
	ImportPath string
	Dir        string
	Name       string
	Doc        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// listPackages runs `go list -json` over the whole module.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", "seccomp", "-json", module+"/...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// TestDependencyDirection enforces the layering of the design: manifests is pure, reconcile plans
// without touching the kernel, git or the store, a node's membership of the store sits below the
// master, the agent and the runtime, and libcontainer lives in one package.
func TestDependencyDirection(t *testing.T) {
	rules := []struct {
		pkg       string   // the rule covers this package and its subpackages
		forbidden []string // no transitive dependency under these paths
		why       string
	}{
		{module + "/manifests", []string{module + "/daemon", module + "/reconcile", module + "/runtime", module + "/netplane", module + "/tests", module + "/examples"},
			"manifests imports no other Shoal package"},
		{module + "/reconcile", []string{"github.com/opencontainers/runc", "github.com/cilium/ebpf", "github.com/go-git/go-git", "go.etcd.io/etcd"},
			"reconcile plans through interfaces and never imports libcontainer, cilium/ebpf, go-git or etcd"},
		{module + "/daemon/membership", []string{module + "/daemon/node", module + "/daemon/cluster", module + "/daemon/api", module + "/daemon/gitsync",
			module + "/runtime", module + "/netplane", module + "/reconcile", "github.com/opencontainers/runc", "github.com/cilium/ebpf", "github.com/go-git/go-git"},
			"membership builds on daemon/store, daemon/join and daemon/pki: it knows nothing of the master, the agent, the runtime, the network plane or git"},
		{module + "/daemon/cluster", []string{module + "/daemon/gitsync", "github.com/go-git/go-git"},
			"the master reads commits through its Git interface and package revision's types, not go-git"},
		{module + "/daemon/gitsync", []string{module + "/daemon/cluster", module + "/daemon/store", "go.etcd.io/etcd"},
			"the git syncer knows nothing of the store or the master: it hands out revision.Head and revision.Commit"},
		{module + "/daemon/revision", []string{module, "github.com/", "go.etcd.io/", "golang.org/", "google.golang.org/", "gopkg.in/", "sigs.k8s.io/"},
			"revision depends on the standard library alone"},
		{module + "/netplane", []string{module + "/daemon", module + "/reconcile", module + "/runtime", "go.etcd.io/etcd"},
			"netplane takes the node's network state as a netplane.Config: the daemon converts its records, netplane knows no store"},
	}
	for _, p := range listPackages(t) {
		for _, r := range rules {
			if !under(p.ImportPath, r.pkg) {
				continue
			}
			for _, dep := range p.Deps {
				for _, f := range r.forbidden {
					if under(dep, f) || strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s: %s", p.ImportPath, dep, r.why)
					}
				}
			}
		}
	}
}

// TestLibcontainerInOnePackage keeps runc's libcontainer, whose API changes between releases,
// behind the runtime interface.
func TestLibcontainerInOnePackage(t *testing.T) {
	allowed := module + "/runtime/libct"
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/opencontainers/runc/") && !under(p.ImportPath, allowed) {
				t.Errorf("%s imports %s; only %s may import libcontainer", p.ImportPath, imp, allowed)
			}
		}
	}
}

// TestClientLinksNoStore keeps the API client light: it talks HTTP to a daemon and must link no
// part of etcd, the store or the master.
func TestClientLinksNoStore(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/daemon/client" {
			continue
		}
		for _, dep := range p.Deps {
			if strings.HasPrefix(dep, "go.etcd.io/") || (under(dep, module) && !under(dep, module+"/daemon/api/wire")) {
				t.Errorf("%s depends on %s; it may use only %s/daemon/api/wire of the daemon", p.ImportPath, dep, module)
			}
		}
		return
	}
	t.Fatal("no package daemon/client")
}

// TestShoalLinksNoCloudSDK keeps the daemon's binary free of sops' library, which imports every
// cloud KMS SDK and an audit package that reads /etc/sops/audit.yaml at start: manifests/sops reads
// the SOPS format itself and may use only sops' age, pgp and shamir packages. Its tests may use
// the whole library (they check the decoder against it).
func TestShoalLinksNoCloudSDK(t *testing.T) {
	allowedSOPS := []string{"github.com/getsops/sops/v3/age", "github.com/getsops/sops/v3/pgp", "github.com/getsops/sops/v3/shamir"}
	forbidden := []string{"github.com/aws/", "github.com/Azure/", "github.com/AzureAD/", "cloud.google.com/", "google.golang.org/api/",
		"github.com/hashicorp/", "github.com/huaweicloud/", "github.com/lib/pq"}
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/daemon/cmd/shoal" {
			continue
		}
		for _, dep := range p.Deps {
			if under(dep, "github.com/getsops/sops/v3") && !slices.ContainsFunc(allowedSOPS, func(a string) bool { return under(dep, a) }) {
				t.Errorf("shoal depends on %s; of sops' library, it may link only %s", dep, strings.Join(allowedSOPS, ", "))
			}
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("shoal depends on %s, a cloud SDK or database driver (%s) it has no use for", dep, f)
				}
			}
		}
		return
	}
	t.Fatal("no package daemon/cmd/shoal")
}

// TestPackageDocs requires a package doc comment in every package.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// TestPackageDocsNameSubpackages checks that the doc comment of every package names each of the
// packages nearest below it (daemon's names cli and cmd/shoal, lb's names lbbench), so that the doc
// of a parent is a map of what it holds.
func TestPackageDocsNameSubpackages(t *testing.T) {
	pkgs := listPackages(t)
	for _, parent := range pkgs {
		var missing []string
		for _, child := range pkgs {
			if child.ImportPath == parent.ImportPath || !under(child.ImportPath, parent.ImportPath) || hasPackageBetween(pkgs, parent, child) {
				continue
			}
			rel := strings.TrimPrefix(child.ImportPath, parent.ImportPath+"/")
			if !strings.Contains(fullDoc(t, parent), rel) {
				missing = append(missing, rel)
			}
		}
		if len(missing) > 0 {
			t.Errorf("the package doc of %s does not name its subpackages %s", parent.ImportPath, strings.Join(missing, ", "))
		}
	}
}

// hasPackageBetween reports whether a package lies strictly between parent and child.
func hasPackageBetween(pkgs []goPackage, parent, child goPackage) bool {
	for _, p := range pkgs {
		if p.ImportPath != parent.ImportPath && p.ImportPath != child.ImportPath &&
			under(p.ImportPath, parent.ImportPath) && under(child.ImportPath, p.ImportPath) {
			return true
		}
	}
	return false
}

// fullDoc returns the whole package doc comment of p (go list gives only its first sentence).
func fullDoc(t *testing.T, p goPackage) string {
	t.Helper()
	var doc strings.Builder
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		if f.Doc != nil {
			doc.WriteString(f.Doc.Text())
		}
	}
	return doc.String()
}
