// Package sealing keeps a cluster's Secrets encrypted in the shared store.
//
// Three pieces, none of which knows the store:
//
//   - A [Keyring] of AES-256-GCM keys, each with an id and one of them primary, which encrypts
//     values into an [Envelope]: the key's id, a random nonce and the ciphertext, with the value's
//     store key as additional authenticated data, so that a value copied under another key does
//     not open.
//   - The keyring itself is stored sealed ([SealKeyring], [OpenKeyring]) under a key derived with
//     HKDF-SHA256 from the cluster CA's private key: only the nodes that hold the CA key open it.
//   - [Seal] and [Recipient.Open] encrypt the Secrets a pod needs to its node alone, with HPKE
//     (RFC 9180: DHKEM(P-256), HKDF-SHA256, AES-256-GCM) to the key of the node's certificate,
//     which [CheckNodeCert] verifies first.
//
// Everything here is safe for concurrent use once made; a Keyring is changed only by its
// owner (AddPrimary, Retain) and must then not be shared.
package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the envelope format, the value of its "shoalEncrypted" field.
const Version = "v1"

// nonceSize is AES-GCM's standard nonce length.
const nonceSize = 12

// Envelope is one value encrypted with a key of a keyring, as it is stored:
//
//	{"shoalEncrypted":"v1","key":"<key id>","nonce":"<base64>","data":"<base64 ciphertext>"}
type Envelope struct {
	Encrypted string `json:"shoalEncrypted"`
	Key       string `json:"key"`
	Nonce     []byte `json:"nonce"`
	Data      []byte `json:"data"`
}

// envelopePrefix starts every envelope the package writes (encoding/json keeps the order of the
// fields): a value without it is not one.
var envelopePrefix = []byte(`{"shoalEncrypted":`)

// IsEnvelope reports whether a stored value is an envelope rather than a plain value. It looks
// at the value's start only; ParseEnvelope checks the rest.
func IsEnvelope(value []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(value, " \t\r\n"), envelopePrefix)
}

// ParseEnvelope decodes a stored envelope. ok is false, with no error, for a plain value (one
// written before encryption, or one that is never encrypted).
func ParseEnvelope(value []byte) (e Envelope, ok bool, err error) {
	if !IsEnvelope(value) {
		return Envelope{}, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, true, fmt.Errorf("an encrypted value is damaged: %w", err)
	}
	if dec.More() {
		return Envelope{}, true, errors.New("an encrypted value is damaged: data after its end")
	}
	switch {
	case e.Encrypted != Version:
		return Envelope{}, true, fmt.Errorf("an encrypted value has format %q: this version of Shoal reads %q; upgrade it", e.Encrypted, Version)
	case e.Key == "":
		return Envelope{}, true, errors.New("an encrypted value names no key")
	case len(e.Nonce) != nonceSize:
		return Envelope{}, true, fmt.Errorf("an encrypted value has a nonce of %d bytes, want %d", len(e.Nonce), nonceSize)
	}
	return e, true, nil
}

// Marshal encodes the envelope as it is stored.
func (e Envelope) Marshal() []byte {
	data, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("sealing: encode an envelope: %v", err)) // strings and bytes always encode
	}
	return data
}
