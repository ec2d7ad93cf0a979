package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// guardTransport refuses plain HTTP to registries not configured as
// insecure. go-containerregistry falls back to HTTP for loopback and
// private addresses on its own; Shoal allows it only where configured.
type guardTransport struct {
	base     http.RoundTripper
	insecure map[string]bool
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !t.insecure[req.URL.Host] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &errInsecureRefused{host: req.URL.Host}
	}
	return t.base.RoundTrip(req)
}

// countingTransport adds the body bytes of blob downloads to a progress
// tracker.
type countingTransport struct {
	base http.RoundTripper
	p    *progress
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil || !isBlobRequest(req) {
		return resp, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, p: t.p}
	return resp, nil
}

func isBlobRequest(req *http.Request) bool {
	for r := req; r != nil; {
		if bytes.Contains([]byte(r.URL.Path), []byte("/blobs/")) {
			return true
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request // follow redirects back to the original request
	}
	return false
}

type countingBody struct {
	io.ReadCloser
	p *progress
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.p.add(int64(n))
	return n, err
}

// platform is the node's platform, used to pick from multi-arch indexes.
func platform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func (s *Store) remoteOptions(ctx context.Context, p *progress, kc authn.Keychain) []remote.Option {
	tr := http.RoundTripper(s.transport)
	if p != nil {
		tr = &countingTransport{base: tr, p: p}
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(tr),
		remote.WithPlatform(platform()),
		remote.WithUserAgent("shoal"),
	}
	if s.backoff.Steps > 0 {
		opts = append(opts, remote.WithRetryBackoff(s.backoff))
	}
	return opts
}

// Pull makes the image ref available in the store according to policy and
// returns it. ref is a tag or digest reference (repo:tag, repo@sha256:...).
//
// Concurrent pulls of the same reference share one download; different
// images pull concurrently and share layers they have in common. With
// PullNever a missing image is ErrImageNeverPull; a failed pull returns a
// *PullError (errors.Is(err, ErrPullFailed)). Cancelling ctx stops this
// caller's wait; the download stops when no caller waits for it any more,
// and leaves no partial layer behind.
func (s *Store) Pull(ctx context.Context, ref string, policy PullPolicy) (*Image, error) {
	return s.PullWithKeyring(ctx, ref, policy, nil)
}

// PullWithKeyring is Pull with more credentials, such as those of a pod's
// image pull secrets. As the kubelet does, the keyring's credentials that
// match the image are tried in turn, then the store's own keychain; when
// the keyring has none that match, the store's keychain is used alone
// (anonymous if it has none either). The keyring is only read.
func (s *Store) PullWithKeyring(ctx context.Context, ref string, policy PullPolicy, kr *Keyring) (*Image, error) {
	if s.ctx.Err() != nil {
		return nil, ErrStoreClosed
	}
	r, err := s.parseRef(ref)
	if err != nil {
		return nil, &PullError{Ref: ref, Reason: ReasonOther, Err: err}
	}
	key := r.Name()
	if policy != PullAlways {
		img, err := s.local(key, r)
		if err == nil {
			return img, nil
		}
		if policy == PullNever {
			return nil, fmt.Errorf("image %q: %w (import it or use pull policy IfNotPresent)", ref, ErrImageNeverPull)
		}
	}
	var last error
	for _, a := range s.attempts(ctx, r, kr) {
		rec, err := s.pullShared(ctx, r, a)
		if err == nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.imageLocked(key, rec)
		}
		if ctx.Err() != nil {
			return nil, &PullError{Ref: ref, Reason: ReasonCanceled, Err: ctx.Err()}
		}
		last = err
	}
	return nil, classify(ref, last)
}

// attempt is one way to authenticate a pull: a keychain, and a fingerprint
// of its credentials so that only pulls with the same ones share a download.
type attempt struct {
	kc          authn.Keychain
	fingerprint string
}

// staticKeychain answers every registry with one set of credentials.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// attempts lists the credentials to try for r, in order.
func (s *Store) attempts(ctx context.Context, r name.Reference, kr *Keyring) []attempt {
	var out []attempt
	if kr != nil {
		for _, c := range kr.Lookup(lookupName(r)) {
			raw, _ := json.Marshal(c)
			sum := sha256.Sum256(raw)
			out = append(out, attempt{kc: staticKeychain{authn.FromConfig(c)}, fingerprint: hex.EncodeToString(sum[:])})
		}
	}
	node := attempt{kc: s.keychain}
	if len(out) == 0 {
		return []attempt{node}
	}
	// The node's credentials come after the pod's; once the pod has some,
	// an anonymous pull is not tried.
	if auth, err := authn.Resolve(ctx, s.keychain, r.Context()); err == nil && auth != authn.Anonymous {
		out = append(out, node)
	}
	return out
}

// pullShared pulls r with one set of credentials, sharing the download with
// concurrent pulls of r that use the same ones.
func (s *Store) pullShared(ctx context.Context, r name.Reference, a attempt) (*imageRecord, error) {
	key := r.Name()
	if a.fingerprint != "" {
		key += "\x00" + a.fingerprint
	}
	for {
		rec, _, err := s.pulls.do(ctx, key, func(ctx context.Context) (*imageRecord, error) {
			return s.pull(ctx, r, a.kc)
		})
		// The shared download may have been cancelled by the callers that
		// started it while this caller still wants it: retry.
		if err != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil && s.ctx.Err() == nil {
			continue
		}
		return rec, err
	}
}

// local returns the stored image for key if it and all its layers exist.
func (s *Store) local(key string, r name.Reference) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.st.Refs[key]
	if !ok {
		if dg, isDigest := r.(name.Digest); isDigest {
			d = dg.DigestStr() // the manifest itself may be stored under another name
		}
	}
	rec := s.st.Images[d]
	if rec == nil || !s.layersPresent(rec) {
		return nil, ErrNotFound
	}
	if !ok {
		s.st.Refs[key] = rec.Digest
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
	}
	return s.imageLocked(key, rec)
}

// pull resolves r at its registry and stores the image.
func (s *Store) pull(ctx context.Context, r name.Reference, kc authn.Keychain) (*imageRecord, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()

	key := r.Name()
	start := time.Now()
	p := newProgress(key, s.log, s.progress)
	opts := s.remoteOptions(ctx, p, kc)
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}

	// An unchanged manifest that is fully present downloads nothing more.
	s.mu.Lock()
	rec := s.st.Images[digest.String()]
	if rec != nil && s.layersPresent(rec) {
		if s.st.Refs[key] != rec.Digest {
			s.st.Refs[key] = rec.Digest
			err = s.saveLocked()
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		s.log.Debug("image up to date", "ref", key, "digest", rec.Digest)
		return rec, nil
	}
	s.mu.Unlock()

	stop := p.start(ctx, &s.wg)
	rec, err = s.storeImage(ctx, v1Source{img}, []string{key}, false, p)
	stop(err)
	if err != nil {
		return nil, err
	}
	s.log.Info("pulled image", "ref", key, "digest", rec.Digest, "bytes", p.done.Load(), "duration", time.Since(start).Round(time.Millisecond))
	return rec, nil
}

// storeImage stores img's manifest, config and layers and records it under
// names. s.gcMu must be held shared.
func (s *Store) storeImage(ctx context.Context, img source, names []string, pinned bool, p *progress) (*imageRecord, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if err := verify(rawManifest, digest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if manifest.MediaType != "" && !manifest.MediaType.IsImage() {
		return nil, fmt.Errorf("%s has media type %s, not an image manifest", digest, manifest.MediaType)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	if err := verify(rawCfg, manifest.Config.Digest); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if (cfg.OS != "" && cfg.OS != "linux") || (cfg.Architecture != "" && cfg.Architecture != runtime.GOARCH) {
		return nil, fmt.Errorf("%w: image is for %s/%s, this node runs linux/%s", errWrongPlatform, cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	layers, err := img.layerSources()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%w: manifest has %d layers, config lists %d", errBadContent, len(layers), len(cfg.RootFS.DiffIDs))
	}
	var total int64
	for _, d := range manifest.Layers {
		total += d.Size
	}
	if p != nil {
		p.setTotal(total)
	}

	sizes := make([]int64, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	for i, l := range layers {
		diffID := cfg.RootFS.DiffIDs[i]
		g.Go(func() error {
			n, err := s.ensureLayer(gctx, l, diffID, p)
			if err != nil {
				return fmt.Errorf("layer %s: %w", diffID, err)
			}
			sizes[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	if err := s.writeBlob(manifest.Config.Digest, rawCfg); err != nil {
		return nil, fmt.Errorf("store image config: %w", err)
	}
	if err := s.writeBlob(digest, rawManifest); err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.st.Images[digest.String()]
	if rec == nil {
		rec = &imageRecord{Digest: digest.String(), ID: manifest.Config.Digest.String(), Stored: time.Now().UTC()}
		for _, d := range cfg.RootFS.DiffIDs {
			rec.DiffIDs = append(rec.DiffIDs, d.String())
		}
		s.st.Images[rec.Digest] = rec
	}
	rec.Pinned = rec.Pinned || pinned
	for i, d := range cfg.RootFS.DiffIDs {
		s.st.Layers[d.String()] = sizes[i]
	}
	for _, n := range names {
		s.st.Refs[n] = rec.Digest
	}
	s.configs[rec.ID] = cfg
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return rec, nil
}

func verify(data []byte, want v1.Hash) error {
	if want.Algorithm != "sha256" {
		return fmt.Errorf("%w: unsupported digest algorithm %q", errBadContent, want.Algorithm)
	}
	sum := sha256.Sum256(data)
	if got := fmt.Sprintf("%x", sum); got != want.Hex {
		return fmt.Errorf("%w: digest is sha256:%s, want %s", errBadContent, got, want)
	}
	return nil
}

// ensureLayer makes sure the layer with diffID is unpacked and returns its
// unpacked size. Concurrent requests for one layer share one unpack.
func (s *Store) ensureLayer(ctx context.Context, l layerSource, diffID v1.Hash, p *progress) (int64, error) {
	if diffID.Algorithm != "sha256" {
		return 0, fmt.Errorf("%w: unsupported diffID algorithm %q", errBadContent, diffID.Algorithm)
	}
	for {
		if n, ok := s.layerDone(diffID); ok {
			if p != nil {
				if sz, err := l.Size(); err == nil {
					p.skip(sz)
				}
			}
			return n, nil
		}
		n, _, err := s.layers.do(ctx, diffID.String(), func(ctx context.Context) (int64, error) {
			return s.unpack(ctx, l, diffID)
		})
		if err != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil && s.ctx.Err() == nil {
			continue // the caller that started the unpack gave up; try again
		}
		return n, err
	}
}

// layerDone reports whether diffID is unpacked, with its size.
func (s *Store) layerDone(diffID v1.Hash) (int64, bool) {
	if _, err := os.Stat(s.layerPath(diffID)); err != nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.st.Layers[diffID.String()]
	if !ok {
		// Unpacked by an interrupted run that never recorded it; the size
		// is recorded when the image is stored.
		n = dirSize(s.layerPath(diffID))
	}
	return n, true
}

// unpack fetches, verifies and unpacks one layer into a temporary
// directory, then renames it into place.
func (s *Store) unpack(ctx context.Context, l layerSource, diffID v1.Hash) (int64, error) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	final := s.layerPath(diffID)
	if _, err := os.Stat(final); err == nil {
		return dirSize(final), nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-")
	if err != nil {
		return 0, fmt.Errorf("create temp dir: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if err := removeAll(tmp); err != nil {
				s.log.Warn("cannot remove partial layer", "dir", tmp, "err", err)
			}
		}
	}()
	// Unpacked layers are world-readable like a root filesystem; the
	// store root itself is 0700.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}

	rc, err := l.Uncompressed()
	if err != nil {
		return 0, fmt.Errorf("open layer: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	src := &hashingReader{r: rc, h: h, ctx: ctx}
	size, err := unpackLayer(ctx, tmp, src, s.log)
	if err != nil {
		return 0, err
	}
	// Read to the end: the tar stream may stop before the compressed
	// stream does, and go-containerregistry checks the blob digest at EOF.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return 0, fmt.Errorf("read layer: %w", err)
	}
	if err := rc.Close(); err != nil {
		return 0, fmt.Errorf("close layer: %w", err)
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != diffID.Hex {
		return 0, fmt.Errorf("%w: uncompressed layer is sha256:%s, config says %s", errBadContent, got, diffID)
	}
	// Make the files durable before the directory becomes visible.
	if fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return 0, fmt.Errorf("sync layer: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(final); serr == nil {
			return size, nil // another unpack of the same layer won
		}
		return 0, fmt.Errorf("commit layer: %w", err)
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return 0, fmt.Errorf("sync layers dir: %w", err)
	}
	return size, nil
}

// hashingReader hashes what it reads and stops when ctx ends.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	ctx context.Context
}

func (r *hashingReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// dirSize sums the sizes of regular files below dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
