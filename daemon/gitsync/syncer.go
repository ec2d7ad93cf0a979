package gitsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// ErrNoHead is returned by Last before the first successful fetch.
var ErrNoHead = errors.New("no commit fetched yet")

// Retry timing of failed fetches.
const (
	backoffMin = time.Second
	backoffMax = 5 * time.Minute
	// debounce is how long the local watcher waits for a burst of ref
	// changes to end before fetching.
	debounce = 20 * time.Millisecond
)

// Syncer follows one ref of one repository. Create it with New and run it
// with Run; its reading methods (Tree, Commit, IsAncestor, Between, Verify)
// may be called at any time from any goroutine, also before or without Run,
// on commits already in the cache.
type Syncer struct {
	cfg Config
	src *source

	// fetchMu serialises fetches and guards fetchRepo.
	fetchMu   sync.Mutex
	fetchRepo *git.Repository

	// readMu serialises reading git objects (go-git storage is not safe
	// for concurrent use) and guards readRepo. readRepo is a separate
	// storage over the same directory, replaced after a fetch brings a
	// new head, so that reading never waits for the network.
	readMu   sync.Mutex
	readRepo *git.Repository

	mu      sync.Mutex // guards last
	last    revision.Head
	hasLast bool

	heads   chan revision.Head
	trigger chan struct{}
	running atomic.Bool

	// Timing, changed by tests.
	backoffMin, backoffMax, debounce time.Duration
}

// New validates cfg and opens (or creates) the git cache. It does no
// network I/O: the first fetch happens in Run.
func New(cfg Config) (*Syncer, error) {
	cfg = cfg.withDefaults()
	src, err := parseSource(cfg)
	if err != nil {
		return nil, fmt.Errorf("git sync: %w", err)
	}
	if err := prepareCache(cfg.CacheDir, cfg, src); err != nil {
		return nil, fmt.Errorf("git sync: %w", err)
	}
	s := &Syncer{
		cfg:        cfg,
		src:        src,
		heads:      make(chan revision.Head, 1),
		trigger:    make(chan struct{}, 1),
		backoffMin: backoffMin,
		backoffMax: backoffMax,
		debounce:   debounce,
	}
	if err := s.openRepos(); err != nil {
		return nil, fmt.Errorf("git sync: %w", err)
	}
	return s, nil
}

// openRepos opens the fetch and read repositories over the cache.
func (s *Syncer) openRepos() error {
	fr, err := git.Open(openStorage(s.cfg.CacheDir, s.cfg), nil)
	if err != nil {
		return fmt.Errorf("open git cache %s: %w", s.cfg.CacheDir, err)
	}
	rr, err := git.Open(openStorage(s.cfg.CacheDir, s.cfg), nil)
	if err != nil {
		return fmt.Errorf("open git cache %s: %w", s.cfg.CacheDir, err)
	}
	s.fetchRepo = fr
	s.readMu.Lock()
	s.readRepo = rr
	s.readMu.Unlock()
	return nil
}

// Heads delivers the ref's commit each time it changes, starting with the
// first one seen after Run starts. The channel holds one head: a head the
// receiver has not taken yet is replaced by a newer one (use Between to see
// every commit in between). It is closed when Run returns.
func (s *Syncer) Heads() <-chan revision.Head { return s.heads }

// Last returns the newest head, or ErrNoHead before the first successful
// fetch. A failed fetch never changes it.
func (s *Syncer) Last() (revision.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasLast {
		return revision.Head{}, ErrNoHead
	}
	return s.last, nil
}

// Trigger asks Run to fetch now. It never blocks; triggers that arrive
// while a fetch is pending are merged into it.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// RefName returns the full name of the followed ref, such as
// refs/heads/main.
func (s *Syncer) RefName() string { return string(s.src.refName) }

// Run fetches until ctx ends: at once, then every Config.Poll, on Trigger,
// and on changes of a local repository's refs; failed fetches are retried
// with exponential backoff. It returns nil when ctx ends, and an error only
// if it is called twice.
func (s *Syncer) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("git sync: Run called twice")
	}
	defer close(s.heads)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	if s.src.local != "" {
		w, err := newWatcher(s.src.local, s.src.refName, s.cfg.Logger)
		if err != nil {
			s.cfg.Logger.Warn("cannot watch the local repository; changes are seen by polling only",
				"repo", s.src.local, "err", err)
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(ctx, s.debounce, s.Trigger)
			}()
		}
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.trigger:
		}
		err := s.fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var next time.Duration
		if err != nil {
			failures++
			next = s.backoff(failures)
			s.cfg.Logger.Warn("git fetch failed; keeping the last fetched commit",
				"repo", s.src.redactURL, "ref", s.src.refName, "failures", failures, "retry_in", next.Round(time.Millisecond), "err", err)
			if first {
				s.useCachedHead()
			}
		} else {
			failures = 0
			next = jitter(s.cfg.Poll)
		}
		first = false
		timer.Reset(next)
	}
}

// backoff returns the wait after n consecutive failures.
func (s *Syncer) backoff(n int) time.Duration {
	d := s.backoffMin
	for i := 1; i < n && d < s.backoffMax; i++ {
		d *= 2
	}
	return jitter(min(d, s.backoffMax))
}

// jitter varies d by ±10 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// fetch fetches the ref once and publishes a changed head.
func (s *Syncer) fetch(ctx context.Context) error {
	start := time.Now()
	err := s.fetchLocked(ctx)
	if s.cfg.OnFetch != nil && ctx.Err() == nil {
		s.cfg.OnFetch(err, time.Since(start))
	}
	return err
}

func (s *Syncer) fetchLocked(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	err := s.fetchRepo.FetchContext(fctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(s.src.refSpec)},
		Tags:       git.NoTags,
		Auth:       s.src.auth,
		Force:      true,
	})
	upToDate := errors.Is(err, git.NoErrAlreadyUpToDate)
	if upToDate {
		err = nil
	}
	if err != nil {
		if errors.Is(err, git.NoMatchingRefSpecError{}) {
			return fmt.Errorf("fetch %s: %s not found in %s; check the configured branch or tag", s.src.refName, s.src.refName, s.src.redactURL)
		}
		if ctx.Err() == nil && !errors.Is(err, ErrPackTooLarge) {
			s.repairCache()
		}
		return fmt.Errorf("fetch %s from %s: %w", s.src.refName, s.src.redactURL, err)
	}
	hash, err := s.resolveFetched()
	if err != nil {
		s.repairCache()
		return fmt.Errorf("fetch %s from %s: read fetched commit: %w", s.src.refName, s.src.redactURL, err)
	}
	if !upToDate {
		// New objects: a fresh read storage sees the new pack.
		if err := s.reopenReadRepo(); err != nil {
			return fmt.Errorf("fetch %s from %s: %w", s.src.refName, s.src.redactURL, err)
		}
	}
	s.publish(hash)
	return nil
}

// reopenReadRepo replaces the read repository with a fresh storage over the
// cache.
func (s *Syncer) reopenReadRepo() error {
	rr, err := git.Open(openStorage(s.cfg.CacheDir, s.cfg), nil)
	if err != nil {
		return fmt.Errorf("open git cache %s: %w", s.cfg.CacheDir, err)
	}
	s.readMu.Lock()
	s.readRepo = rr
	s.readMu.Unlock()
	return nil
}

// resolveFetched returns the commit the fetched ref points to.
func (s *Syncer) resolveFetched() (plumbing.Hash, error) {
	ref, err := s.fetchRepo.Reference(s.src.localRef, true)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c, err := peelCommit(s.fetchRepo, ref.Hash())
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return c.Hash, nil
}

// publish records hash as the head if it changed.
func (s *Syncer) publish(hash plumbing.Hash) {
	s.mu.Lock()
	same := s.hasLast && s.last.SHA == hash.String()
	s.mu.Unlock()
	if same {
		return
	}
	h := revision.Head{SHA: hash.String(), SeenAt: time.Now()}
	s.mu.Lock()
	s.last, s.hasLast = h, true
	s.mu.Unlock()
	s.cfg.Logger.Info("new commit", "repo", s.src.redactURL, "ref", s.src.refName, "sha", h.SHA)
	// Only Run sends, so after draining a stale head the send succeeds.
	select {
	case s.heads <- h:
	default:
		select {
		case <-s.heads:
		default:
		}
		s.heads <- h
	}
}

// useCachedHead publishes the commit already in the cache when the first
// fetch fails, so that a node can start while the repository is
// unreachable.
func (s *Syncer) useCachedHead() {
	s.fetchMu.Lock()
	hash, err := s.resolveFetched()
	s.fetchMu.Unlock()
	if err != nil {
		return
	}
	s.cfg.Logger.Warn("using the commit in the git cache until the repository can be fetched",
		"repo", s.src.redactURL, "sha", hash.String())
	s.publish(hash)
}

// repairCache checks the cache after a failed fetch and, when it is
// damaged, removes it and creates it again, so that the next fetch clones
// afresh. Called with fetchMu held.
func (s *Syncer) repairCache() {
	err := checkCache(s.cfg.CacheDir, s.cfg, s.src)
	if err == nil {
		return
	}
	s.cfg.Logger.Warn("git cache is damaged; removing it and cloning again", "dir", s.cfg.CacheDir, "err", err)
	if err := os.RemoveAll(s.cfg.CacheDir); err != nil {
		s.cfg.Logger.Error("cannot remove damaged git cache", "dir", s.cfg.CacheDir, "err", err)
		return
	}
	if err := initCache(s.cfg.CacheDir, s.cfg, s.src); err != nil {
		s.cfg.Logger.Error("cannot create git cache", "dir", s.cfg.CacheDir, "err", err)
		return
	}
	fr, err := git.Open(openStorage(s.cfg.CacheDir, s.cfg), nil)
	if err != nil {
		s.cfg.Logger.Error("cannot open git cache", "dir", s.cfg.CacheDir, "err", err)
		return
	}
	s.fetchRepo = fr
	if err := s.reopenReadRepo(); err != nil {
		s.cfg.Logger.Error("cannot open git cache", "dir", s.cfg.CacheDir, "err", err)
	}
}
