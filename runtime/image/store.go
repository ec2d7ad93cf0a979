package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"
)

// DefaultMaxConcurrentLayerUnpacks is the number of layers fetched and
// unpacked at once when Config.MaxConcurrentLayerUnpacks is zero. It
// matches containerd's default of three concurrent downloads.
const DefaultMaxConcurrentLayerUnpacks = 3

const (
	indexFile   = "index.json"
	lockFile    = "lock"
	stateFormat = 1
)

// Config configures a Store.
type Config struct {
	// Root is the directory holding the store, e.g. <data dir>/images.
	// It is created if missing.
	Root string
	// InsecureRegistries lists registries (host or host:port, as in image
	// references) that may be reached over plain HTTP. Every other registry
	// is reached over HTTPS only.
	InsecureRegistries []string
	// Keychain supplies registry credentials. Default: authn.DefaultKeychain,
	// which reads the docker config.json in $DOCKER_CONFIG or ~/.docker.
	Keychain authn.Keychain
	// Logger receives pull progress and events. Default: slog.Default().
	Logger *slog.Logger
	// Progress, if set, receives human progress output during pulls: a
	// one-line progress bar redrawn with \r when it is a terminal, plain
	// lines otherwise.
	Progress io.Writer
	// MaxConcurrentLayerUnpacks bounds the layers fetched and unpacked at
	// once across all pulls and imports. Default
	// DefaultMaxConcurrentLayerUnpacks.
	MaxConcurrentLayerUnpacks int
	// ImportDir, if set, is a directory of image archives (docker or OCI,
	// plain or compressed) imported when the store opens, as k3s imports
	// its agent/images directory: air-gapped nodes get their images by
	// dropping archives there. Archives already imported are skipped; a bad
	// archive is logged and does not stop the store.
	ImportDir string
	// Transport is the HTTP transport for registries. Default: a clone of
	// go-containerregistry's remote.DefaultTransport. Plain HTTP requests
	// to registries not in InsecureRegistries are refused in any case.
	Transport http.RoundTripper
	// RetryBackoff overrides the registry client's retry backoff for
	// temporary failures. Zero keeps go-containerregistry's default
	// (3 tries, 1 s then 3 s).
	RetryBackoff remote.Backoff
}

// PullPolicy says when Pull contacts the registry, as a container's
// imagePullPolicy.
type PullPolicy int

// Pull policies.
const (
	// PullIfNotPresent pulls only when the store has no image for the
	// reference.
	PullIfNotPresent PullPolicy = iota
	// PullAlways resolves the reference at the registry on every call; an
	// unchanged manifest digest downloads nothing more.
	PullAlways
	// PullNever never contacts a registry; a missing image is
	// ErrImageNeverPull.
	PullNever
)

func (p PullPolicy) String() string {
	switch p {
	case PullAlways:
		return "Always"
	case PullNever:
		return "Never"
	case PullIfNotPresent:
		return "IfNotPresent"
	}
	return fmt.Sprintf("PullPolicy(%d)", int(p))
}

// ParsePullPolicy parses the Kubernetes spelling of a pull policy.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch s {
	case "Always":
		return PullAlways, nil
	case "Never":
		return PullNever, nil
	case "IfNotPresent", "":
		return PullIfNotPresent, nil
	}
	return 0, fmt.Errorf("unknown image pull policy %q: use Always, IfNotPresent or Never", s)
}

// Image is an image in the store, ready to run.
type Image struct {
	// Ref is the fully qualified reference the image was asked for or
	// stored under (e.g. index.docker.io/library/busybox:latest); empty
	// for an image that has no name.
	Ref string
	// Names lists every reference that points at this image.
	Names []string
	// Digest is the manifest digest (sha256:...).
	Digest string
	// ID is the config digest, the image's identity across registries.
	ID string

	// Fields from the image config.
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	User         string
	ExposedPorts []string // "80/tcp"
	Labels       map[string]string
	StopSignal   string
	OS           string
	Architecture string
	Created      time.Time

	// Layers are the unpacked layer directories, bottom (base) layer
	// first. Overlayfs wants lowerdir top first: see LowerDir.
	Layers []string
	// Size is the unpacked size in bytes: the sum of the regular file
	// contents of all layers.
	Size int64
	// Pinned images (imported from archives) are never removed by GC.
	Pinned bool
}

// LowerDir returns the overlayfs lowerdir option value for the image: the
// layer directories joined with ':', top layer first.
func (i *Image) LowerDir() string {
	dirs := slices.Clone(i.Layers)
	slices.Reverse(dirs)
	return strings.Join(dirs, ":")
}

// state is the persisted index.
type state struct {
	Format int `json:"format"`
	// Refs maps a fully qualified reference to a manifest digest.
	Refs map[string]string `json:"refs"`
	// Images maps a manifest digest to its record.
	Images map[string]*imageRecord `json:"images"`
	// Layers maps a diffID to the unpacked size of the layer.
	Layers map[string]int64 `json:"layers"`
	// Imports maps the sha256 of an imported archive file to the manifest
	// digests it held.
	Imports map[string][]string `json:"imports"`
	// Stamps maps "path|size|mtime" of an imported archive file to its
	// sha256, so unchanged files are not hashed again.
	Stamps map[string]string `json:"stamps"`
}

type imageRecord struct {
	Digest  string    `json:"digest"`
	ID      string    `json:"id"`
	DiffIDs []string  `json:"diffIDs"`
	Pinned  bool      `json:"pinned,omitempty"`
	Stored  time.Time `json:"stored"`
}

func newState() *state {
	return &state{
		Format:  stateFormat,
		Refs:    map[string]string{},
		Images:  map[string]*imageRecord{},
		Layers:  map[string]int64{},
		Imports: map[string][]string{},
		Stamps:  map[string]string{},
	}
}

// Store is a node's content-addressed image store. All methods are safe for
// concurrent use. One Store owns its root at a time (an flock on
// <root>/lock); Close releases it.
type Store struct {
	root      string
	insecure  map[string]bool
	keychain  authn.Keychain
	log       *slog.Logger
	progress  io.Writer
	transport http.RoundTripper
	backoff   remote.Backoff
	sem       chan struct{}
	lock      *os.File

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pulls  *flightGroup[*imageRecord]
	layers *flightGroup[int64]

	// gcMu is held shared by pulls and imports for their whole run and
	// exclusively by GC, so GC never sees a half-stored image.
	gcMu sync.RWMutex
	// mu guards st and the index file.
	mu sync.Mutex
	st *state
	// configs caches parsed image configs by config digest.
	configs map[string]*v1.ConfigFile
}

// NewStore opens (creating if needed) the store at cfg.Root. Leftovers of
// interrupted unpacks from an earlier run are removed.
func NewStore(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("image store: Config.Root is empty: set it to a directory such as <data dir>/images")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("image store root: %w", err)
	}
	for _, d := range []string{root, filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "layers", "sha256"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create image store: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open image store lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s (stop the other shoal daemon using it): %v", ErrStoreLocked, root, err)
	}
	s := &Store{
		root:     root,
		insecure: map[string]bool{},
		keychain: cfg.Keychain,
		log:      cfg.Logger,
		progress: cfg.Progress,
		backoff:  cfg.RetryBackoff,
		lock:     lock,
		configs:  map[string]*v1.ConfigFile{},
	}
	for _, r := range cfg.InsecureRegistries {
		s.insecure[strings.TrimSuffix(r, "/")] = true
	}
	if s.keychain == nil {
		s.keychain = authn.DefaultKeychain
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	n := cfg.MaxConcurrentLayerUnpacks
	if n <= 0 {
		n = DefaultMaxConcurrentLayerUnpacks
	}
	s.sem = make(chan struct{}, n)
	base := cfg.Transport
	if base == nil {
		base = remote.DefaultTransport.(*http.Transport).Clone()
	}
	s.transport = &guardTransport{base: base, insecure: s.insecure}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pulls = newFlightGroup[*imageRecord](s.ctx, &s.wg)
	s.layers = newFlightGroup[int64](s.ctx, &s.wg)

	if err := removeContents(filepath.Join(root, "tmp")); err != nil {
		s.Close()
		return nil, fmt.Errorf("clean image store temp dir: %w", err)
	}
	st, err := s.load()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.st = st
	if cfg.ImportDir != "" {
		if err := os.MkdirAll(cfg.ImportDir, 0o700); err != nil {
			s.Close()
			return nil, fmt.Errorf("image import dir: %w", err)
		}
		imgs, err := s.ImportDir(ctx, cfg.ImportDir)
		for _, img := range imgs {
			s.log.Info("imported image archive", "ref", img.Ref, "id", img.ID)
		}
		if err != nil {
			s.log.Warn("importing image archives", "dir", cfg.ImportDir, "err", err)
		}
	}
	return s, nil
}

// Close stops work in progress, waits for it and releases the root.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.lock != nil {
		err := s.lock.Close()
		s.lock = nil
		return err
	}
	return nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) load() (*state, error) {
	p := filepath.Join(s.root, indexFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parse image index %s: %w (move it away to start with an empty store)", p, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("image index %s has format %d, this shoal reads format %d", p, st.Format, stateFormat)
	}
	if st.Refs == nil {
		st.Refs = map[string]string{}
	}
	if st.Images == nil {
		st.Images = map[string]*imageRecord{}
	}
	if st.Layers == nil {
		st.Layers = map[string]int64{}
	}
	if st.Imports == nil {
		st.Imports = map[string][]string{}
	}
	if st.Stamps == nil {
		st.Stamps = map[string]string{}
	}
	return st, nil
}

// saveLocked writes the index atomically. s.mu must be held.
func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.root, indexFile), b); err != nil {
		return fmt.Errorf("save image index: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to p through a synced temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(p string, data []byte) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeContents removes everything inside dir.
func removeContents(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// removeAll is os.RemoveAll that also copes with unpacked directories whose
// modes deny writing (when not running as root).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || os.Geteuid() == 0 {
		return err
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// blobPath returns the path of a stored blob (manifests and configs).
func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)
}

// layerPath returns the unpacked directory of the layer with diffID h.
func (s *Store) layerPath(h v1.Hash) string {
	return filepath.Join(s.root, "layers", h.Algorithm, h.Hex)
}

func (s *Store) writeBlob(h v1.Hash, data []byte) error {
	p := s.blobPath(h)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(p, data)
}

// parseRef parses a user reference and marks it insecure when its registry
// is configured so.
func (s *Store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	if s.insecure[r.Context().RegistryStr()] {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
		}
	}
	return r, nil
}

// lookup finds the record for ref: a reference name, a manifest digest, an
// image ID (config digest) or a unique prefix of either's hex. s.mu must
// be held.
func (s *Store) lookupLocked(ref string) (string, *imageRecord) {
	if rec, ok := s.st.Images[ref]; ok {
		return "", rec
	}
	if strings.HasPrefix(ref, "sha256:") || isHexPrefix(ref) {
		h := strings.TrimPrefix(ref, "sha256:")
		var found *imageRecord
		for _, rec := range s.st.Images {
			if strings.HasPrefix(strings.TrimPrefix(rec.Digest, "sha256:"), h) || strings.HasPrefix(strings.TrimPrefix(rec.ID, "sha256:"), h) {
				if found != nil && found != rec {
					return "", nil // ambiguous
				}
				found = rec
			}
		}
		if found != nil {
			return "", found
		}
		if strings.HasPrefix(ref, "sha256:") {
			return "", nil
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", nil
	}
	key := r.Name()
	if d, ok := s.st.Refs[key]; ok {
		return key, s.st.Images[d]
	}
	return "", nil
}

func isHexPrefix(s string) bool {
	if len(s) < 12 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// layersPresent reports whether every layer of rec is unpacked on disk.
func (s *Store) layersPresent(rec *imageRecord) bool {
	for _, d := range rec.DiffIDs {
		h, err := v1.NewHash(d)
		if err != nil {
			return false
		}
		if _, err := os.Stat(s.layerPath(h)); err != nil {
			return false
		}
	}
	return true
}

// imageLocked builds the public view of rec. s.mu must be held.
func (s *Store) imageLocked(ref string, rec *imageRecord) (*Image, error) {
	cfg, err := s.configLocked(rec.ID)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Ref:          ref,
		Digest:       rec.Digest,
		ID:           rec.ID,
		Pinned:       rec.Pinned,
		OS:           cfg.OS,
		Architecture: cfg.Architecture,
		Created:      cfg.Created.Time,
		Entrypoint:   slices.Clone(cfg.Config.Entrypoint),
		Cmd:          slices.Clone(cfg.Config.Cmd),
		Env:          slices.Clone(cfg.Config.Env),
		WorkingDir:   cfg.Config.WorkingDir,
		User:         cfg.Config.User,
		StopSignal:   cfg.Config.StopSignal,
	}
	if len(cfg.Config.Labels) > 0 {
		img.Labels = make(map[string]string, len(cfg.Config.Labels))
		for k, v := range cfg.Config.Labels {
			img.Labels[k] = v
		}
	}
	for p := range cfg.Config.ExposedPorts {
		img.ExposedPorts = append(img.ExposedPorts, p)
	}
	sort.Strings(img.ExposedPorts)
	for n, d := range s.st.Refs {
		if d == rec.Digest {
			img.Names = append(img.Names, n)
		}
	}
	sort.Strings(img.Names)
	if img.Ref == "" && len(img.Names) > 0 {
		img.Ref = img.Names[0]
	}
	for _, d := range rec.DiffIDs {
		h, err := v1.NewHash(d)
		if err != nil {
			return nil, fmt.Errorf("image %s: bad layer id %q: %w", rec.Digest, d, err)
		}
		img.Layers = append(img.Layers, s.layerPath(h))
		img.Size += s.st.Layers[d]
	}
	return img, nil
}

func (s *Store) configLocked(id string) (*v1.ConfigFile, error) {
	if c, ok := s.configs[id]; ok {
		return c, nil
	}
	h, err := v1.NewHash(id)
	if err != nil {
		return nil, fmt.Errorf("bad image id %q: %w", id, err)
	}
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("read image config %s: %w", id, err)
	}
	defer f.Close()
	cfg, err := v1.ParseConfigFile(f)
	if err != nil {
		return nil, fmt.Errorf("parse image config %s: %w", id, err)
	}
	s.configs[id] = cfg
	return cfg, nil
}

// Get returns the image stored for ref: a reference (busybox:1.36,
// registry/repo@sha256:...), a manifest digest or an image ID. It wraps
// ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, ref string) (*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, rec := s.lookupLocked(ref)
	if rec == nil {
		return nil, fmt.Errorf("get image %q: %w", ref, ErrNotFound)
	}
	return s.imageLocked(key, rec)
}

// List returns every stored image, sorted by first name then digest.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Image, 0, len(s.st.Images))
	for _, rec := range s.st.Images {
		img, err := s.imageLocked("", rec)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref != out[j].Ref {
			return out[i].Ref < out[j].Ref
		}
		return out[i].Digest < out[j].Digest
	})
	return out, nil
}

// Remove removes a name. Given a reference, only that name goes; the image
// record goes with its last name. Given a digest or image ID, the image
// and all its names go. Unpacked layers are freed by the next GC. Remove
// does not know which containers use an image: the caller checks that.
func (s *Store) Remove(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key, rec := s.lookupLocked(ref)
	if rec == nil {
		return fmt.Errorf("remove image %q: %w", ref, ErrNotFound)
	}
	if key != "" && key != rec.Digest {
		delete(s.st.Refs, key)
	} else {
		for n, d := range s.st.Refs {
			if d == rec.Digest {
				delete(s.st.Refs, n)
			}
		}
	}
	named := false
	for _, d := range s.st.Refs {
		if d == rec.Digest {
			named = true
			break
		}
	}
	if !named {
		delete(s.st.Images, rec.Digest)
	}
	return s.saveLocked()
}
