package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// source is what storeImage needs of an image: a registry image, an image
// from an OCI layout, or one from a docker archive.
type source interface {
	Digest() (v1.Hash, error)
	RawManifest() ([]byte, error)
	RawConfigFile() ([]byte, error)
	layerSources() ([]layerSource, error)
}

// layerSource opens a layer's uncompressed tar stream.
type layerSource interface {
	Uncompressed() (io.ReadCloser, error)
	Size() (int64, error)
}

// v1Source adapts a go-containerregistry image; its layers decompress and
// verify their compressed digest themselves.
type v1Source struct{ v1.Image }

func (s v1Source) layerSources() ([]layerSource, error) {
	ls, err := s.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]layerSource, len(ls))
	for i, l := range ls {
		out[i] = l
	}
	return out, nil
}

// fileLayer is a layer blob read from a local archive or layout. Its
// compression is recognised by its magic number.
type fileLayer struct {
	open func() (io.ReadCloser, error)
	size int64
}

func (l *fileLayer) Size() (int64, error) { return l.size, nil }

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return decompress(rc)
}

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// decompress returns the decompressed stream of rc (gzip, zstd or plain).
func decompress(rc io.ReadCloser) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(rc, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		rc.Close()
		return nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("open gzip layer: %w", err)
		}
		return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("open zstd layer: %w", err)
		}
		return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
	}
	return readCloser{Reader: br, close: rc.Close}, nil
}

// compressionMediaType names the OCI layer media type for a blob prefix.
func compressionMediaType(prefix []byte) string {
	switch {
	case bytes.HasPrefix(prefix, gzipMagic):
		return "application/vnd.oci.image.layer.v1.tar+gzip"
	case bytes.HasPrefix(prefix, zstdMagic):
		return "application/vnd.oci.image.layer.v1.tar+zstd"
	}
	return "application/vnd.oci.image.layer.v1.tar"
}

// staticSource is an image assembled from local files.
type staticSource struct {
	manifest []byte
	config   []byte
	layers   []layerSource
}

func (s *staticSource) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(s.manifest))
	return h, err
}
func (s *staticSource) RawManifest() ([]byte, error)         { return s.manifest, nil }
func (s *staticSource) RawConfigFile() ([]byte, error)       { return s.config, nil }
func (s *staticSource) layerSources() ([]layerSource, error) { return s.layers, nil }
