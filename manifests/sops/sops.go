// Package sops decrypts SOPS-encrypted manifest files in memory, with age
// identities and OpenPGP secret keys that the caller passes, through
// github.com/getsops/sops/v3: the files sops writes in its YAML, JSON,
// dotenv, INI and binary formats, encrypted whole or in part
// (encrypted_regex, encrypted_suffix, unencrypted_regex,
// unencrypted_suffix: decryption reads the ENC[...] values, whatever rule
// wrote them), with one or more key groups (Shamir's secret sharing).
//
// A Decryptor implements manifests.Decryptor: pass it as
// manifests.LoadOptions.Decryptor and every SOPS file of a manifest tree,
// and every one its kustomize builds read, is decrypted before it is
// decoded.
//
//	d, err := sops.New(sops.Keys{AgeIdentities: keyFile})
//	set, err := manifests.LoadFS(ctx, fsys, ".", manifests.LoadOptions{Decryptor: d})
//
// Keys come only from what the caller passes, read once and kept in memory.
// Unlike sops' own decrypt package, a Decryptor never reads the
// environment (SOPS_AGE_KEY_FILE, GNUPGHOME and the cloud KMS
// credentials), never runs gpg nor asks gpg-agent or a terminal for a
// passphrase, and never calls a cloud KMS or Vault: it asks sops for the
// data key through a key service of its own that knows only the age and
// OpenPGP keys it was given (OpenPGP keys must therefore have no
// passphrase). The file's MAC is verified: a file changed after sops
// encrypted it is refused.
//
// Errors name what to do and the recipients the file was encrypted for;
// they never contain decrypted data.
package sops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	"github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/stores/yaml"
	"github.com/shoal-dev/shoal/manifests"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		// sops' stores were not written for hostile input.
		if r := recover(); r != nil {
			plain, secrets, err = nil, nil, errors.New("cannot decrypt this SOPS file: sops failed on it unexpectedly (the file is likely damaged); encrypt it again with sops")
		}
	}()
	store, err := storeFor(f.Format)
	if err != nil {
		return nil, nil, err
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read this SOPS file: %v; check that sops wrote it (sops --decrypt reads it) and that it was not edited by hand", err)
	}
	if len(tree.Metadata.KeyGroups) == 0 {
		return nil, nil, errors.New("cannot decrypt this SOPS file: its metadata lists no key; encrypt it again with sops and a .sops.yaml creation rule that names an age recipient or a PGP fingerprint")
	}
	recipients, other := recipientsOf(tree.Metadata)
	svc := keyservice.NewCustomLocalClient(&keyServer{d: d})
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{svc}, nil)
	if err != nil {
		return nil, nil, d.noKeyError(tree.Metadata, recipients, other)
	}
	before := leaves(tree.Branches)
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		// sops' message is about the ciphertext; it is left out all the
		// same, so that no decrypted byte can reach the error.
		return nil, nil, errors.New("cannot decrypt this SOPS file: a value does not decrypt with the file's data key, so the file was changed after sops encrypted it (or is damaged); the file is refused: encrypt it again with sops")
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, nil, errors.New("cannot verify this SOPS file: its MAC (sops.mac) does not decrypt with the file's data key, so the sops metadata was changed (or is damaged); the file is refused: encrypt it again with sops")
	}
	if s, ok := stored.(string); !ok || s != mac {
		return nil, nil, errors.New("cannot verify this SOPS file: its content does not match its MAC (sops.mac), so a value, key or comment was changed after sops encrypted it; the file is refused: edit encrypted files only with sops (sops edit FILE), or encrypt it again")
	}
	secrets = decryptedValues(before, leaves(tree.Branches))
	plain, err = store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, nil, errors.New("cannot write the decrypted document out again (sops failed on it); check that the file decrypts with sops --decrypt")
	}
	return plain, secrets, nil
}

// store is what DecryptSOPS needs of sops' stores.
type store interface {
	LoadEncryptedFile(in []byte) (gosops.Tree, error)
	EmitPlainFile(in gosops.TreeBranches) ([]byte, error)
}

func storeFor(f manifests.SOPSFormat) (store, error) {
	switch f {
	case manifests.SOPSYAML:
		return yaml.NewStore(&config.YAMLStoreConfig{}), nil
	case manifests.SOPSJSON:
		return json.NewStore(&config.JSONStoreConfig{}), nil
	case manifests.SOPSDotenv:
		return dotenv.NewStore(&config.DotenvStoreConfig{}), nil
	case manifests.SOPSINI:
		return ini.NewStore(&config.INIStoreConfig{}), nil
	case manifests.SOPSBinary:
		return json.NewBinaryStore(&config.JSONBinaryStoreConfig{}), nil
	}
	return nil, fmt.Errorf("cannot decrypt a SOPS file of format %q: Shoal reads sops' yaml, json, dotenv, ini and binary formats", f)
}

// recipientsOf lists the age recipients and OpenPGP fingerprints of a
// file's key groups, and counts its other keys.
func recipientsOf(m gosops.Metadata) (recipients []string, other int) {
	for _, g := range m.KeyGroups {
		for _, k := range g {
			switch k := k.(type) {
			case *sopsage.MasterKey:
				recipients = append(recipients, "age "+k.Recipient)
			case *pgp.MasterKey:
				recipients = append(recipients, "pgp "+k.Fingerprint)
			default:
				other++
			}
		}
	}
	return recipients, other
}

// noKeyError explains that no key of the Decryptor opens the file.
func (d *Decryptor) noKeyError(m gosops.Metadata, recipients []string, other int) error {
	var b strings.Builder
	b.WriteString("cannot decrypt this SOPS file: ")
	if len(m.KeyGroups) > 1 {
		threshold := m.ShamirThreshold
		if threshold == 0 {
			threshold = len(m.KeyGroups)
		}
		opened := 0
		for _, g := range m.KeyGroups {
			if d.opensGroup(g) {
				opened++
			}
		}
		fmt.Fprintf(&b, "its data key is split into %d key groups (Shamir), %d of which are needed, and the keys given open %d; ", len(m.KeyGroups), threshold, opened)
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
func (d *Decryptor) opensGroup(g gosops.KeyGroup) bool {
	for _, k := range g {
		switch k := k.(type) {
		case *sopsage.MasterKey:
			if slices.Contains(d.ageRecipient, k.Recipient) {
				return true
			}
		case *pgp.MasterKey:
			for _, fp := range d.pgpFP {
				if strings.EqualFold(fp, k.Fingerprint) || strings.HasSuffix(strings.ToUpper(fp), strings.ToUpper(k.Fingerprint)) {
					return true
				}
			}
		}
	}
	return false
}

// leaf is one value of a sops tree, in walk order.
type leaf struct {
	v       any
	comment bool
}

// leaves lists the values of a tree in a fixed order. Decrypting a tree
// changes its values, never its shape, so the lists of a tree before and
// after line up.
func leaves(branches gosops.TreeBranches) []leaf {
	var out []leaf
	var value func(v any, depth int)
	branch := func(b gosops.TreeBranch, depth int) {
		for _, it := range b {
			if c, ok := it.Key.(gosops.Comment); ok {
				out = append(out, leaf{v: c.Value, comment: true})
				continue
			}
			value(it.Value, depth+1)
		}
	}
	value = func(v any, depth int) {
		if depth > 10000 {
			return
		}
		switch v := v.(type) {
		case gosops.TreeBranch:
			branch(v, depth)
		case []any:
			for _, e := range v {
				value(e, depth+1)
			}
		case gosops.Comment:
			out = append(out, leaf{v: v.Value, comment: true})
		default:
			out = append(out, leaf{v: v})
		}
	}
	for _, b := range branches {
		branch(b, 0)
	}
	return out
}

// decryptedValues returns, as strings, the values of after whose
// counterpart in before was encrypted (ENC[...]).
func decryptedValues(before, after []leaf) []string {
	if len(before) != len(after) {
		return nil
	}
	var out []string
	for i, b := range before {
		s, ok := b.v.(string)
		if !ok || !strings.HasPrefix(s, "ENC[") {
			continue
		}
		switch v := after[i].v.(type) {
		case string:
			out = append(out, v)
		case []byte:
			out = append(out, string(v))
		case int:
			out = append(out, strconv.Itoa(v))
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		case gosops.Comment:
			out = append(out, v.Value)
		}
	}
	return out
}

// keyServer is the key service sops asks for each master key's share of the
// data key: it decrypts with the Decryptor's age identities and OpenPGP
// keys only, and refuses every other key type (sops' own local key service
// reads credentials from the environment and may run gpg).
type keyServer struct {
	d *Decryptor
}

var _ keyservice.KeyServiceServer = (*keyServer)(nil)

// Encrypt implements keyservice.KeyServiceServer; Shoal never encrypts.
func (s *keyServer) Encrypt(context.Context, *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	return nil, status.Error(codes.Unimplemented, "Shoal only decrypts")
}

// Decrypt implements keyservice.KeyServiceServer.
func (s *keyServer) Decrypt(_ context.Context, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	var (
		plain []byte
		err   error
	)
	switch k := req.GetKey().GetKeyType().(type) {
	case *keyservice.Key_AgeKey:
		plain, err = s.decryptAge(k.AgeKey.GetRecipient(), req.GetCiphertext())
	case *keyservice.Key_PgpKey:
		plain, err = s.decryptPGP(req.GetCiphertext())
	default:
		err = status.Errorf(codes.Unimplemented, "key type %T is not supported by Shoal: use age or OpenPGP", k)
	}
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

func (s *keyServer) decryptAge(recipient string, ciphertext []byte) ([]byte, error) {
	if len(s.d.age) == 0 {
		// sops' age key would look in the environment for identities.
		return nil, errors.New("no age identity was given")
	}
	mk := &sopsage.MasterKey{Recipient: recipient, EncryptedKey: string(ciphertext)}
	sopsage.ParsedIdentities(s.d.age).ApplyToMasterKey(mk)
	return mk.Decrypt()
}

// maxDataKey bounds what a PGP message may decrypt to: sops' data keys
// are 32 bytes (a Shamir share a few more).
const maxDataKey = 1 << 10

// decryptPGP decrypts an armored OpenPGP message with the keyring, as
// sops' pgp key does with its keyring file, but from memory and without
// ever falling back to gpg.
func (s *keyServer) decryptPGP(ciphertext []byte) ([]byte, error) {
	if len(s.d.pgp) == 0 {
		return nil, errors.New("no OpenPGP key was given")
	}
	block, err := armor.Decode(bytes.NewReader(ciphertext))
	if err != nil {
		return nil, fmt.Errorf("read the PGP-encrypted data key: %w", err)
	}
	noPrompt := func([]openpgp.Key, bool) ([]byte, error) {
		return nil, errors.New("the OpenPGP key has a passphrase, which Shoal cannot ask for")
	}
	md, err := openpgp.ReadMessage(block.Body, s.d.pgp, noPrompt, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt the PGP-encrypted data key: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, maxDataKey+1))
	if err != nil {
		return nil, fmt.Errorf("decrypt the PGP-encrypted data key: %w", err)
	}
	if len(b) > maxDataKey {
		return nil, errors.New("the PGP-encrypted data key is too long to be sops'")
	}
	return b, nil
}
