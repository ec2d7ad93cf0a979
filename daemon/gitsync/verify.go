package gitsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUnverified is wrapped by the errors of Verify for a commit whose
// signature is missing or does not verify.
var ErrUnverified = errors.New("commit signature not verified")

// Verify checks the OpenPGP signature of every commit in Between(from, to),
// not only the newest, against keyring (the contents of an armored OpenPGP
// public keyring). The first commit that is unsigned, signed with a key not
// in keyring, or badly signed is named in the error, which wraps
// ErrUnverified. Commits signed with SSH or X.509 keys are not verifiable.
func (s *Syncer) Verify(ctx context.Context, from, to string, keyring string) error {
	if _, err := openpgp.ReadArmoredKeyRing(strings.NewReader(keyring)); err != nil {
		return fmt.Errorf("verify commits: read the OpenPGP keyring: %w; give armored public keys (gpg --export --armor)", err)
	}
	t, err := parseSHA(to)
	if err != nil {
		return err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	commits, err := s.between(ctx, from, t)
	if err != nil {
		return fmt.Errorf("verify commits up to %.12s: %w", to, err)
	}
	for _, c := range commits {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := verifyCommit(c, keyring); err != nil {
			return err
		}
	}
	return nil
}

func verifyCommit(c *object.Commit, keyring string) error {
	desc := fmt.Sprintf("commit %s (%q by %s <%s>)", c.Hash, firstLine(c.Message), c.Author.Name, c.Author.Email)
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return fmt.Errorf("%s is not signed: %w; sign it with a key in the trusted keyring (git commit -S) or revert it", desc, ErrUnverified)
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return fmt.Errorf("%s is signed with an SSH key, which Shoal cannot verify: %w; sign with an OpenPGP key", desc, ErrUnverified)
	case strings.HasPrefix(sig, "-----BEGIN SIGNED MESSAGE-----"), strings.HasPrefix(sig, "-----BEGIN CERTIFICATE-----"):
		return fmt.Errorf("%s is signed with an X.509 certificate, which Shoal cannot verify: %w; sign with an OpenPGP key", desc, ErrUnverified)
	}
	if _, err := c.Verify(keyring); err != nil {
		return fmt.Errorf("%s has a signature that does not verify with the trusted keyring (%v): %w", desc, err, ErrUnverified)
	}
	return nil
}

func firstLine(msg string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(msg, "\n"), "\n")
	return strings.TrimSpace(line)
}
