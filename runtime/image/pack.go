package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PackConfig describes an image made around one static binary.
type PackConfig struct {
	// Path of the binary in the image (default "/app"); it is the Entrypoint.
	Path string
	Cmd  []string
	Env  []string
	User string
}

// packEpoch is the file time in packed images, so the same binary gives the same digest.
var packEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PackBinary makes a one-layer OCI image holding the static binary at cfg.Path, with /etc/passwd
// and /etc/group (root and nobody 65534) and /tmp, so that images need no base and no registry.
func PackBinary(binary string, cfg PackConfig) (v1.Image, error) {
	if cfg.Path == "" {
		cfg.Path = "/app"
	}
	if !path.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("pack: the path in the image %q must be absolute", cfg.Path)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, typ byte, content []byte) error {
		hdr := &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: int64(len(content)), ModTime: packEpoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}
	entries := []struct {
		name    string
		mode    int64
		typ     byte
		content []byte
	}{
		{"etc/", 0o755, tar.TypeDir, nil},
		{"etc/passwd", 0o644, tar.TypeReg, []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
		{"etc/group", 0o644, tar.TypeReg, []byte("root:x:0:\nnobody:x:65534:\n")},
		{"tmp/", 0o1777, tar.TypeDir, nil},
	}
	for d := path.Dir(cfg.Path); d != "/"; d = path.Dir(d) {
		entries = append(entries, struct {
			name    string
			mode    int64
			typ     byte
			content []byte
		}{d[1:] + "/", 0o755, tar.TypeDir, nil})
	}
	for _, e := range entries {
		if err := add(e.name, e.mode, e.typ, e.content); err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
	}
	if err := add(cfg.Path[1:], 0o755, tar.TypeReg, bin); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", platform().Architecture
	cf.Created = v1.Time{Time: packEpoch}
	cf.Config.Entrypoint = []string{cfg.Path}
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, cfg.Env...)
	cf.Config.WorkingDir = "/"
	cf.Config.User = cfg.User
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return img, nil
}

// WriteDockerArchive writes img as a docker archive ("docker save" format) tagged tag, which
// Import and `shoal image import` read.
func WriteDockerArchive(img v1.Image, tag, file string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, t, img); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
