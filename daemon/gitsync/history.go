package gitsync

import (
	"container/heap"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// ErrNotFound is returned for a commit that is not in the git cache.
var ErrNotFound = errors.New("not in the git cache")

// parseSHA accepts a full hex commit name.
func parseSHA(sha string) (plumbing.Hash, error) {
	if len(sha) != 40 {
		return plumbing.ZeroHash, fmt.Errorf("commit name %q: give the full 40-character hex SHA", sha)
	}
	if _, err := hex.DecodeString(sha); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit name %q: not hexadecimal", sha)
	}
	return plumbing.NewHash(strings.ToLower(sha)), nil
}

// peelCommit returns the commit hash names, following annotated tags.
func peelCommit(repo *git.Repository, hash plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := repo.Object(plumbing.AnyObject, hash)
		if err != nil {
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return nil, fmt.Errorf("object %s: %w", hash, ErrNotFound)
			}
			return nil, fmt.Errorf("read object %s: %w", hash, err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			hash = o.Target
		default:
			return nil, fmt.Errorf("object %s is a %s, not a commit", hash, obj.Type())
		}
	}
	return nil, fmt.Errorf("object %s: too many nested tags", hash)
}

// commit reads a commit; readMu must be held.
func (s *Syncer) commit(hash plumbing.Hash) (*object.Commit, error) {
	c, err := s.readRepo.CommitObject(hash)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("commit %s: %w", hash, ErrNotFound)
		}
		return nil, fmt.Errorf("read commit %s: %w", hash, err)
	}
	return c, nil
}

func info(c *object.Commit) revision.Commit {
	msg, _, _ := strings.Cut(strings.TrimLeft(c.Message, "\n"), "\n")
	parents := make([]string, len(c.ParentHashes))
	for i, p := range c.ParentHashes {
		parents[i] = p.String()
	}
	return revision.Commit{
		SHA:     c.Hash.String(),
		Author:  c.Author.Name,
		Email:   c.Author.Email,
		Message: strings.TrimSpace(msg),
		Time:    c.Author.When,
		Parents: parents,
	}
}

// Commit describes the commit sha.
func (s *Syncer) Commit(ctx context.Context, sha string) (revision.Commit, error) {
	hash, err := parseSHA(sha)
	if err != nil {
		return revision.Commit{}, err
	}
	if err := ctx.Err(); err != nil {
		return revision.Commit{}, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	c, err := s.commit(hash)
	if err != nil {
		return revision.Commit{}, err
	}
	return info(c), nil
}

// IsAncestor reports whether ancestor is descendant or one of its
// ancestors: whether moving from ancestor to descendant moves forward.
func (s *Syncer) IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error) {
	a, err := parseSHA(ancestor)
	if err != nil {
		return false, err
	}
	d, err := parseSHA(descendant)
	if err != nil {
		return false, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if _, err := s.commit(a); err != nil {
		return false, err
	}
	found := false
	err = s.walk(ctx, []plumbing.Hash{d}, nil, func(c *object.Commit) bool {
		if c.Hash == a {
			found = true
			return false
		}
		return true
	})
	if err != nil {
		return false, fmt.Errorf("is %s an ancestor of %s: %w", a, d, err)
	}
	return found, nil
}

// walk visits every commit reachable from starts once, skipping those in
// skip, until visit returns false. readMu must be held.
func (s *Syncer) walk(ctx context.Context, starts []plumbing.Hash, skip map[plumbing.Hash]bool, visit func(*object.Commit) bool) error {
	seen := make(map[plumbing.Hash]bool)
	queue := append([]plumbing.Hash(nil), starts...)
	for n := 0; len(queue) > 0; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[h] || skip[h] {
			continue
		}
		seen[h] = true
		c, err := s.commit(h)
		if err != nil {
			return err
		}
		if !visit(c) {
			return nil
		}
		queue = append(queue, c.ParentHashes...)
	}
	return nil
}

// Between returns the commits reachable from to and not from from, oldest
// first (parents before children, then by commit time): every commit that
// applying to after from brings in, including all parents of merges. An
// empty from means all of to's history. It is empty when to is from or one
// of its ancestors.
func (s *Syncer) Between(ctx context.Context, from, to string) ([]revision.Commit, error) {
	t, err := parseSHA(to)
	if err != nil {
		return nil, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	commits, err := s.between(ctx, from, t)
	if err != nil {
		return nil, fmt.Errorf("commits between %.12s and %.12s: %w", from, to, err)
	}
	out := make([]revision.Commit, len(commits))
	for i, c := range commits {
		out[i] = info(c)
	}
	return out, nil
}

// between is Between without the lock and conversion.
func (s *Syncer) between(ctx context.Context, from string, to plumbing.Hash) ([]*object.Commit, error) {
	skip := map[plumbing.Hash]bool{}
	if from != "" {
		f, err := parseSHA(from)
		if err != nil {
			return nil, err
		}
		err = s.walk(ctx, []plumbing.Hash{f}, nil, func(c *object.Commit) bool {
			skip[c.Hash] = true
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	byHash := map[plumbing.Hash]*object.Commit{}
	err := s.walk(ctx, []plumbing.Hash{to}, skip, func(c *object.Commit) bool {
		byHash[c.Hash] = c
		return true
	})
	if err != nil {
		return nil, err
	}
	// Kahn's algorithm: a commit is ready when all its parents inside the
	// set are out; among ready commits the oldest goes first.
	pending := map[plumbing.Hash]int{}
	children := map[plumbing.Hash][]plumbing.Hash{}
	ready := &commitHeap{}
	for h, c := range byHash {
		for _, p := range c.ParentHashes {
			if _, in := byHash[p]; in {
				pending[h]++
				children[p] = append(children[p], h)
			}
		}
		if pending[h] == 0 {
			heap.Push(ready, c)
		}
	}
	out := make([]*object.Commit, 0, len(byHash))
	for ready.Len() > 0 {
		c := heap.Pop(ready).(*object.Commit)
		out = append(out, c)
		for _, ch := range children[c.Hash] {
			pending[ch]--
			if pending[ch] == 0 {
				heap.Push(ready, byHash[ch])
			}
		}
	}
	return out, nil
}

// commitHeap orders commits by committer time, then author time, then
// hash.
type commitHeap []*object.Commit

func (h commitHeap) Len() int           { return len(h) }
func (h commitHeap) Less(i, j int) bool { return h[i].Less(h[j]) }
func (h commitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *commitHeap) Push(x any)        { *h = append(*h, x.(*object.Commit)) }
func (h *commitHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
