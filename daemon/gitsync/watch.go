package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-git/go-git/v5/plumbing"
)

// watcher reports changes of a local repository's refs. Git replaces ref
// files by renaming a lock file over them, so directories are watched, not
// files.
type watcher struct {
	w     *fsnotify.Watcher
	roots map[string]bool // git dirs: only HEAD and packed-refs matter there
	log   *slog.Logger
}

// gitDirs returns the git directory of the repository at repo (a worktree
// or a bare repository) and its common directory (where refs live; the
// same except for linked worktrees).
func gitDirs(repo string) (gitDir, commonDir string, err error) {
	dotGit := filepath.Join(repo, ".git")
	fi, err := os.Stat(dotGit)
	switch {
	case err == nil && fi.IsDir():
		gitDir = dotGit
	case err == nil:
		// A .git file: "gitdir: <path>" (linked worktrees, submodules).
		data, err := os.ReadFile(dotGit)
		if err != nil {
			return "", "", err
		}
		line, _, _ := strings.Cut(string(data), "\n")
		p, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
		if !ok {
			return "", "", fmt.Errorf("%s: not a gitdir file", dotGit)
		}
		gitDir = strings.TrimSpace(p)
		if !filepath.IsAbs(gitDir) {
			gitDir = filepath.Join(repo, gitDir)
		}
	case errors.Is(err, fs.ErrNotExist):
		gitDir = repo
	default:
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err != nil {
		return "", "", fmt.Errorf("%s is not a git repository: %w", repo, err)
	}
	commonDir = gitDir
	if data, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		commonDir = strings.TrimSpace(string(data))
		if !filepath.IsAbs(commonDir) {
			commonDir = filepath.Join(gitDir, commonDir)
		}
	}
	return filepath.Clean(gitDir), filepath.Clean(commonDir), nil
}

// newWatcher watches the git directories of repo and the ref directory of
// ref (refs/heads or refs/tags) with all its subdirectories. It never
// changes the repository.
func newWatcher(repo string, ref plumbing.ReferenceName, log *slog.Logger) (*watcher, error) {
	gitDir, commonDir, err := gitDirs(repo)
	if err != nil {
		return nil, err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{w: fw, roots: map[string]bool{gitDir: true, commonDir: true}, log: log}
	for root := range w.roots {
		if err := fw.Add(root); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watch %s: %w", root, err)
		}
	}
	ns := "refs/heads"
	if ref.IsTag() {
		ns = "refs/tags"
	}
	refDir := filepath.Join(commonDir, filepath.FromSlash(ns))
	if _, err := os.Stat(refDir); err != nil {
		// Not created yet: watch refs/, which adds it when it appears.
		refDir = filepath.Dir(refDir)
	}
	if err := w.addTree(refDir); err != nil {
		fw.Close()
		return nil, err
	}
	return w, nil
}

// addTree watches dir and its subdirectories.
func (w *watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.w.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// relevant reports whether an event may mean the ref changed.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	if strings.HasSuffix(name, ".lock") {
		return false
	}
	if w.roots[filepath.Dir(ev.Name)] {
		return name == "HEAD" || name == "packed-refs"
	}
	return true
}

// run calls trigger after each burst of relevant events (no event for
// debounce) until ctx ends, then closes the watcher.
func (w *watcher) run(ctx context.Context, debounce time.Duration, trigger func()) {
	defer w.w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) && !w.roots[filepath.Dir(ev.Name)] {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					if err := w.addTree(ev.Name); err != nil {
						w.log.Warn("cannot watch new ref directory", "dir", ev.Name, "err", err)
					}
				}
			}
			if w.relevant(ev) {
				timer.Reset(debounce)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: fetch to be safe.
			w.log.Warn("watching the local repository", "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			trigger()
		}
	}
}
