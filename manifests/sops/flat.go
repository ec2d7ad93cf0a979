package sops

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// The dotenv format: KEY=value lines, where \n stands for a newline, and
// #comment lines; sops' metadata is flattened into sops_* entries.

func loadDotenv(in []byte) ([]branch, error) {
	var b branch
	for n, line := range bytes.Split(in, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' {
			b = append(b, item{key: comment{value: string(line[1:])}})
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			// Not the line itself: it may hold a value.
			return nil, fmt.Errorf("line %d is not KEY=value", n+1)
		}
		b = append(b, item{key: string(k), value: strings.ReplaceAll(string(v), `\n`, "\n")})
	}
	return []branch{b}, nil
}

// dotenvMetadata takes the sops_* entries out of a dotenv branch and reads
// the metadata from them.
func dotenvMetadata(branches []branch) ([]branch, metadata, error) {
	var kept, meta branch
	for _, it := range branches[0] {
		if k, ok := it.key.(string); ok {
			if name, ok := strings.CutPrefix(k, "sops_"); ok {
				meta = append(meta, item{key: name, value: it.value})
				continue
			}
		}
		kept = append(kept, it)
	}
	if meta == nil {
		return nil, metadata{}, errNoMetadata
	}
	tree, err := unflatten(meta)
	if err != nil {
		return nil, metadata{}, err
	}
	m, err := parseMetadata(tree)
	return []branch{kept}, m, err
}

func emitDotenv(branches []branch) ([]byte, error) {
	if len(branches) != 1 {
		return nil, errors.New("a dotenv document is one branch")
	}
	var buf bytes.Buffer
	for _, it := range branches[0] {
		switch it.value.(type) {
		case branch, []any:
			return nil, fmt.Errorf("the value of %v is a mapping or a list, which a dotenv file cannot hold", it.key)
		}
		if c, ok := it.key.(comment); ok {
			buf.WriteString("#" + c.value + "\n")
			continue
		}
		v, ok := it.value.(string)
		if ok {
			v = strings.ReplaceAll(v, "\n", `\n`)
		} else {
			v = scalarText(it.value)
		}
		fmt.Fprintf(&buf, "%v=%s\n", it.key, v)
	}
	return buf.Bytes(), nil
}

// scalarText is a value other than a string as sops writes it in the
// dotenv and INI formats.
func scalarText(v any) string {
	switch v := v.(type) {
	case float64:
		s := strconv.FormatFloat(v, 'G', -1, 64)
		if !strings.ContainsAny(s, ".E") {
			s = strconv.FormatFloat(v, 'f', 1, 64) // not to be read as an int
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

// The INI format: each section is an entry of the branch, its keys a
// branch of their own; the [sops] section holds the metadata, flattened.
// gopkg.in/ini.v1 reads and writes it, as in sops.

var iniOptions = ini.LoadOptions{AllowNonUniqueSections: true}

func loadINI(in []byte) ([]branch, error) {
	f, err := ini.LoadSources(iniOptions, in)
	if err != nil {
		return nil, fmt.Errorf("the INI does not parse: %w", err)
	}
	var b branch
	for _, s := range f.Sections() {
		var keys branch
		if s.Comment != "" {
			keys = append(keys, item{key: comment{value: iniComment(s.Comment)}})
		}
		for _, k := range s.Keys() {
			keys = append(keys, item{key: k.Name(), value: k.Value()})
			if k.Comment != "" {
				keys = append(keys, item{key: comment{value: iniComment(k.Comment)}})
			}
		}
		b = append(b, item{key: s.Name(), value: keys})
	}
	return []branch{b}, nil
}

// iniComment is a comment without its comment characters.
func iniComment(c string) string {
	switch {
	case strings.HasPrefix(c, ";"):
		return strings.TrimLeft(c, "; ")
	case strings.HasPrefix(c, "#"):
		return strings.TrimLeft(c, "# ")
	}
	return c
}

func emitINI(branches []branch) ([]byte, error) {
	f := ini.Empty(iniOptions)
	f.DeleteSection(ini.DefaultSection)
	for _, b := range branches {
		for _, it := range b {
			name, ok := it.key.(string)
			if !ok {
				continue // a comment
			}
			s, err := f.NewSection(name)
			if err != nil {
				return nil, fmt.Errorf("section %q: %w", name, err)
			}
			keys, ok := it.value.(branch)
			if !ok {
				return nil, fmt.Errorf("section %q is not a mapping", name)
			}
			if len(keys) > 0 {
				if c, ok := keys[0].key.(comment); ok {
					s.Comment = c.value
					keys = keys[1:]
				}
			}
			var last *ini.Key
			for _, kv := range keys {
				if c, ok := kv.key.(comment); ok {
					if last != nil {
						last.Comment = c.value
					}
					continue
				}
				if last, err = s.NewKey(fmt.Sprint(kv.key), iniValue(kv.value)); err != nil {
					return nil, fmt.Errorf("section %q: %w", name, err)
				}
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func iniValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return scalarText(v)
}
