package image

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/shoal-dev/shoal/runtime/imagetest"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var fastBackoff = remote.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 2}

// newTestStore opens a store in a temp dir that trusts the given hosts
// over plain HTTP.
func newTestStore(t testing.TB, insecure ...string) *Store {
	t.Helper()
	return newTestStoreAt(t, t.TempDir(), insecure...)
}

func newTestStoreAt(t testing.TB, root string, insecure ...string) *Store {
	t.Helper()
	s, err := NewStore(context.Background(), Config{
		Root:               root,
		InsecureRegistries: insecure,
		Logger:             testLogger(),
		RetryBackoff:       fastBackoff,
	})
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// requestLog counts registry requests by method and path.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// blobGets returns how many times each blob was fetched with GET.
func (l *requestLog) blobGets() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range l.reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			out[r]++
		}
	}
	return out
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

// smallImage returns an image with one layer per content string; each
// layer holds one file named after its index.
func smallImage(t testing.TB, contents ...string) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for i, c := range contents {
		layers = append(layers, imagetest.Layer(t,
			imagetest.File{Path: "d", Mode: fs.ModeDir | 0o755},
			imagetest.File{Path: "d/f" + string(rune('0'+i)), Content: []byte(c)},
		))
	}
	return imagetest.Image(t, v1.Config{Cmd: []string{"/bin/true"}, Env: []string{"A=1"}}, layers...)
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// listTree returns every path below dir, relative to it.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// assertNoPartials checks that tmp/ is empty and every layer dir belongs
// to a stored image.
func assertNoPartials(t testing.TB, s *Store) {
	t.Helper()
	if got := listTree(t, filepath.Join(s.root, "tmp")); len(got) != 0 {
		t.Errorf("tmp not empty: %v", got)
	}
	imgs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, img := range imgs {
		for _, l := range img.Layers {
			want[filepath.Base(l)] = true
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "layers", "sha256"))
	for _, e := range ents {
		if !want[e.Name()] {
			t.Errorf("layer dir %s belongs to no image", e.Name())
		}
	}
}

// withHeader adds a header to every request of a push.
func withHeader(k, v string) remote.Option {
	return remote.WithTransport(headerTransport{k: k, v: v, base: http.DefaultTransport})
}

type headerTransport struct {
	k, v string
	base http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.k, h.v)
	return h.base.RoundTrip(r)
}
