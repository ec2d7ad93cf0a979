package gitsync

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// markerFile marks a directory as a Shoal git cache, which Shoal may remove
// and clone again when it is damaged. A directory without it is never
// removed.
const markerFile = "shoal-git-cache"

const markerText = "This bare repository is a cache of the Shoal daemon's desired-state repository.\n" +
	"Shoal removes and re-creates it when it is damaged; do not keep anything else here.\n"

// objectCacheSize bounds the decoded objects go-git keeps in memory per
// storage.
const objectCacheSize = 16 * cache.MiByte

// ErrPackTooLarge is returned by a fetch that would download a pack larger
// than Config.MaxPackSize.
var ErrPackTooLarge = errors.New("pack larger than the configured maximum")

// openStorage opens the cache at dir with the limits of cfg.
func openStorage(dir string, cfg Config) *limitedStorage {
	fs := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(objectCacheSize), filesystem.Options{
		LargeObjectThreshold: cfg.MaxObjectSize,
	})
	return &limitedStorage{Storage: fs, dir: dir, max: cfg.MaxPackSize}
}

// prepareCache opens the bare repository in dir, creating it when dir is
// missing or empty, and removing and re-creating it (with a warning) when it
// is a damaged Shoal cache. It points the "origin" remote at src.
func prepareCache(dir string, cfg Config, src *source) error {
	if dir == "" {
		return errors.New("no cache directory: set the directory that holds the git cache (for example <data>/git)")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return initCache(dir, cfg, src)
	case err != nil:
		return fmt.Errorf("read git cache %s: %w", dir, err)
	case len(entries) == 0:
		return initCache(dir, cfg, src)
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		return fmt.Errorf("git cache %s is not empty and is not a Shoal git cache: choose an empty or new directory", dir)
	}
	if err := checkCache(dir, cfg, src); err != nil {
		cfg.Logger.Warn("git cache is damaged; removing it and cloning again", "dir", dir, "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove damaged git cache %s: %w", dir, err)
		}
		return initCache(dir, cfg, src)
	}
	return nil
}

// initCache creates a bare repository in dir with the origin remote.
func initCache(dir string, cfg Config, src *source) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create git cache: %w", err)
	}
	st := openStorage(dir, cfg)
	if _, err := git.InitWithOptions(st, nil, git.InitOptions{DefaultBranch: plumbing.Main}); err != nil {
		return fmt.Errorf("create git cache in %s: %w", dir, err)
	}
	if err := setRemote(st, src); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, markerFile), []byte(markerText), 0o600); err != nil {
		return fmt.Errorf("create git cache: %w", err)
	}
	return nil
}

// checkCache opens the repository in dir and reads the commit and root tree
// of the fetched ref, if there is one. It also updates the remote to src.
func checkCache(dir string, cfg Config, src *source) error {
	st := openStorage(dir, cfg)
	repo, err := git.Open(st, nil)
	if err != nil {
		return err
	}
	if err := setRemote(st, src); err != nil {
		return err
	}
	ref, err := repo.Reference(src.localRef, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", src.localRef, err)
	}
	c, err := peelCommit(repo, ref.Hash())
	if err != nil {
		return err
	}
	if _, err := c.Tree(); err != nil {
		return fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	return nil
}

// setRemote makes "origin" fetch exactly src's ref from src's URL.
func setRemote(st *limitedStorage, src *source) error {
	c, err := st.Config()
	if err != nil {
		return fmt.Errorf("read git cache config: %w", err)
	}
	want := &config.RemoteConfig{
		Name:  "origin",
		URLs:  []string{src.url},
		Fetch: []config.RefSpec{config.RefSpec(src.refSpec)},
	}
	if cur, ok := c.Remotes["origin"]; ok && len(cur.URLs) == 1 && cur.URLs[0] == src.url &&
		len(cur.Fetch) == 1 && cur.Fetch[0] == want.Fetch[0] {
		return nil
	}
	c.Remotes["origin"] = want
	if err := st.SetConfig(c); err != nil {
		return fmt.Errorf("write git cache config: %w", err)
	}
	return nil
}

// limitedStorage is the cache's storage with a bound on the size of fetched
// packs: a fetch spools the pack to a temporary file, counting its bytes,
// and hands it to go-git's indexing pack writer only when it is complete
// and within the limit. A refused pack leaves nothing behind.
type limitedStorage struct {
	*filesystem.Storage
	dir string
	max int64
}

var _ storer.PackfileWriter = (*limitedStorage)(nil)

// PackfileWriter implements storer.PackfileWriter.
func (s *limitedStorage) PackfileWriter() (io.WriteCloser, error) {
	f, err := os.CreateTemp(s.dir, "shoal-incoming-*.pack")
	if err != nil {
		return nil, err
	}
	return &spoolWriter{s: s, f: f}, nil
}

type spoolWriter struct {
	s   *limitedStorage
	f   *os.File
	n   int64
	err error
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.n+int64(len(p)) > w.s.max {
		w.err = fmt.Errorf("%w: more than %d bytes; raise the maximum pack size or make the repository smaller", ErrPackTooLarge, w.s.max)
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

func (w *spoolWriter) Close() (err error) {
	defer func() {
		w.f.Close()
		if rmErr := os.Remove(w.f.Name()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	if w.err != nil || w.n == 0 {
		return w.err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	pw, err := w.s.Storage.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := io.Copy(pw, w.f); err != nil {
		pw.Close()
		return err
	}
	return pw.Close()
}
