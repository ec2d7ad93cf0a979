package sops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	agearmor "filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/getsops/sops/v3/shamir"
)

// dataKeySize is the size of sops' data key: it is an AES-256 key.
const dataKeySize = 32

// maxDataKey bounds what an age or PGP message may decrypt to: sops' data
// keys are 32 bytes (a Shamir share one more).
const maxDataKey = 1 << 10

// dataKey recovers the file's data key with the Decryptor's keys, as sops
// does: with one key group, a key of the group must decrypt it; with
// several, each group a key decrypts gives a Shamir share, and at least
// shamir_threshold shares are combined.
func (d *Decryptor) dataKey(m metadata) ([]byte, error) {
	var parts [][]byte
	for _, g := range m.groups {
		if part, ok := d.openKeyGroup(g); ok {
			parts = append(parts, part)
		}
	}
	var key []byte
	if len(m.groups) == 1 {
		if len(parts) != 1 {
			return nil, errors.New("no key given opens the key group")
		}
		key = parts[0]
	} else {
		if len(parts) < m.shamirThreshold {
			return nil, fmt.Errorf("the keys given open %d key groups, %d are needed", len(parts), m.shamirThreshold)
		}
		var err error
		if key, err = shamir.Combine(parts); err != nil {
			return nil, fmt.Errorf("combine the Shamir shares of the data key: %w", err)
		}
	}
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("the data key is %d bytes, not %d", len(key), dataKeySize)
	}
	return key, nil
}

// openKeyGroup decrypts a key group's share of the data key with the first
// of its keys that the Decryptor opens.
func (d *Decryptor) openKeyGroup(g keyGroup) ([]byte, bool) {
	for _, k := range g {
		var (
			part []byte
			err  error
		)
		switch k.kind {
		case "age":
			part, err = d.decryptAge(k.enc)
		case "pgp":
			part, err = d.decryptPGP(k.enc)
		default:
			continue // cloud KMS and Vault keys are never used
		}
		if err == nil {
			return part, true
		}
	}
	return nil, false
}

// decryptAge decrypts an armored age message, sops' "enc" of an age key,
// with the Decryptor's identities.
func (d *Decryptor) decryptAge(enc string) ([]byte, error) {
	if len(d.age) == 0 {
		return nil, errors.New("no age identity was given")
	}
	r, err := age.Decrypt(agearmor.NewReader(strings.NewReader(enc)), d.age...)
	if err != nil {
		return nil, fmt.Errorf("decrypt the age-encrypted data key: %w", err)
	}
	return readDataKey(r)
}

// decryptPGP decrypts an armored OpenPGP message, sops' "enc" of a pgp key,
// with the keyring, from memory and without ever falling back to gpg.
func (d *Decryptor) decryptPGP(enc string) ([]byte, error) {
	if len(d.pgp) == 0 {
		return nil, errors.New("no OpenPGP key was given")
	}
	block, err := armor.Decode(strings.NewReader(enc))
	if err != nil {
		return nil, fmt.Errorf("read the PGP-encrypted data key: %w", err)
	}
	noPrompt := func([]openpgp.Key, bool) ([]byte, error) {
		return nil, errors.New("the OpenPGP key has a passphrase, which Shoal cannot ask for")
	}
	md, err := openpgp.ReadMessage(block.Body, d.pgp, noPrompt, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt the PGP-encrypted data key: %w", err)
	}
	return readDataKey(md.UnverifiedBody)
}

func readDataKey(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, maxDataKey+1)); err != nil {
		return nil, fmt.Errorf("decrypt the data key: %w", err)
	}
	if b.Len() > maxDataKey {
		return nil, errors.New("the encrypted data key is too long to be sops'")
	}
	return b.Bytes(), nil
}
