package image

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/shoal-dev/shoal/runtime/imagetest"
)

// benchImage returns an image of about 10 MiB: four layers, each with one
// 2 MiB incompressible file and 100 files of 5 KiB.
func benchImage(b *testing.B) (v1.Image, int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	var layers []v1.Layer
	var total int64
	for l := range 4 {
		files := []imagetest.File{{Path: fmt.Sprintf("l%d", l), Mode: fs.ModeDir | 0o755}}
		big := make([]byte, 2<<20)
		for i := range big {
			big[i] = byte(rng.Uint32())
		}
		files = append(files, imagetest.File{Path: fmt.Sprintf("l%d/big", l), Content: big})
		total += int64(len(big))
		for i := range 100 {
			small := make([]byte, 5<<10)
			for j := range small {
				small[j] = byte(rng.Uint32() % 16)
			}
			files = append(files, imagetest.File{Path: fmt.Sprintf("l%d/f%03d", l, i), Content: small})
			total += int64(len(small))
		}
		layers = append(layers, imagetest.Layer(b, files...))
	}
	return imagetest.Image(b, v1.Config{Cmd: []string{"/l0/big"}}, layers...), total
}

// BenchmarkPullUnpack pulls a ~10 MiB, four-layer image from a registry on
// 127.0.0.1 into a fresh store: download, decompression, digest checks,
// unpack and sync.
func BenchmarkPullUnpack(b *testing.B) {
	ctx := context.Background()
	img, total := benchImage(b)
	host := imagetest.StartRegistry(b)
	ref := host + "/bench:v1"
	imagetest.Push(b, img, ref)
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		root, err := os.MkdirTemp("", "shoal-bench-")
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewStore(ctx, Config{Root: root, InsecureRegistries: []string{host}, Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Pull(ctx, ref, PullAlways); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		if err := removeAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkPullUpToDate measures PullAlways of an image already in the
// store: one manifest request, no blob download.
func BenchmarkPullUpToDate(b *testing.B) {
	ctx := context.Background()
	img, _ := benchImage(b)
	host := imagetest.StartRegistry(b)
	ref := host + "/bench:v1"
	imagetest.Push(b, img, ref)
	s := newTestStore(b, host)
	if _, err := s.Pull(ctx, ref, PullAlways); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Pull(ctx, ref, PullAlways); err != nil {
			b.Fatal(err)
		}
	}
}
