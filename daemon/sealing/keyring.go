package sealing

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors that callers test for with errors.Is.
var (
	// ErrUnknownKey: the envelope names a key the keyring does not hold.
	ErrUnknownKey = errors.New("the key is not in the keyring")
	// ErrOpen: the ciphertext does not open with the key: it was encrypted with another key, for
	// another place, or changed since.
	ErrOpen = errors.New("the value does not open")
)

// keySize is AES-256's key length.
const keySize = 32

// Key is one AES-256-GCM key of a keyring.
type Key struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

// Keyring is the cluster's keys: new values are encrypted with the primary one, and a value
// opens with whichever key its envelope names.
type Keyring struct {
	Primary string `json:"primary"`
	Keys    []Key  `json:"keys"`
}

// NewKeyring returns a keyring of one new key, its primary.
func NewKeyring(now time.Time) (*Keyring, error) {
	k := &Keyring{}
	if _, err := k.AddPrimary(now); err != nil {
		return nil, err
	}
	return k, nil
}

// AddPrimary adds a new random key and makes it the primary one; the others stay, so that what
// they encrypted still opens.
func (k *Keyring) AddPrimary(now time.Time) (Key, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("make a key: %w", err)
	}
	var id string
	for {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return Key{}, fmt.Errorf("make a key: %w", err)
		}
		if id = hex.EncodeToString(b); k.key(id) == nil {
			break
		}
	}
	key := Key{ID: id, Secret: secret, Created: now.UTC()}
	k.Keys = append(k.Keys, key)
	k.Primary = id
	return key, nil
}

// Retain keeps only the keys whose ids keep reports true for, and the primary one always.
func (k *Keyring) Retain(keep func(id string) bool) {
	k.Keys = slices.DeleteFunc(k.Keys, func(key Key) bool { return key.ID != k.Primary && !keep(key.ID) })
}

// IDs returns the ids of the keyring's keys, in the order they were added.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.Keys))
	for i, key := range k.Keys {
		ids[i] = key.ID
	}
	return ids
}

// Key returns the key of an id, and whether the keyring holds it.
func (k *Keyring) Key(id string) (Key, bool) {
	if key := k.key(id); key != nil {
		return *key, true
	}
	return Key{}, false
}

func (k *Keyring) key(id string) *Key {
	for i := range k.Keys {
		if k.Keys[i].ID == id {
			return &k.Keys[i]
		}
	}
	return nil
}

// Seal encrypts plaintext with the primary key for the store key aad.
func (k *Keyring) Seal(plaintext, aad []byte) (Envelope, error) {
	key := k.key(k.Primary)
	if key == nil {
		return Envelope{}, fmt.Errorf("the keyring has no primary key %q: %w", k.Primary, ErrUnknownKey)
	}
	return seal(key.ID, key.Secret, plaintext, aad)
}

// Open decrypts an envelope stored under the store key aad.
func (k *Keyring) Open(e Envelope, aad []byte) ([]byte, error) {
	key := k.key(e.Key)
	if key == nil {
		return nil, fmt.Errorf("key %q: %w", e.Key, ErrUnknownKey)
	}
	return open(key.Secret, e, aad)
}

func newGCM(secret []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(id string, secret, plaintext, aad []byte) (Envelope, error) {
	gcm, err := newGCM(secret)
	if err != nil {
		return Envelope{}, fmt.Errorf("encrypt with key %q: %w", id, err)
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Envelope{}, fmt.Errorf("encrypt with key %q: %w", id, err)
	}
	return Envelope{Encrypted: Version, Key: id, Nonce: nonce, Data: gcm.Seal(nil, nonce, plaintext, aad)}, nil
}

func open(secret []byte, e Envelope, aad []byte) ([]byte, error) {
	gcm, err := newGCM(secret)
	if err != nil {
		return nil, fmt.Errorf("decrypt with key %q: %w", e.Key, err)
	}
	if len(e.Nonce) != gcm.NonceSize() {
		return nil, fmt.Errorf("decrypt with key %q: a nonce of %d bytes: %w", e.Key, len(e.Nonce), ErrOpen)
	}
	out, err := gcm.Open(nil, e.Nonce, e.Data, aad)
	if err != nil {
		return nil, fmt.Errorf("decrypt with key %q: %w", e.Key, ErrOpen)
	}
	return out, nil
}

// keyringKeyID is the key id of a sealed keyring's envelope: the key derived from the CA's.
const keyringKeyID = "ca"

// keyringInfo is the HKDF info of the key that seals the keyring.
const keyringInfo = "shoal secrets keyring v1"

// keyringKey derives the key that seals the keyring from the cluster CA's private key: every
// node that holds the CA key derives the same one, and no other node can.
func keyringKey(caKey crypto.Signer) ([]byte, error) {
	if caKey == nil {
		return nil, errors.New("no cluster CA key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("the cluster CA key: %w", err)
	}
	return hkdf.Key(sha256.New, der, nil, keyringInfo, keySize)
}

// SealKeyring encrypts a keyring under the key derived from the CA key, for the store key aad.
func SealKeyring(caKey crypto.Signer, k *Keyring, aad []byte) ([]byte, error) {
	if k.key(k.Primary) == nil {
		return nil, fmt.Errorf("seal the keyring: it has no primary key %q", k.Primary)
	}
	secret, err := keyringKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("seal the keyring: %w", err)
	}
	plain, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("seal the keyring: %w", err)
	}
	e, err := seal(keyringKeyID, secret, plain, aad)
	if err != nil {
		return nil, fmt.Errorf("seal the keyring: %w", err)
	}
	return e.Marshal(), nil
}

// OpenKeyring decrypts a keyring sealed by SealKeyring with the same CA key, stored under aad.
// The key of another cluster's CA fails with ErrOpen.
func OpenKeyring(caKey crypto.Signer, value, aad []byte) (*Keyring, error) {
	e, ok, err := ParseEnvelope(value)
	switch {
	case err != nil:
		return nil, fmt.Errorf("open the keyring: %w", err)
	case !ok || e.Key != keyringKeyID:
		return nil, errors.New("open the keyring: the stored value is not a sealed keyring")
	}
	secret, err := keyringKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("open the keyring: %w", err)
	}
	plain, err := open(secret, e, aad)
	if err != nil {
		return nil, fmt.Errorf("open the keyring (sealed under another cluster CA's key, or changed): %w", err)
	}
	var k Keyring
	if err := json.Unmarshal(plain, &k); err != nil {
		return nil, fmt.Errorf("open the keyring: %w", err)
	}
	for _, key := range k.Keys {
		if len(key.Secret) != keySize || key.ID == "" {
			return nil, fmt.Errorf("open the keyring: key %q is damaged", key.ID)
		}
	}
	if k.key(k.Primary) == nil {
		return nil, fmt.Errorf("open the keyring: it has no primary key %q", k.Primary)
	}
	return &k, nil
}
