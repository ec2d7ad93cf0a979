package libct

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// criTimeLayout is the fixed-width RFC 3339 timestamp of the CRI log format.
const criTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// maxLogLine is the longest log line written in one record; longer lines are split into
// partial ("P") records, as the CRI does.
const maxLogLine = 16 << 10

// logWriter writes CRI-format records ("<time> <stream> <P|F> <text>\n") to a file and
// rotates it by size: path, path.1, ..., path.<maxFiles-1>. It is safe for concurrent use
// by the stdout and stderr copiers.
type logWriter struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	w        *bufio.Writer
	size     int64
	now      func() time.Time
}

func openLogWriter(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	lw := &logWriter{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := lw.open(); err != nil {
		return nil, err
	}
	return lw, nil
}

func (lw *logWriter) open() error {
	f, err := os.OpenFile(lw.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	lw.f, lw.size = f, st.Size()
	lw.w = bufio.NewWriterSize(f, 32<<10)
	return nil
}

// rotate shifts path.N-1 -> path.N ... path -> path.1 and opens a fresh path.
func (lw *logWriter) rotate() error {
	if err := lw.w.Flush(); err != nil {
		return err
	}
	lw.f.Close()
	if lw.maxFiles <= 1 {
		if err := os.Truncate(lw.path, 0); err != nil {
			return err
		}
		return lw.open()
	}
	for i := lw.maxFiles - 1; i >= 1; i-- {
		src := lw.path
		if i > 1 {
			src += "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(src, lw.path+"."+strconv.Itoa(i)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	return lw.open()
}

// write appends one record. Records are flushed by flush (after each read from a pipe), so a
// burst of lines costs one write system call.
func (lw *logWriter) write(stream string, partial bool, line []byte) error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	tag := "F"
	if partial {
		tag = "P"
	}
	ts := lw.now().Format(criTimeLayout)
	n := int64(len(ts) + 1 + len(stream) + 3 + len(line) + 1)
	if lw.size > 0 && lw.size+n > lw.maxSize {
		if err := lw.rotate(); err != nil {
			return err
		}
	}
	lw.w.WriteString(ts)
	lw.w.WriteByte(' ')
	lw.w.WriteString(stream)
	lw.w.WriteByte(' ')
	lw.w.WriteString(tag)
	lw.w.WriteByte(' ')
	lw.w.Write(line)
	if err := lw.w.WriteByte('\n'); err != nil {
		return err
	}
	lw.size += n
	return nil
}

func (lw *logWriter) flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Flush()
}

func (lw *logWriter) close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	err := lw.w.Flush()
	if cerr := lw.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyStream reads r (a container's stdout or stderr pipe) until EOF and writes each line
// as a record. Lines longer than maxLogLine become partial records; a last line without a
// newline at EOF is written as a full record.
func (lw *logWriter) copyStream(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if werr := lw.write(stream, false, line[:len(line)-1]); werr != nil {
				return werr
			}
		case err == bufio.ErrBufferFull:
			if werr := lw.write(stream, true, line); werr != nil {
				return werr
			}
		case len(line) > 0:
			if werr := lw.write(stream, false, line); werr != nil {
				return werr
			}
		}
		if (err == nil || err == bufio.ErrBufferFull) && br.Buffered() > 0 {
			continue // more data is already here: write it before flushing
		}
		if ferr := lw.flush(); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
}
