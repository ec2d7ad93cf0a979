package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations that name images in an OCI layout's index.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// maxMetadataSize bounds manifests, configs and index files read from an
// archive.
const maxMetadataSize = 8 << 20

// archiveSuffixes are the file names ImportDir imports.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"}

// archive gives access to the files of an image archive: a tar file (read
// in place by offset) or a directory.
type archive struct {
	dir     string // a directory in OCI layout, or ""
	f       *os.File
	entries map[string]tarEntry
	small   map[string][]byte // contents of small JSON files
}

type tarEntry struct {
	off, size int64
	prefix    []byte // first bytes, to recognise compression
	digest    string // sha256 hex of the entry
}

func (a *archive) close() {
	if a.f != nil {
		a.f.Close()
	}
}

func (a *archive) has(p string) bool {
	if a.dir != "" {
		_, err := os.Stat(filepath.Join(a.dir, filepath.FromSlash(p)))
		return err == nil
	}
	_, ok := a.entries[p]
	return ok
}

func (a *archive) open(p string) (io.ReadCloser, int64, error) {
	if a.dir != "" {
		clean, err := cleanPath(p)
		if err != nil {
			return nil, 0, err
		}
		f, err := os.Open(filepath.Join(a.dir, filepath.FromSlash(clean)))
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s is not a regular file", p)
		}
		return f, fi.Size(), nil
	}
	e, ok := a.entries[p]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(a.f, e.off, e.size)), e.size, nil
}

func (a *archive) readSmall(p string) ([]byte, error) {
	if b, ok := a.small[p]; ok {
		return b, nil
	}
	rc, size, err := a.open(p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxMetadataSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed for metadata", p, size, maxMetadataSize)
	}
	return io.ReadAll(io.LimitReader(rc, maxMetadataSize))
}

func (a *archive) blob(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// openArchive opens p (a directory in OCI layout, or a tar file that may be
// gzip or zstd compressed) and returns it with the sha256 hex of the file
// ("" for a directory).
func (s *Store) openArchive(ctx context.Context, p string) (*archive, string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", err
	}
	if fi.IsDir() {
		return &archive{dir: p}, "", nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, "", err
	}
	fileHash := sha256.New()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, "", err
	}
	scanHash := fileHash
	if bytes.HasPrefix(magic[:n], gzipMagic) || bytes.HasPrefix(magic[:n], zstdMagic) {
		// A compressed archive is decompressed to an unlinked temp file,
		// read by offset and gone when closed.
		tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "archive-")
		if err != nil {
			f.Close()
			return nil, "", err
		}
		os.Remove(tmp.Name())
		zr, err := decompress(io.NopCloser(io.TeeReader(&ctxReader{ctx: ctx, r: f}, fileHash)))
		if err == nil {
			_, err = io.Copy(tmp, zr)
			zr.Close()
		}
		if err == nil {
			_, err = io.Copy(fileHash, f) // trailing bytes, if any
		}
		f.Close()
		if err != nil {
			tmp.Close()
			return nil, "", fmt.Errorf("decompress archive: %w", err)
		}
		f, scanHash = tmp, nil
	}
	a := &archive{f: f, entries: map[string]tarEntry{}, small: map[string][]byte{}}
	if err := a.scan(ctx, scanHash); err != nil {
		a.close()
		return nil, "", err
	}
	return a, hex.EncodeToString(fileHash.Sum(nil)), nil
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// scan indexes the tar entries of a.f by offset, hashing every entry and,
// if fileHash is not nil, the whole file.
func (a *archive) scan(ctx context.Context, fileHash hash.Hash) error {
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var raw io.Reader = &ctxReader{ctx: ctx, r: a.f}
	if fileHash != nil {
		raw = io.TeeReader(raw, fileHash)
	}
	// Offsets count the bytes the tar reader consumed, above the buffer.
	cr := &countingReader{r: bufio.NewReaderSize(raw, 256<<10)}
	tr := tar.NewReader(cr)
	eh := sha256.New()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA { //nolint:staticcheck // old archives
			continue
		}
		p, err := cleanPath(hdr.Name)
		if err != nil || p == "." {
			continue
		}
		e := tarEntry{off: cr.n, size: hdr.Size}
		eh.Reset()
		var head bytes.Buffer
		keep := (strings.HasSuffix(p, ".json") || p == "oci-layout" || strings.HasPrefix(p, "blobs/")) && hdr.Size <= maxMetadataSize
		w := io.Writer(eh)
		if keep && hdr.Size <= 64<<10 {
			// Small files (index, manifests, configs) are kept in memory.
			w = io.MultiWriter(eh, &head)
		}
		bw := &prefixWriter{w: w, max: 8}
		if _, err := io.Copy(bw, tr); err != nil {
			return fmt.Errorf("read archive entry %s: %w", hdr.Name, err)
		}
		e.prefix = bw.prefix
		e.digest = hex.EncodeToString(eh.Sum(nil))
		a.entries[p] = e
		if keep && hdr.Size <= 64<<10 {
			a.small[p] = head.Bytes()
		}
	}
	if fileHash != nil {
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
	}
	return nil
}

// prefixWriter keeps the first max bytes written through it.
type prefixWriter struct {
	w      io.Writer
	max    int
	prefix []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if len(p.prefix) < p.max {
		p.prefix = append(p.prefix, b[:min(len(b), p.max-len(p.prefix))]...)
	}
	return p.w.Write(b)
}

// Import imports the images of an archive into the store and returns them:
// a docker archive ("docker save"), a tar of an OCI image layout (an
// oci-archive, "podman save --format oci-archive"), or a directory in OCI
// layout. Archives may be gzip or zstd compressed. Names come from the
// archive's RepoTags or from the index's io.containerd.image.name or
// org.opencontainers.image.ref.name annotations (the latter when it is a
// full reference). Imported images are pinned: GC keeps them until they
// are removed. Images for another platform are skipped.
func (s *Store) Import(ctx context.Context, p string) ([]*Image, error) {
	recs, _, err := s.importFile(ctx, p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Image, 0, len(recs))
	for _, r := range recs {
		img, err := s.imageLocked(r.name, r.rec)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

type importedImage struct {
	name string
	rec  *imageRecord
}

func (s *Store) importFile(ctx context.Context, p string) ([]importedImage, string, error) {
	if s.ctx.Err() != nil {
		return nil, "", ErrStoreClosed
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	a, digest, err := s.openArchive(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("import %s: %w", p, err)
	}
	defer a.close()
	var recs []importedImage
	switch {
	case a.has("index.json") && a.has("oci-layout"):
		recs, err = s.importLayout(ctx, a)
	case a.has("manifest.json"):
		recs, err = s.importDocker(ctx, a)
	default:
		err = errors.New("not a docker archive (no manifest.json) or OCI layout (no index.json and oci-layout)")
	}
	if err != nil {
		return nil, "", fmt.Errorf("import %s: %w", p, err)
	}
	if digest != "" {
		s.mu.Lock()
		var ds []string
		for _, r := range recs {
			ds = append(ds, r.rec.Digest)
		}
		s.st.Imports[digest] = ds
		if fi, err := os.Stat(p); err == nil {
			s.st.Stamps[fileStamp(p, fi)] = digest
		}
		err = s.saveLocked()
		s.mu.Unlock()
		if err != nil {
			return nil, "", err
		}
	}
	s.log.Info("imported images", "path", p, "images", len(recs))
	return recs, digest, nil
}

func (s *Store) importDocker(ctx context.Context, a *archive) ([]importedImage, error) {
	b, err := a.readSmall("manifest.json")
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest.json: %w", err)
	}
	var out []importedImage
	for _, d := range m {
		var names []string
		for _, t := range d.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				s.log.Warn("skipping bad image name in archive", "name", t, "err", err)
				continue
			}
			names = append(names, tag.Name())
		}
		cfgPath, err := cleanPath(d.Config)
		if err != nil {
			return nil, err
		}
		cfg, err := a.readSmall(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("read image config: %w", err)
		}
		cfgHash, cfgSize, err := v1.SHA256(bytes.NewReader(cfg))
		if err != nil {
			return nil, err
		}
		// A docker archive holds no manifest: describe the layers exactly
		// as stored, so the digest is stable for the same archive content.
		man := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgHash, Size: cfgSize},
		}
		var layers []layerSource
		for _, lp := range d.Layers {
			lp, err := cleanPath(lp)
			if err != nil {
				return nil, err
			}
			e, ok := a.entries[lp]
			if !ok {
				return nil, fmt.Errorf("layer %s missing from archive", lp)
			}
			man.Layers = append(man.Layers, v1.Descriptor{
				MediaType: types.MediaType(compressionMediaType(e.prefix)),
				Digest:    v1.Hash{Algorithm: "sha256", Hex: e.digest},
				Size:      e.size,
			})
			layers = append(layers, &fileLayer{size: e.size, open: func() (io.ReadCloser, error) {
				rc, _, err := a.open(lp)
				return rc, err
			}})
		}
		raw, err := json.Marshal(man)
		if err != nil {
			return nil, err
		}
		rec, err := s.storeImage(ctx, &staticSource{manifest: raw, config: cfg, layers: layers}, names, true, nil)
		if errors.Is(err, errWrongPlatform) {
			s.log.Warn("skipping image for another platform", "names", names, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %v: %w", d.RepoTags, err)
		}
		out = append(out, importedImages(rec, names)...)
	}
	return out, nil
}

func importedImages(rec *imageRecord, names []string) []importedImage {
	if len(names) == 0 {
		return []importedImage{{rec: rec}}
	}
	return []importedImage{{name: names[0], rec: rec}}
}

func (s *Store) importLayout(ctx context.Context, a *archive) ([]importedImage, error) {
	b, err := a.readSmall("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse index.json: %w", err)
	}
	var out []importedImage
	for _, d := range idx.Manifests {
		names := layoutNames(d)
		desc, err := s.resolveLayoutDescriptor(a, d, 0)
		if err != nil {
			return nil, err
		}
		if desc == nil {
			s.log.Warn("skipping image without a manifest for this platform", "names", names, "digest", d.Digest)
			continue
		}
		src, err := s.layoutImage(a, *desc)
		if err != nil {
			return nil, err
		}
		rec, err := s.storeImage(ctx, src, names, true, nil)
		if errors.Is(err, errWrongPlatform) {
			s.log.Warn("skipping image for another platform", "names", names, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		out = append(out, importedImages(rec, names)...)
	}
	return out, nil
}

// layoutNames returns the image names given by an index descriptor.
func layoutNames(d v1.Descriptor) []string {
	for _, n := range []string{d.Annotations[annotationContainerdName], d.Annotations[annotationRefName]} {
		// A bare ref.name ("latest") is only a tag, with no repository.
		if n == "" || !strings.ContainsAny(n, ":/@") {
			continue
		}
		r, err := name.ParseReference(n)
		if err != nil {
			continue
		}
		return []string{r.Name()}
	}
	return nil
}

// resolveLayoutDescriptor follows nested indexes to the image manifest for
// this node's platform; nil if there is none.
func (s *Store) resolveLayoutDescriptor(a *archive, d v1.Descriptor, depth int) (*v1.Descriptor, error) {
	if d.MediaType.IsImage() {
		return &d, nil
	}
	if !d.MediaType.IsIndex() {
		return nil, nil
	}
	if depth > 4 {
		return nil, errors.New("image indexes nested too deep")
	}
	b, err := a.readSmall(a.blob(d.Digest))
	if err != nil {
		return nil, err
	}
	if err := verify(b, d.Digest); err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse index %s: %w", d.Digest, err)
	}
	want := platform()
	var fallback *v1.Descriptor
	for _, c := range idx.Manifests {
		if c.Platform != nil && !c.Platform.Satisfies(want) {
			continue
		}
		r, err := s.resolveLayoutDescriptor(a, c, depth+1)
		if err != nil {
			return nil, err
		}
		if r != nil && c.Platform != nil {
			return r, nil
		}
		if r != nil && fallback == nil {
			fallback = r
		}
	}
	return fallback, nil
}

func (s *Store) layoutImage(a *archive, d v1.Descriptor) (source, error) {
	raw, err := a.readSmall(a.blob(d.Digest))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if err := verify(raw, d.Digest); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", d.Digest, err)
	}
	cfg, err := a.readSmall(a.blob(m.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	src := &staticSource{manifest: raw, config: cfg}
	for _, l := range m.Layers {
		bp := a.blob(l.Digest)
		if !a.has(bp) {
			return nil, fmt.Errorf("layer %s missing from archive", l.Digest)
		}
		src.layers = append(src.layers, &fileLayer{size: l.Size, open: func() (io.ReadCloser, error) {
			rc, _, err := a.open(bp)
			return rc, err
		}})
	}
	return src, nil
}

// ImportDir imports every image archive (*.tar, *.tar.gz, *.tgz, *.tar.zst,
// *.tzst) in dir, as an air-gapped node does at start. Archives already
// imported (same content, and their images still in the store) are
// skipped without being read again when their size and modification time
// are unchanged. Errors of single archives are joined; the others are
// still imported.
func (s *Store) ImportDir(ctx context.Context, dir string) ([]*Image, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("import images from %s: %w", dir, err)
	}
	var (
		out  []*Image
		errs []error
	)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		if e.IsDir() || !hasArchiveSuffix(e.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		p := filepath.Join(dir, e.Name())
		if s.alreadyImported(p) {
			s.log.Debug("image archive already imported", "path", p)
			continue
		}
		imgs, err := s.Import(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, imgs...)
	}
	return out, errors.Join(errs...)
}

func hasArchiveSuffix(n string) bool {
	for _, suf := range archiveSuffixes {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

// alreadyImported reports whether the archive at p was imported before and
// its images are all still present.
func (s *Store) alreadyImported(p string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		return false
	}
	stamp := fileStamp(p, fi)
	s.mu.Lock()
	digest, ok := s.st.Stamps[stamp]
	s.mu.Unlock()
	if !ok {
		d, err := fileSHA256(p)
		if err != nil {
			return false
		}
		digest = d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ds, ok := s.st.Imports[digest]
	if !ok {
		return false
	}
	for _, d := range ds {
		rec := s.st.Images[d]
		if rec == nil || !s.layersPresent(rec) {
			return false
		}
	}
	if s.st.Stamps[stamp] != digest {
		s.st.Stamps[stamp] = digest
		_ = s.saveLocked()
	}
	return true
}

func fileStamp(p string, fi fs.FileInfo) string {
	return fmt.Sprintf("%s|%d|%d", p, fi.Size(), fi.ModTime().UnixNano())
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
