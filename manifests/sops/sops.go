// Package sops decrypts SOPS-encrypted manifest files in memory, with age
// identities and OpenPGP secret keys that the caller passes: the files sops
// writes in its YAML, JSON, dotenv, INI and binary formats, encrypted whole
// or in part (encrypted_regex, encrypted_suffix, unencrypted_regex,
// unencrypted_suffix, encrypted_comment_regex, unencrypted_comment_regex,
// mac_only_encrypted), with one or more key groups (Shamir's secret
// sharing).
//
// A Decryptor implements manifests.Decryptor: pass it as
// manifests.LoadOptions.Decryptor and every SOPS file of a manifest tree,
// and every one its kustomize builds read, is decrypted before it is
// decoded.
//
//	d, err := sops.New(sops.Keys{AgeIdentities: keyFile})
//	set, err := manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{Decryptor: d})
//
// The package reads sops' file format itself, as sops' own stores and
// decrypt package do (the result is the same, byte for byte), rather than
// linking sops' library, which brings every cloud KMS SDK along and whose
// audit package reads /etc/sops/audit.yaml at start. The data key is
// decrypted with filippo.io/age and ProtonMail's OpenPGP library, and
// recombined with sops' shamir package when the file has several key groups;
// each value with AES-256-GCM, its path in the document as additional data;
// the MAC is computed over the decrypted tree as sops computes it and must
// equal the file's own, or the file is refused.
//
// Keys come only from what the caller passes, read once and kept in memory.
// A Decryptor never reads the environment (SOPS_AGE_KEY_FILE, GNUPGHOME and
// the cloud KMS credentials), never runs gpg nor asks gpg-agent or a
// terminal for a passphrase (OpenPGP keys must therefore have no
// passphrase), and never calls a cloud KMS or Vault: a file only they can
// open is refused.
//
// Errors name what to do and the recipients the file was encrypted for;
// they never contain decrypted data.
package sops

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/shoal-dev/shoal/manifests"
)

// Keys are the private keys a Decryptor decrypts with: the contents of key
// files, as their tools write them.
type Keys struct {
	// AgeIdentities is an age identity file as age-keygen writes it: one
	// or more AGE-SECRET-KEY-1... lines (hybrid post-quantum identities
	// too), with comments and empty lines.
	AgeIdentities []byte
	// OpenPGPKeyring is an OpenPGP secret keyring as `gpg
	// --export-secret-keys` writes it, binary or armored (--armor); several
	// keys may follow one another. The keys must have no passphrase.
	OpenPGPKeyring []byte
}

// Decryptor decrypts SOPS files with the keys it was made with. It is safe
// for concurrent use.
type Decryptor struct {
	age          []age.Identity
	ageRecipient []string // the public keys of age, for messages
	pgp          openpgp.EntityList
	pgpFP        []string // the fingerprints of pgp's keys that can decrypt, for messages
}

var _ manifests.Decryptor = (*Decryptor)(nil)

// New parses the keys. It fails when a key file given cannot be parsed or
// holds no key Shoal can use.
func New(k Keys) (*Decryptor, error) {
	d := &Decryptor{}
	if len(bytes.TrimSpace(k.AgeIdentities)) > 0 {
		ids, err := age.ParseIdentities(bytes.NewReader(k.AgeIdentities))
		if err != nil {
			return nil, fmt.Errorf("read age identities: %w; the file must be as age-keygen writes it, one AGE-SECRET-KEY-1... line per identity", err)
		}
		d.age = ids
		for _, id := range ids {
			switch id := id.(type) {
			case *age.X25519Identity:
				d.ageRecipient = append(d.ageRecipient, id.Recipient().String())
			case *age.HybridIdentity:
				d.ageRecipient = append(d.ageRecipient, id.Recipient().String())
			}
		}
	}
	if len(bytes.TrimSpace(k.OpenPGPKeyring)) > 0 {
		ring, err := readKeyring(k.OpenPGPKeyring)
		if err != nil {
			return nil, err
		}
		d.pgp = ring
		for _, key := range ring.DecryptionKeys() {
			if key.PrivateKey == nil {
				continue
			}
			fp := fingerprint(key.Entity)
			if key.PrivateKey.Encrypted {
				return nil, fmt.Errorf("read OpenPGP keyring: the key %s has a passphrase, which Shoal cannot ask for: export a copy without one (remove it with gpg --change-passphrase in a copy of the GnuPG home, then gpg --export-secret-keys)", fp)
			}
			if !slices.Contains(d.pgpFP, fp) {
				d.pgpFP = append(d.pgpFP, fp)
			}
		}
		if len(d.pgpFP) == 0 {
			return nil, errors.New("read OpenPGP keyring: it has no secret key that can decrypt, only public keys (or signing-only ones); export it with gpg --export-secret-keys, not --export")
		}
	}
	return d, nil
}

// readKeyring reads a keyring, armored or binary.
func readKeyring(data []byte) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		ring, err = readArmoredKeyrings(data)
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("read OpenPGP keyring: %w; export it with gpg --export-secret-keys [--armor] FINGERPRINT", err)
	}
	return ring, nil
}

// readArmoredKeyrings reads every armored block of data (gpg --armor
// writes one per export, and files are often concatenated).
func readArmoredKeyrings(data []byte) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	r := bytes.NewReader(data)
	for {
		block, err := armor.Decode(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if len(ring) > 0 {
				break
			}
			return nil, err
		}
		list, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		ring = append(ring, list...)
	}
	if len(ring) == 0 {
		return nil, errors.New("no key found")
	}
	return ring, nil
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
}

// Empty reports whether the Decryptor has no key at all.
func (d *Decryptor) Empty() bool { return len(d.age) == 0 && len(d.pgp) == 0 }

// Decrypt decrypts data, the content of file name, when it is a SOPS file
// (manifests.DetectSOPS tells): it returns the plain text and true, or, for
// a file that is not encrypted, data itself and false. It never panics.
func (d *Decryptor) Decrypt(name string, data []byte) (plain []byte, encrypted bool, err error) {
	f, ok := manifests.DetectSOPS(name, data)
	if !ok {
		return data, false, nil
	}
	plain, _, err = d.DecryptSOPS(name, f, data)
	return plain, true, err
}

// DecryptSOPS implements manifests.Decryptor: it decrypts the SOPS file
// name of format f.Format, verifies its MAC, and returns its plain text
// without the sops metadata, and the values it decrypted.
func (d *Decryptor) DecryptSOPS(name string, f manifests.SOPSFile, data []byte) (plain []byte, secrets []string, err error) {
	defer func() {
		// The readers below are written for hostile input; this is a
		// last line of defence all the same.
		if r := recover(); r != nil {
			plain, secrets, err = nil, nil, errors.New("cannot decrypt this SOPS file: reading it failed unexpectedly (the file is likely damaged); encrypt it again with sops")
		}
	}()
	format, err := formatOf(f.Format)
	if err != nil {
		return nil, nil, err
	}
	doc, err := format.load(data)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read this SOPS file: %v; check that sops wrote it (sops --decrypt reads it) and that it was not edited by hand", err)
	}
	if doc.meta.keyCount() == 0 {
		return nil, nil, errors.New("cannot decrypt this SOPS file: its metadata lists no key; encrypt it again with sops and a .sops.yaml creation rule that names an age recipient or a PGP fingerprint")
	}
	key, err := d.dataKey(doc.meta)
	if err != nil {
		return nil, nil, d.noKeyError(doc.meta)
	}
	mac, secrets, err := decryptTree(doc, key)
	if err != nil {
		// The reason is about the ciphertext or the tree; it is left out
		// all the same, so that no decrypted byte can reach the error.
		return nil, nil, errors.New("cannot decrypt this SOPS file: a value does not decrypt with the file's data key, so the file was changed after sops encrypted it (or is damaged); the file is refused: encrypt it again with sops")
	}
	stored, err := decryptValue(doc.meta.mac, key, doc.meta.macAAD())
	if err != nil {
		return nil, nil, errors.New("cannot verify this SOPS file: its MAC (sops.mac) does not decrypt with the file's data key, so the sops metadata was changed (or is damaged); the file is refused: encrypt it again with sops")
	}
	if s, ok := stored.(string); !ok || subtle.ConstantTimeCompare([]byte(s), []byte(mac)) != 1 {
		return nil, nil, errors.New("cannot verify this SOPS file: its content does not match its MAC (sops.mac), so a value, key or comment was changed after sops encrypted it; the file is refused: edit encrypted files only with sops (sops edit FILE), or encrypt it again")
	}
	plain, err = format.emit(doc.branches)
	if err != nil {
		// Not err itself: it may quote a decrypted value.
		return nil, nil, errors.New("cannot write the decrypted document out again in its format (a value does not fit it); check that the file decrypts with sops --decrypt")
	}
	return plain, secrets, nil
}

// recipients lists the age recipients and OpenPGP fingerprints of a
// file's key groups, and counts its other keys.
func (m *metadata) recipients() (recipients []string, other int) {
	for _, g := range m.groups {
		for _, k := range g {
			switch k.kind {
			case "age", "pgp":
				recipients = append(recipients, k.kind+" "+k.id)
			default:
				other++
			}
		}
	}
	return recipients, other
}

// noKeyError explains that no key of the Decryptor opens the file.
func (d *Decryptor) noKeyError(m metadata) error {
	recipients, other := m.recipients()
	var b strings.Builder
	b.WriteString("cannot decrypt this SOPS file: ")
	if len(m.groups) > 1 {
		threshold := m.shamirThreshold
		if threshold == 0 {
			threshold = len(m.groups)
		}
		opened := 0
		for _, g := range m.groups {
			if d.opensGroup(g) {
				opened++
			}
		}
		fmt.Fprintf(&b, "its data key is split into %d key groups (Shamir), %d of which are needed, and the keys given open %d; ", len(m.groups), threshold, opened)
	} else {
		b.WriteString("no key given matches its recipients; ")
	}
	b.WriteString("it is encrypted for ")
	b.WriteString(manifests.SOPSFile{Recipients: recipients, OtherKeys: other}.DescribeRecipients())
	b.WriteString("; ")
	b.WriteString(d.describeKeys())
	b.WriteString(": ")
	b.WriteString(manifests.KeyHint)
	b.WriteString(" (or add a recipient you hold with sops updatekeys)")
	return errors.New(b.String())
}

// describeKeys says which keys the Decryptor has, by their public parts.
func (d *Decryptor) describeKeys() string {
	var have []string
	for _, r := range d.ageRecipient {
		have = append(have, "age "+r)
	}
	for _, fp := range d.pgpFP {
		have = append(have, "pgp "+fp)
	}
	if len(have) == 0 {
		return "no key was given"
	}
	return "the keys given are for " + strings.Join(have, ", ")
}

// opensGroup reports whether one of the Decryptor's keys is a recipient of
// a key group (by its public key, without decrypting).
func (d *Decryptor) opensGroup(g keyGroup) bool {
	for _, k := range g {
		switch k.kind {
		case "age":
			if slices.Contains(d.ageRecipient, k.id) {
				return true
			}
		case "pgp":
			for _, fp := range d.pgpFP {
				if strings.EqualFold(fp, k.id) || strings.HasSuffix(strings.ToUpper(fp), strings.ToUpper(k.id)) {
					return true
				}
			}
		}
	}
	return false
}
