package sops

import (
	"fmt"

	"github.com/shoal-dev/shoal/manifests"
)

// format reads the SOPS files of one of sops' formats and writes their
// plain text as sops does.
type format struct {
	load func(in []byte) (document, error)
	emit func(branches []branch) ([]byte, error)
}

func formatOf(f manifests.SOPSFormat) (format, error) {
	nested := func(read func([]byte) ([]branch, error), flattened bool) func([]byte) (document, error) {
		return func(in []byte) (document, error) {
			b, err := read(in)
			if err != nil {
				return document{}, err
			}
			b, m, err := takeMetadata(b, flattened)
			return document{branches: b, meta: m}, err
		}
	}
	switch f {
	case manifests.SOPSYAML:
		return format{load: nested(loadYAML, false), emit: emitYAML}, nil
	case manifests.SOPSJSON:
		return format{load: nested(loadJSON, false), emit: emitJSON}, nil
	case manifests.SOPSBinary:
		return format{load: nested(loadJSON, false), emit: emitBinary}, nil
	case manifests.SOPSINI:
		return format{load: nested(loadINI, true), emit: emitINI}, nil
	case manifests.SOPSDotenv:
		return format{load: func(in []byte) (document, error) {
			b, err := loadDotenv(in)
			if err != nil {
				return document{}, err
			}
			b, m, err := dotenvMetadata(b)
			return document{branches: b, meta: m}, err
		}, emit: emitDotenv}, nil
	}
	return format{}, fmt.Errorf("cannot decrypt a SOPS file of format %q: Shoal reads sops' yaml, json, dotenv, ini and binary formats", f)
}
