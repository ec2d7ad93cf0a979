package sops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The JSON format: the file is one object, read token by token so that
// its keys keep their order. A number is an int when it is a whole number
// that fits 64 bits, else a float64, as in sops. The binary format is a
// JSON file whose "data" string is the whole plain text.

// jsonIndent is the indentation sops writes JSON with.
const jsonIndent = "\t"

func loadJSON(in []byte) ([]branch, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("the JSON does not parse: %w", err)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("the JSON is not an object, which a SOPS document is")
	}
	b, err := jsonObject(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("the JSON does not parse: %w", err)
	}
	return []branch{b}, nil
}

// jsonObject reads the entries of an object whose '{' was read.
func jsonObject(dec *json.Decoder, depth int) (branch, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	var b branch
	for {
		t, err := dec.Token()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		if d, ok := t.(json.Delim); ok && d == '}' {
			return b, nil
		}
		k, ok := t.(string)
		if !ok {
			return nil, errors.New("an object key is not a string")
		}
		v, err := jsonValue(dec, depth)
		if err != nil {
			return nil, err
		}
		b = append(b, item{key: k, value: v})
	}
}

// jsonArray reads the elements of an array whose '[' was read.
func jsonArray(dec *json.Decoder, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	var s []any
	for {
		if !dec.More() {
			if _, err := dec.Token(); err != nil { // ']'
				return nil, unexpectedEOF(err)
			}
			return s, nil
		}
		v, err := jsonValue(dec, depth)
		if err != nil {
			return nil, err
		}
		s = append(s, v)
	}
}

func jsonValue(dec *json.Decoder, depth int) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			return jsonObject(dec, depth+1)
		case '[':
			return jsonArray(dec, depth+1)
		}
		return nil, fmt.Errorf("unexpected %q", t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("the number %s is out of range", t)
		}
		return f, nil
	}
	return t, nil // string, bool or nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// emitJSON writes the branch as sops writes JSON: without comments,
// indented by tabs.
func emitJSON(branches []branch) ([]byte, error) {
	if len(branches) != 1 {
		return nil, errors.New("a JSON document is one object")
	}
	var compact bytes.Buffer
	if err := jsonEncode(&compact, branches[0]); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", jsonIndent); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func jsonEncode(w *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case branch:
		w.WriteByte('{')
		n := 0
		for _, it := range v {
			k, ok := it.key.(string)
			if !ok {
				continue // a comment
			}
			if n > 0 {
				w.WriteByte(',')
			}
			n++
			kb, err := json.Marshal(k)
			if err != nil {
				return err
			}
			w.Write(kb)
			w.WriteString(": ")
			if err := jsonEncode(w, it.value); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		n := 0
		for _, e := range v {
			if _, ok := e.(comment); ok {
				continue
			}
			if n > 0 {
				w.WriteByte(',')
			}
			n++
			if err := jsonEncode(w, e); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.Write(b)
	}
	return nil
}

// emitBinary writes the plain text of a file sops encrypted whole: the
// string "data".
func emitBinary(branches []branch) ([]byte, error) {
	if len(branches) != 1 {
		return nil, errors.New("a binary SOPS file is one object")
	}
	for _, it := range branches[0] {
		if it.key != "data" {
			continue
		}
		s, ok := it.value.(string)
		if !ok {
			return nil, errors.New(`its "data" is not a string`)
		}
		return []byte(s), nil
	}
	return nil, errors.New(`it has no "data"`)
}
