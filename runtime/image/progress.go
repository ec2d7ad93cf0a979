package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// progressInterval is how often pull progress is logged and drawn.
const progressInterval = time.Second

// progress tracks the bytes of one pull. Layers already on disk count as
// done without being downloaded.
type progress struct {
	ref   string
	log   *slog.Logger
	out   io.Writer
	tty   bool
	width int
	total atomic.Int64
	done  atomic.Int64
}

func newProgress(ref string, log *slog.Logger, out io.Writer) *progress {
	p := &progress{ref: ref, log: log, out: out}
	if f, ok := out.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			p.tty = true
			p.width = int(ws.Col)
		}
	}
	return p
}

func (p *progress) setTotal(n int64) { p.total.Store(n) }
func (p *progress) add(n int64)      { p.done.Add(n) }
func (p *progress) skip(n int64)     { p.done.Add(n) }

// start reports progress every progressInterval and at every quarter of
// the total until the returned stop function is called with the result.
func (p *progress) start(ctx context.Context, wg *sync.WaitGroup) (stop func(error)) {
	quit := make(chan struct{})
	var once sync.Once
	finished := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(finished)
		t := time.NewTicker(progressInterval / 4)
		defer t.Stop()
		lastLog := time.Now()
		lastQuarter := int64(0)
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			done, total := p.done.Load(), p.total.Load()
			quarter := int64(0)
			if total > 0 {
				quarter = min(done*4/total, 4)
			}
			if time.Since(lastLog) >= progressInterval || quarter > lastQuarter {
				lastLog, lastQuarter = time.Now(), quarter
				p.log.Info("pulling image", "ref", p.ref, "bytes", done, "total", total)
				p.draw(done, total, false)
			}
		}
	}()
	return func(err error) {
		once.Do(func() {
			close(quit)
			<-finished
			if err == nil {
				p.draw(p.total.Load(), p.total.Load(), true)
			} else if p.out != nil && p.tty {
				fmt.Fprintln(p.out)
			}
		})
	}
}

// draw writes one progress line: redrawn in place on a terminal, a plain
// line otherwise.
func (p *progress) draw(done, total int64, final bool) {
	if p.out == nil {
		return
	}
	pct := 100.0
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
		pct = min(pct, 100)
	}
	status := fmt.Sprintf("%s/%s", humanBytes(done), humanBytes(total))
	if !p.tty {
		fmt.Fprintf(p.out, "pull %s: %s (%.0f%%)\n", p.ref, status, pct)
		return
	}
	label := p.ref
	barWidth := p.width - len(label) - len(status) - 12
	if barWidth > 40 {
		barWidth = 40
	}
	if barWidth < 10 {
		// Narrow terminal: drop the name.
		label = ""
		barWidth = max(p.width-len(status)-10, 0)
	}
	filled := int(pct / 100 * float64(barWidth))
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	line := fmt.Sprintf("\r%s [%s] %3.0f%% %s", label, bar, pct, status)
	if final {
		line += "\n"
	}
	fmt.Fprint(p.out, line)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
