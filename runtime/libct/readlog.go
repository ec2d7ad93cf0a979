package libct

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LogOptions select what ReadLog prints.
type LogOptions struct {
	// Follow keeps reading as the container writes, across rotations, until ctx ends or
	// Done is closed.
	Follow bool
	// Done, with Follow, tells ReadLog that the container exited: it prints what is left
	// and returns. A nil Done follows until ctx ends.
	Done <-chan struct{}
	// Tail > 0 prints only the last Tail lines present when ReadLog starts; 0 prints all.
	Tail int
	// Since skips lines logged before it.
	Since time.Time
	// Timestamps prefixes each line with its RFC 3339 timestamp.
	Timestamps bool
}

// followInterval is how often a followed log is checked for new data and rotation.
const followInterval = 100 * time.Millisecond

// logRecord is one parsed line of a CRI log.
type logRecord struct {
	Time    time.Time
	Stream  string
	Partial bool
	Text    []byte
}

// parseCRILine parses "<RFC3339Nano time> <stdout|stderr> <P|F> <text>" (without the final
// newline). The text may be empty.
func parseCRILine(line []byte) (logRecord, error) {
	var rec logRecord
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return rec, errors.New("cri log line: no stream field")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return rec, fmt.Errorf("cri log line: timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return rec, errors.New("cri log line: no tag field")
	}
	if s := string(stream); s != "stdout" && s != "stderr" {
		return rec, fmt.Errorf("cri log line: unknown stream %q", s)
	}
	tag, text, _ := bytes.Cut(rest, []byte{' '})
	// The tag field may carry more ':'-separated tags in future; the first is P or F.
	first, _, _ := bytes.Cut(tag, []byte{':'})
	switch string(first) {
	case "P":
		rec.Partial = true
	case "F":
	default:
		return rec, fmt.Errorf("cri log line: unknown tag %q", tag)
	}
	rec.Time, rec.Stream, rec.Text = t, string(stream), text
	return rec, nil
}

// logFiles returns the existing files of a rotated log, oldest first: path.N ... path.1, path.
func logFiles(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	type numbered struct {
		n    int
		path string
	}
	var rotated []numbered
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err == nil && n > 0 {
			rotated = append(rotated, numbered{n, m})
		}
	}
	sort.Slice(rotated, func(i, j int) bool { return rotated[i].n > rotated[j].n })
	out := make([]string, 0, len(rotated)+1)
	for _, r := range rotated {
		out = append(out, r.path)
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out, nil
}

func globEscape(p string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(p)
}

// logPrinter rejoins partial records and prints whole lines, keeping the last Tail lines
// back while the existing content is read.
type logPrinter struct {
	w       io.Writer
	opts    LogOptions
	pending map[string]*logRecord
	tail    [][]byte // ring of formatted lines while holding back
	holding bool
}

func (p *logPrinter) line(raw []byte) error {
	rec, err := parseCRILine(raw)
	if err != nil {
		return nil // skip a corrupt line rather than stopping the whole log
	}
	if pend := p.pending[rec.Stream]; pend != nil {
		pend.Text = append(pend.Text, rec.Text...)
		if rec.Partial {
			return nil
		}
		rec.Time, rec.Text = pend.Time, pend.Text
		delete(p.pending, rec.Stream)
	} else if rec.Partial {
		p.pending[rec.Stream] = &logRecord{Time: rec.Time, Stream: rec.Stream, Text: append([]byte(nil), rec.Text...)}
		return nil
	}
	if !p.opts.Since.IsZero() && rec.Time.Before(p.opts.Since) {
		return nil
	}
	var b []byte
	if p.opts.Timestamps {
		b = append(b, rec.Time.Format(criTimeLayout)...)
		b = append(b, ' ')
	}
	b = append(b, rec.Text...)
	b = append(b, '\n')
	if p.holding {
		p.tail = append(p.tail, b)
		if len(p.tail) > p.opts.Tail {
			p.tail = p.tail[1:]
		}
		return nil
	}
	_, err = p.w.Write(b)
	return err
}

func (p *logPrinter) release() error {
	p.holding = false
	for _, b := range p.tail {
		if _, err := p.w.Write(b); err != nil {
			return err
		}
	}
	p.tail = nil
	return nil
}

// logFile reads whole lines from a file that may still be growing.
type logFile struct {
	f     *os.File
	br    *bufio.Reader
	carry []byte
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &logFile{f: f, br: bufio.NewReaderSize(f, 64<<10)}, nil
}

// drain hands every complete line to fn and keeps an incomplete last line for later.
func (lf *logFile) drain(fn func([]byte) error) error {
	for {
		b, err := lf.br.ReadSlice('\n')
		if len(b) > 0 {
			if err == nil {
				line := b[:len(b)-1]
				if len(lf.carry) > 0 {
					line = append(lf.carry, line...)
					lf.carry = lf.carry[:0]
				}
				if ferr := fn(line); ferr != nil {
					return ferr
				}
			} else {
				lf.carry = append(lf.carry, b...)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}

func (lf *logFile) sameFile(path string) bool {
	st1, err1 := lf.f.Stat()
	st2, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return err2 != nil // path gone: keep the open file
	}
	a, ok1 := st1.Sys().(*syscall.Stat_t)
	b, ok2 := st2.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}

// ReadLog prints the container log at path (a CRI-format log written by the shim, with its
// rotated files path.1, path.2, ...) to w, rejoining partial lines. With opts.Follow it keeps
// printing new lines, following rotation, until ctx ends (returning ctx.Err()) or opts.Done
// is closed (returning nil after printing what is left).
func ReadLog(ctx context.Context, path string, opts LogOptions, w io.Writer) error {
	p := &logPrinter{w: w, opts: opts, pending: map[string]*logRecord{}, holding: opts.Tail > 0}
	files, err := logFiles(path)
	if err != nil {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	if len(files) == 0 && !opts.Follow {
		return fmt.Errorf("read log %s: %w", path, os.ErrNotExist)
	}
	var cur *logFile
	for _, name := range files {
		lf, err := openLogFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away meanwhile
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if err := lf.drain(p.line); err != nil {
			lf.f.Close()
			return fmt.Errorf("read log %s: %w", name, err)
		}
		if name == path {
			cur = lf
		} else {
			lf.f.Close()
		}
	}
	if err := p.release(); err != nil {
		return err
	}
	if !opts.Follow {
		if cur != nil {
			cur.f.Close()
		}
		return nil
	}
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	ticker := time.NewTicker(followInterval)
	defer ticker.Stop()
	done := opts.Done
	for {
		finished := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			finished = true
		case <-ticker.C:
		}
		if cur == nil {
			lf, err := openLogFile(path)
			if err == nil {
				cur = lf
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("read log: %w", err)
			}
		}
		if cur != nil {
			if err := cur.drain(p.line); err != nil {
				return fmt.Errorf("read log %s: %w", path, err)
			}
			if !cur.sameFile(path) {
				// Rotated: the old file is complete (the writer renames only after
				// flushing); read the rest of it, then continue with the new file.
				if err := cur.drain(p.line); err != nil {
					return fmt.Errorf("read log %s: %w", path, err)
				}
				cur.f.Close()
				cur = nil
				if lf, err := openLogFile(path); err == nil {
					cur = lf
					if err := cur.drain(p.line); err != nil {
						return fmt.Errorf("read log %s: %w", path, err)
					}
				}
			}
		}
		if finished {
			return nil
		}
	}
}
