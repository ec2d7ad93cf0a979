package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// signedCommit commits the working tree with go-git, signed by key, and pushes it.
func (r *gitRepo) signedCommit(key *openpgp.Entity, msg string, files map[string]string) string {
	t := r.t
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := gogit.PlainOpen(r.work)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Tester", Email: "tester@shoal.invalid", When: time.Now()}
	if _, err := wt.Commit(msg, &gogit.CommitOptions{Author: sig, Committer: sig, SignKey: key}); err != nil {
		t.Fatal(err)
	}
	git(t, r.work, "push", "-q", "origin", "main")
	return r.head()
}

// TestSignedCommitsOnly runs a node with --verify-signatures: signed commits are applied, an
// unsigned one is refused, and so is a signed commit on top of it (every new commit is checked,
// not only the head).
func TestSignedCommitsOnly(t *testing.T) {
	needRoot(t)
	key, err := openpgp.NewEntity("Shoal Tester", "", "tester@shoal.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	keyring := filepath.Join(t.TempDir(), "keyring.asc")
	if err := os.WriteFile(keyring, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	repo := newGitRepo(t)
	signed := repo.signedCommit(key, "web: 1 replica (signed)", map[string]string{"web.yaml": deployment("web", 1, "v1", "")})
	n := startNode(t, repo.httpURL, "--verify-signatures", keyring)
	n.waitConverged(signed, 90*time.Second)

	unsigned := repo.commit("web: 2 replicas (unsigned)", map[string]string{"web.yaml": deployment("web", 2, "v1", "")})
	n.waitFor("refusal of the unsigned commit", 30*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == unsigned
	})
	if st := n.status(); !strings.Contains(strings.Join(st.LastRejected.Reasons, " "), unsigned[:7]) || st.Applied.SHA != signed {
		t.Errorf("unsigned commit: applied %s, rejection %+v", st.Applied.SHA, st.LastRejected)
	}
	onTop := repo.signedCommit(key, "web: 3 replicas (signed, on top of the unsigned one)", map[string]string{"web.yaml": deployment("web", 3, "v1", "")})
	n.waitFor("refusal of the commit on top", 30*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == onTop
	})
	if got := countPrefix(n.pods(), "web-"); got != 1 {
		t.Errorf("%d web pods, want the 1 of the last signed-only history", got)
	}
}
