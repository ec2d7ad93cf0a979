package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/shoal-dev/shoal/runtime/imagetest"
)

func TestPullByTagAndDigest(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	img := imagetest.TestAppImage(t, imagetest.WithUser("65534"))
	digest := imagetest.Push(t, img, host+"/shoal/app:v1")
	s := newTestStore(t, host)

	got, err := s.Pull(ctx, host+"/shoal/app:v1", PullIfNotPresent)
	if err != nil {
		t.Fatalf("pull by tag: %v", err)
	}
	if got.Digest != digest || got.Ref != host+"/shoal/app:v1" {
		t.Fatalf("pulled %s as %q, want %s", got.Digest, got.Ref, digest)
	}
	cfgName, _ := img.ConfigName()
	if got.ID != cfgName.String() {
		t.Errorf("ID %s, want config digest %s", got.ID, cfgName)
	}
	if got.User != "65534" || got.WorkingDir != "/" || got.Entrypoint[0] != "/testapp" || got.Cmd[0] != "serve" || got.Env[0] != imagetest.DefaultPath {
		t.Errorf("config fields: %+v", got)
	}
	if len(got.Layers) != 1 || got.Size == 0 {
		t.Fatalf("layers %v size %d", got.Layers, got.Size)
	}
	bin := imagetest.BuildTestApp(t)
	want, _ := os.ReadFile(bin)
	have, err := os.ReadFile(filepath.Join(got.Layers[0], "testapp"))
	if err != nil || !bytes.Equal(have, want) {
		t.Fatalf("unpacked /testapp differs from the built binary (err %v)", err)
	}
	if fi, err := os.Stat(filepath.Join(got.Layers[0], "tmp")); err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode: %v %v", fi.Mode(), err)
	}
	if got.LowerDir() != got.Layers[0] {
		t.Errorf("LowerDir %q", got.LowerDir())
	}

	byDigest, err := s.Pull(ctx, host+"/shoal/app@"+digest, PullIfNotPresent)
	if err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	if byDigest.Digest != digest || byDigest.Layers[0] != got.Layers[0] {
		t.Fatalf("by digest: %+v", byDigest)
	}
	for _, ref := range []string{host + "/shoal/app:v1", digest, got.ID, strings.TrimPrefix(digest, "sha256:")[:12]} {
		if g, err := s.Get(ctx, ref); err != nil || g.Digest != digest {
			t.Errorf("Get(%q) = %v, %v", ref, g, err)
		}
	}
	if _, err := s.Get(ctx, host+"/shoal/other:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing image: %v, want ErrNotFound", err)
	}
	assertNoPartials(t, s)
}

func TestLayersSharedBetweenImages(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	base := imagetest.Layer(t, imagetest.File{Path: "base.txt", Content: []byte("shared base")})
	a := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File{Path: "a.txt", Content: []byte("a")}))
	b := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.File{Path: "b.txt", Content: []byte("b")}))
	imagetest.Push(t, a, host+"/a:1")
	imagetest.Push(t, b, host+"/b:1")
	s := newTestStore(t, host)
	ia, err := s.Pull(ctx, host+"/a:1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	baseFile := filepath.Join(ia.Layers[0], "base.txt")
	before, err := os.Stat(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := s.Pull(ctx, host+"/b:1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	if ia.Layers[0] != ib.Layers[0] {
		t.Fatalf("base layer not shared: %s vs %s", ia.Layers[0], ib.Layers[0])
	}
	after, err := os.Stat(filepath.Join(ib.Layers[0], "base.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("base layer was unpacked again (different inode)")
	}
	if ia.Layers[1] == ib.Layers[1] {
		t.Fatal("different top layers share a directory")
	}
	// Top first for overlayfs.
	if want := ib.Layers[1] + ":" + ib.Layers[0]; ib.LowerDir() != want {
		t.Errorf("LowerDir %q, want %q", ib.LowerDir(), want)
	}
}

func TestPullPolicies(t *testing.T) {
	ctx := context.Background()
	var log requestLog
	host := imagetest.StartRegistryWith(t, log.wrap)
	ref := host + "/pol:v1"
	img := smallImage(t, "one", "two")
	imagetest.Push(t, img, ref)
	s := newTestStore(t, host)

	_, err := s.Pull(ctx, ref, PullNever)
	if !errors.Is(err, ErrImageNeverPull) {
		t.Fatalf("Never on a missing image: %v, want ErrImageNeverPull", err)
	}
	log.reset()
	if _, err := s.Pull(ctx, ref, PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	if n := len(log.blobGets()); n != 3 { // two layers and the config
		t.Fatalf("first pull fetched %d blobs, want 3: %v", n, log.blobGets())
	}

	tests := []struct {
		name   string
		policy PullPolicy
		// requests is the number of registry requests allowed.
		noRequests bool
	}{
		{"IfNotPresent present", PullIfNotPresent, true},
		{"Never present", PullNever, true},
		{"Always unchanged", PullAlways, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log.reset()
			got, err := s.Pull(ctx, ref, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != digestOf(t, img) {
				t.Fatalf("digest %s", got.Digest)
			}
			if n := len(log.blobGets()); n != 0 {
				t.Fatalf("downloaded blobs again: %v", log.blobGets())
			}
			if tc.noRequests && len(log.reqs) != 0 {
				t.Fatalf("contacted the registry: %v", log.reqs)
			}
		})
	}

	t.Run("Always changed", func(t *testing.T) {
		next := smallImage(t, "one", "three")
		imagetest.Push(t, next, ref)
		log.reset()
		got, err := s.Pull(ctx, ref, PullAlways)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != digestOf(t, next) {
			t.Fatalf("Always did not pick up the new digest")
		}
		// Only the new layer and the new config are downloaded.
		if n := len(log.blobGets()); n != 2 {
			t.Fatalf("fetched %d blobs, want 2: %v", n, log.blobGets())
		}
		// The old image stays, without a name, until GC removes it:
		// containers may still run it.
		old, err := s.Get(ctx, digestOf(t, img))
		if err != nil || len(old.Names) != 0 || old.Ref != "" {
			t.Fatalf("old image: %+v, %v", old, err)
		}
	})
}

func TestConcurrentPullsDownloadOnce(t *testing.T) {
	ctx := context.Background()
	var log requestLog
	host := imagetest.StartRegistryWith(t, log.wrap)
	img := smallImage(t, "a", "b", "c")
	imagetest.Push(t, img, host+"/same:v1")
	other := smallImage(t, "a", "b", "other")
	imagetest.Push(t, other, host+"/other:v1")
	log.reset()
	s := newTestStore(t, host)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		ref := host + "/same:v1"
		if i%2 == 1 {
			ref = host + "/other:v1"
		}
		wg.Go(func() {
			if _, err := s.Pull(ctx, ref, PullAlways); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	gets := log.blobGets()
	for path, n := range gets {
		if n != 1 {
			t.Errorf("%s fetched %d times", path, n)
		}
	}
	// 4 layers (two shared) and 2 configs.
	if len(gets) != 6 {
		t.Errorf("fetched %d distinct blobs, want 6: %v", len(gets), gets)
	}
	assertNoPartials(t, s)
}

func TestMultiArchIndex(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	mine := smallImage(t, "native")
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	foreignCfg, _ := smallImage(t, "foreign").ConfigFile()
	foreignCfg = foreignCfg.DeepCopy()
	foreignCfg.Architecture = otherArch
	foreign, err := mutate.ConfigFile(smallImage(t, "foreign"), foreignCfg)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: foreign, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	imagetest.PushIndex(t, idx, host+"/multi:v1")
	s := newTestStore(t, host)
	got, err := s.Pull(ctx, host+"/multi:v1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digestOf(t, mine) || got.Architecture != runtime.GOARCH {
		t.Fatalf("picked %s (%s), want the %s image", got.Digest, got.Architecture, runtime.GOARCH)
	}
}

func TestPullErrors(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, smallImage(t, "x"), host+"/exists:v1")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		insecure []string
		ref      string
		reasons  []PullReason
		text     string
	}{
		{"unknown repo", []string{host}, host + "/nope:v1", []PullReason{ReasonNotFound}, "not found"},
		{"unknown tag", []string{host}, host + "/exists:v2", []PullReason{ReasonNotFound}, "not found"},
		{"connection refused", []string{closed}, closed + "/x:v1", []PullReason{ReasonConnectionRefused}, "connection refused"},
		{"not insecure: HTTPS only", nil, host + "/exists:v1", []PullReason{ReasonTLS, ReasonInsecureRefused}, "insecure registry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, tc.insecure...)
			_, err := s.Pull(ctx, tc.ref, PullIfNotPresent)
			if !errors.Is(err, ErrPullFailed) {
				t.Fatalf("err = %v, want ErrPullFailed", err)
			}
			var pe *PullError
			if !errors.As(err, &pe) {
				t.Fatalf("err %T is not a *PullError", err)
			}
			ok := false
			for _, r := range tc.reasons {
				ok = ok || pe.Reason == r
			}
			if !ok {
				t.Fatalf("reason %q, want one of %v (err: %v)", pe.Reason, tc.reasons, err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not mention %q", err, tc.text)
			}
			assertNoPartials(t, s)
		})
	}
}

func TestPullWithBasicAuth(t *testing.T) {
	ctx := context.Background()
	const user, pass = "shoal", "s3cret"
	host := imagetest.StartRegistryWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				// Pushes from the test itself carry no credentials.
				if r.Header.Get("X-Shoal-Test-Push") == "" {
					w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
					http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	img := smallImage(t, "private")
	imagetest.Push(t, img, host+"/private:v1", withHeader("X-Shoal-Test-Push", "1"))

	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Run("no credentials", func(t *testing.T) {
		s := newTestStore(t, host)
		_, err := s.Pull(ctx, host+"/private:v1", PullIfNotPresent)
		var pe *PullError
		if !errors.As(err, &pe) || pe.Reason != ReasonUnauthorized {
			t.Fatalf("err = %v, want an unauthorized PullError", err)
		}
	})
	t.Run("docker config.json", func(t *testing.T) {
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
		if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		s := newTestStore(t, host)
		got, err := s.Pull(ctx, host+"/private:v1", PullIfNotPresent)
		if err != nil {
			t.Fatalf("pull with credentials: %v", err)
		}
		if got.Digest != digestOf(t, img) {
			t.Fatalf("digest %s", got.Digest)
		}
	})
}

func TestPullRejectsCorruptBlob(t *testing.T) {
	ctx := context.Background()
	img := smallImage(t, "good content")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	host := imagetest.StartRegistryWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
				rec := &bufferedWriter{header: http.Header{}}
				h.ServeHTTP(rec, r)
				body := rec.body.Bytes()
				if len(body) > 20 {
					body[len(body)-10] ^= 0xff // corrupt the gzip payload tail
				}
				for k, v := range rec.header {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.code)
				w.Write(body)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	imagetest.Push(t, img, host+"/corrupt:v1")
	s := newTestStore(t, host)
	_, err := s.Pull(ctx, host+"/corrupt:v1", PullIfNotPresent)
	if !errors.Is(err, ErrPullFailed) {
		t.Fatalf("pull of a corrupt blob: %v, want ErrPullFailed", err)
	}
	if imgs, err := s.List(ctx); err != nil || len(imgs) != 0 {
		t.Fatalf("after a corrupt pull the store lists %v (%v), want no images", imgs, err)
	}
	s.Close()
	assertNoPartials(t, s)
	if got := listTree(t, filepath.Join(s.root, "layers", "sha256")); len(got) != 0 {
		t.Fatalf("layer dirs left: %v", got)
	}
}

type bufferedWriter struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedWriter) WriteHeader(code int) { b.code = code }

func TestCancelMidPullLeavesNothing(t *testing.T) {
	img := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File{Path: "big", Content: bytes.Repeat([]byte("shoal"), 1<<20)}))
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	started := make(chan struct{}, 1)
	host := imagetest.StartRegistryWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
				rec := &bufferedWriter{header: http.Header{}}
				h.ServeHTTP(rec, r)
				w.WriteHeader(http.StatusOK)
				body := rec.body.Bytes()
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				select {
				case started <- struct{}{}:
				default:
				}
				<-r.Context().Done() // stall until the client gives up
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	imagetest.Push(t, img, host+"/slow:v1")
	s := newTestStore(t, host)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctx, host+"/slow:v1", PullIfNotPresent)
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("download never started")
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Pull did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrPullFailed) {
		t.Fatalf("err = %v, want a cancelled pull", err)
	}
	// Close waits for the abandoned download to wind down.
	s.Close()
	if got := listTree(t, filepath.Join(s.root, "tmp")); len(got) != 0 {
		t.Fatalf("tmp not empty: %v", got)
	}
	if got := listTree(t, filepath.Join(s.root, "layers", "sha256")); len(got) != 0 {
		t.Fatalf("partial layers left: %v", got)
	}
}

func TestProgressOutput(t *testing.T) {
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, smallImage(t, "p"), host+"/progress:v1")
	var out lockedBuffer
	s, err := NewStore(context.Background(), Config{Root: t.TempDir(), InsecureRegistries: []string{host}, Logger: testLogger(), Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Pull(context.Background(), host+"/progress:v1", PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pull "+host+"/progress:v1") || !strings.Contains(out.String(), "(100%)") {
		t.Fatalf("progress output: %q", out.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, smallImage(t, "persist"), host+"/persist:v1")
	root := t.TempDir()
	s := newTestStoreAt(t, root, host)
	pulled, err := s.Pull(ctx, host+"/persist:v1", PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(ctx, Config{Root: root}); !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second store on an open root: %v, want ErrStoreLocked", err)
	}
	before, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := newTestStoreAt(t, root, host)
	after, err := s2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || len(before) != 1 || after[0].Digest != pulled.Digest || after[0].Ref != pulled.Ref || after[0].LowerDir() != pulled.LowerDir() {
		t.Fatalf("after reopen: %+v, before: %+v", after, before)
	}
	got, err := s2.Pull(ctx, host+"/persist:v1", PullNever)
	if err != nil {
		t.Fatalf("Never after reopen: %v", err)
	}
	if got.Digest != pulled.Digest {
		t.Fatal("different image after reopen")
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	host := imagetest.StartRegistry(t)
	img := smallImage(t, "rm")
	imagetest.Push(t, img, host+"/rm:v1")
	imagetest.Push(t, img, host+"/rm:v2")
	s := newTestStore(t, host)
	for _, ref := range []string{host + "/rm:v1", host + "/rm:v2"} {
		if _, err := s.Pull(ctx, ref, PullIfNotPresent); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(ctx, host+"/rm:v1")
	if len(got.Names) != 2 {
		t.Fatalf("names %v", got.Names)
	}
	if err := s.Remove(ctx, host+"/rm:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, host+"/rm:v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed name still resolves: %v", err)
	}
	if _, err := s.Get(ctx, host+"/rm:v2"); err != nil {
		t.Fatalf("other name lost: %v", err)
	}
	if err := s.Remove(ctx, digestOf(t, img)); err != nil {
		t.Fatal(err)
	}
	if imgs, err := s.List(ctx); err != nil || len(imgs) != 0 {
		t.Fatalf("after removing every name the store lists %v (%v), want no images", imgs, err)
	}
	if err := s.Remove(ctx, host+"/rm:v2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of a missing image: %v", err)
	}
}
