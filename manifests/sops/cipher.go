package sops

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A value sops encrypted is a string
//
//	ENC[AES256_GCM,data:<base64>,iv:<base64>,tag:<base64>,type:<type>]
//
// data and tag are the AES-256-GCM ciphertext and tag of the value's text,
// made with the data key, the 32-byte nonce iv, and the value's path in the
// document as additional data; type says what the text was (str, int,
// float, bool, bytes, time or comment).

const (
	encPrefix = "ENC[AES256_GCM,"
	nonceSize = 32 // sops' nonce, longer than GCM's usual 12 bytes
	tagSize   = 16
)

// looksEncrypted reports whether s has the form of a value sops encrypted.
func looksEncrypted(s string) bool { return strings.HasPrefix(s, encPrefix) }

// encryptedValue is the parts of an ENC[...] string.
type encryptedValue struct {
	data, iv, tag []byte
	kind          string
}

func parseEncrypted(s string) (encryptedValue, error) {
	var v encryptedValue
	inner, ok := strings.CutPrefix(s, encPrefix)
	if !ok {
		return v, errors.New("not an ENC[AES256_GCM,...] value")
	}
	if inner, ok = strings.CutSuffix(inner, "]"); !ok {
		return v, errors.New("the ENC[...] value is not closed")
	}
	fields := strings.Split(inner, ",")
	if len(fields) != 4 {
		return v, errors.New("the ENC[...] value does not have the fields data, iv, tag and type")
	}
	field := func(i int, name string) (string, error) {
		s, ok := strings.CutPrefix(fields[i], name+":")
		if !ok || s == "" {
			return "", fmt.Errorf("the ENC[...] value has no %s", name)
		}
		return s, nil
	}
	b64 := func(i int, name string) ([]byte, error) {
		s, err := field(i, name)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("the %s of the ENC[...] value is not base64: %w", name, err)
		}
		return b, nil
	}
	var err error
	if v.data, err = b64(0, "data"); err != nil {
		return v, err
	}
	if v.iv, err = b64(1, "iv"); err != nil {
		return v, err
	}
	if v.tag, err = b64(2, "tag"); err != nil {
		return v, err
	}
	if v.kind, err = field(3, "type"); err != nil {
		return v, err
	}
	if len(v.iv) != nonceSize || len(v.tag) != tagSize {
		return v, errors.New("the nonce or the tag of the ENC[...] value has the wrong size")
	}
	return v, nil
}

// decryptValue decrypts an ENC[...] string with the data key and the
// additional data aad, and converts it back to its type: string (str and
// bytes), int, float64, bool, time.Time or comment. The empty string, which sops
// never encrypts, stays the empty string.
func decryptValue(s string, key []byte, aad string) (any, error) {
	if s == "" {
		return "", nil
	}
	v, err := parseEncrypted(s)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, 0, len(v.data)+len(v.tag))
	sealed = append(append(sealed, v.data...), v.tag...)
	plain, err := gcm.Open(nil, v.iv, sealed, []byte(aad))
	if err != nil {
		return nil, errors.New("the value does not authenticate with the data key and its path")
	}
	text := string(plain)
	var out any
	switch v.kind {
	case "str":
		out = text
	case "int":
		out, err = strconv.Atoi(text)
	case "float":
		out, err = strconv.ParseFloat(text, 64)
	case "bool":
		out, err = strconv.ParseBool(text)
	case "bytes":
		// Written by sops' first, Python, version. sops reads it as a string
		// wherever it is used, and hashes it alike into the MAC.
		out = text
	case "time":
		var t time.Time
		err = t.UnmarshalText(plain)
		out = t
	case "comment":
		out = comment{value: text}
	default:
		return nil, fmt.Errorf("unknown type %q of an ENC[...] value", v.kind)
	}
	if err != nil {
		// Not err itself: it would quote the decrypted text.
		return nil, fmt.Errorf("the decrypted value is not of its type %s", v.kind)
	}
	return out, nil
}
