package gitsync

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// newKey makes an OpenPGP signing key and returns it with its armored
// public keyring.
func newKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(strings.ReplaceAll(name, " ", "."))+"@shoal.invalid",
		&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, buf.String()
}

// signedCommit commits a file in the upstream with go-git, signed by key.
func signedCommit(t *testing.T, dir, file, msg string, key *openpgp.Entity) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(configMap(strings.TrimSuffix(file, ".yaml"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(file); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Shoal Signer", Email: "signer@shoal.invalid",
		When: time.Unix(1_700_000_000+commitClock.Add(1)*60, 0)}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestVerify(t *testing.T) {
	trusted, keyring := newKey(t, "Shoal Release")
	_, otherKeyring := newKey(t, "Someone Else")

	up := newUpstream(t, "", map[string]string{"base.yaml": configMap("base")})
	c0 := runGit(t, up, "rev-parse", "HEAD")
	c1 := signedCommit(t, up, "one.yaml", "one", trusted)
	c2 := signedCommit(t, up, "two.yaml", "two", trusted)
	s := newSyncer(t, Config{URL: "file://" + up})
	start(t, s)
	waitHead(t, s, c2, 10*time.Second)
	ctx := context.Background()

	if err := s.Verify(ctx, c0, c2, keyring); err != nil {
		t.Fatalf("Verify of signed commits: %v", err)
	}
	if err := s.Verify(ctx, c2, c2, keyring); err != nil {
		t.Errorf("Verify of no new commits: %v", err)
	}

	// An unsigned commit, then a signed one on top: checking only the head
	// would miss it.
	c3 := commitFiles(t, up, map[string]string{"three.yaml": configMap("three")}, "unsigned three")
	c4 := signedCommit(t, up, "four.yaml", "four", trusted)
	s.Trigger()
	waitHead(t, s, c4, 10*time.Second)

	cases := []struct {
		name      string
		from, to  string
		keyring   string
		wantSHA   string
		wantInErr string
	}{
		{"unsigned in the middle", c2, c4, keyring, c3, "is not signed"},
		{"unknown key", c0, c2, otherKeyring, c1, "does not verify"},
		{"unsigned first commit", "", c2, keyring, c0, "is not signed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Verify(ctx, tc.from, tc.to, tc.keyring)
			if !errors.Is(err, ErrUnverified) {
				t.Fatalf("Verify = %v, want ErrUnverified", err)
			}
			if !strings.Contains(err.Error(), tc.wantSHA) || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("Verify = %v, want it to name %s and say %q", err, tc.wantSHA, tc.wantInErr)
			}
		})
	}
	if err := s.Verify(ctx, c0, c2, "not a keyring"); err == nil || errors.Is(err, ErrUnverified) {
		t.Errorf("Verify with a bad keyring = %v", err)
	}

	// A commit that carries c4's signature over a changed message.
	forged := forge(t, up, c4, "four, altered")
	s.Trigger()
	waitHead(t, s, forged, 10*time.Second)
	err := s.Verify(ctx, c4, forged, keyring)
	if !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), forged) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("Verify of a forged commit = %v", err)
	}
}

// forge writes a child of sha's parent with sha's signature and another
// message, and points main at it.
func forge(t *testing.T, dir, sha, msg string) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		t.Fatal(err)
	}
	f := *c
	f.Message = msg + "\n"
	obj := repo.Storer.NewEncodedObject()
	if err := f.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.Main, h)); err != nil {
		t.Fatal(err)
	}
	return h.String()
}
