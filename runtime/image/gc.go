package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GCResult reports what GC removed.
type GCResult struct {
	// ImagesRemoved lists the manifest digests of removed images.
	ImagesRemoved []string
	// LayersRemoved counts removed unpacked layer directories.
	LayersRemoved int
	// BlobsRemoved counts removed manifest and config blobs.
	BlobsRemoved int
	// BytesFreed is the regular file content removed.
	BytesFreed int64
}

// GC removes images and the content only they use.
//
// Policy: every image is removed unless inUse(image ID) reports it in use
// or it is pinned (imported from an archive; see Import). Then every
// unpacked layer and stored blob that no remaining image references is
// deleted. A layer a kept image needs is never removed. GC waits for
// pulls and imports in progress and blocks new ones while it runs, so it
// never sees a half-stored image.
//
// Unlike the kubelet, which collects images when disk usage crosses
// thresholds, Shoal collects on an explicit call; the node agent calls GC
// periodically with the images of its containers (including containers
// it is about to create) as in use. inUse must not call the Store; a nil
// inUse means no image is in use.
func (s *Store) GC(ctx context.Context, inUse func(imageID string) bool) (GCResult, error) {
	var res GCResult
	if s.ctx.Err() != nil {
		return res, ErrStoreClosed
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	s.mu.Lock()
	var candidates []*imageRecord
	for _, rec := range s.st.Images {
		if !rec.Pinned {
			candidates = append(candidates, rec)
		}
	}
	s.mu.Unlock()

	remove := map[string]bool{}
	for _, rec := range candidates {
		if inUse == nil || !inUse(rec.ID) {
			remove[rec.Digest] = true
		}
	}

	s.mu.Lock()
	for d := range remove {
		delete(s.st.Images, d)
		res.ImagesRemoved = append(res.ImagesRemoved, d)
	}
	for n, d := range s.st.Refs {
		if remove[d] {
			delete(s.st.Refs, n)
		}
	}
	keepLayers := map[string]bool{}
	keepBlobs := map[string]bool{}
	for _, rec := range s.st.Images {
		keepBlobs[rec.Digest] = true
		keepBlobs[rec.ID] = true
		for _, d := range rec.DiffIDs {
			keepLayers[d] = true
		}
	}
	for d := range s.st.Layers {
		if !keepLayers[d] {
			delete(s.st.Layers, d)
		}
	}
	for id := range s.configs {
		if !keepBlobs[id] {
			delete(s.configs, id)
		}
	}
	for fileDigest, ds := range s.st.Imports {
		gone := true
		for _, d := range ds {
			if s.st.Images[d] != nil {
				gone = false
			}
		}
		if gone {
			delete(s.st.Imports, fileDigest)
			for st, fd := range s.st.Stamps {
				if fd == fileDigest {
					delete(s.st.Stamps, st)
				}
			}
		}
	}
	err := s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		return res, err
	}
	sort.Strings(res.ImagesRemoved)

	// Delete unreferenced content. The state is saved first, so a crash
	// here leaves only unreferenced files, removed by the next GC.
	layers, err := s.sweep(filepath.Join(s.root, "layers"), keepLayers)
	if err != nil {
		return res, err
	}
	blobs, err := s.sweep(filepath.Join(s.root, "blobs"), keepBlobs)
	if err != nil {
		return res, err
	}
	for _, d := range layers {
		res.BytesFreed += d
	}
	for _, d := range blobs {
		res.BytesFreed += d
	}
	res.LayersRemoved, res.BlobsRemoved = len(layers), len(blobs)
	if len(res.ImagesRemoved) > 0 || res.LayersRemoved > 0 {
		s.log.Info("image garbage collection", "images", len(res.ImagesRemoved), "layers", res.LayersRemoved, "blobs", res.BlobsRemoved, "bytes", res.BytesFreed)
	}
	return res, nil
}

// sweep removes every <dir>/<algorithm>/<hex> whose digest is not in keep
// and returns the sizes of what it removed. A layer is first renamed into
// the temp dir, so a half-removed layer is never visible under layers/.
func (s *Store) sweep(dir string, keep map[string]bool) ([]int64, error) {
	algs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var freed []int64
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, alg.Name()))
		if err != nil {
			return freed, fmt.Errorf("gc: %w", err)
		}
		for _, e := range ents {
			h := v1.Hash{Algorithm: alg.Name(), Hex: e.Name()}
			if keep[h.String()] {
				continue
			}
			p := filepath.Join(dir, alg.Name(), e.Name())
			var size int64
			if e.IsDir() {
				size = dirSize(p)
				trash := filepath.Join(s.root, "tmp", "gc-"+randomSuffix())
				if err := os.Rename(p, trash); err != nil {
					return freed, fmt.Errorf("gc: %w", err)
				}
				p = trash
			} else if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			if err := removeAll(p); err != nil {
				return freed, fmt.Errorf("gc: remove %s: %w", p, err)
			}
			freed = append(freed, size)
		}
	}
	return freed, nil
}
