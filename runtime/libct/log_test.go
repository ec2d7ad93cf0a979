package libct

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogWriterAndReadLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	lw, err := openLogWriter(path, 300, 3)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	n := 0
	lw.now = func() time.Time { n++; return base.Add(time.Duration(n) * time.Second) }
	long := strings.Repeat("x", maxLogLine+10)
	input := "one\ntwo\n" + long + "\nlast-no-newline"
	if err := lw.copyStream("stdout", strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	if err := lw.close(); err != nil {
		t.Fatal(err)
	}
	files, err := logFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || files[0] != path+".2" || files[2] != path {
		t.Fatalf("files = %v, want c.log.2 c.log.1 c.log", files)
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(raw), "stdout F last-no-newline\n") {
		t.Fatalf("last record = %q", raw)
	}

	// The long line spans a rotation; with big files nothing is lost and it is rejoined.
	path2 := filepath.Join(dir, "big.log")
	lw2, err := openLogWriter(path2, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	lw2.now = lw.now
	n = 0
	if err := lw2.copyStream("stderr", strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	lw2.close()
	raw2, _ := os.ReadFile(path2)
	if c := strings.Count(string(raw2), " stderr P "); c != 1 {
		t.Fatalf("%d partial records, want 1", c)
	}
	tests := []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{}, "one\ntwo\n" + long + "\nlast-no-newline\n"},
		{"tail", LogOptions{Tail: 2}, long + "\nlast-no-newline\n"},
		{"since", LogOptions{Since: base.Add(3 * time.Second)}, long + "\nlast-no-newline\n"},
		{"timestamps", LogOptions{Tail: 1, Timestamps: true}, "2026-01-02T03:04:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := ReadLog(context.Background(), path2, tt.opts, &b); err != nil {
				t.Fatal(err)
			}
			if tt.name == "timestamps" {
				if !strings.HasPrefix(b.String(), tt.want) || !strings.HasSuffix(b.String(), " last-no-newline\n") {
					t.Fatalf("got %q", b.String())
				}
				return
			}
			if b.String() != tt.want {
				t.Fatalf("got %q, want %q", trunc(b.String()), trunc(tt.want))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:40] + "..." + s[len(s)-40:]
	}
	return s
}

func TestParseCRILine(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		partial bool
		text    string
	}{
		{"2026-01-02T03:04:05.000000006Z stdout F hello world", true, false, "hello world"},
		{"2026-01-02T03:04:05.000000006+01:00 stderr P part", true, true, "part"},
		{"2026-01-02T03:04:05Z stdout F", true, false, ""},
		{"2026-01-02T03:04:05Z stdout F:x y", true, false, "y"},
		{"garbage", false, false, ""},
		{"2026-01-02T03:04:05Z stdin F x", false, false, ""},
		{"2026-01-02T03:04:05Z stdout Q x", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rec, err := parseCRILine([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (rec.Partial != tt.partial || string(rec.Text) != tt.text) {
				t.Fatalf("got %+v", rec)
			}
		})
	}
}

func FuzzParseCRILine(f *testing.F) {
	f.Add([]byte("2026-01-02T03:04:05.000000006Z stdout F hello"))
	f.Add([]byte("2026-01-02T03:04:05Z stderr P "))
	f.Add([]byte(" "))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseCRILine(b)
		if err != nil {
			return
		}
		if rec.Stream != "stdout" && rec.Stream != "stderr" {
			t.Fatalf("bad stream %q", rec.Stream)
		}
		if len(rec.Text) > len(b) {
			t.Fatal("text longer than line")
		}
	})
}

func TestContainerLogsRotateAndFollow(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.config("ticker", "ticker", "5")
	cfg.LogMaxSize = 4096
	cfg.LogMaxFiles = 3
	c := e.start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- ReadLog(ctx, c.LogPath(), LogOptions{Follow: true, Done: done}, &out) }()
	eventually(t, "several rotations", func() bool { return strings.Contains(out.String(), "tick 400\n") })
	if _, err := os.Stat(c.LogPath() + ".2"); err != nil {
		t.Fatalf("no rotated file: %v", err)
	}
	if _, err := os.Stat(c.LogPath() + ".3"); err == nil {
		t.Fatalf("more files than LogMaxFiles")
	}
	st, err := c.Stop(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The followed output is gap-free across rotations.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, l := range lines {
		if want := fmt.Sprintf("tick %d", i); l != want {
			t.Fatalf("line %d = %q, want %q (state %+v)", i, l, want, st)
		}
	}
	for _, f := range []string{c.LogPath(), c.LogPath() + ".1"} {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 4096 {
			t.Fatalf("%s: %v, size over LogMaxSize", f, err)
		}
	}
	// stdout and stderr both reach the log.
	_, log := e.run(t, e.config("printer", "print", "hello", "world"))
	if log != "hello world\nerr: hello world\n" && log != "err: hello world\nhello world\n" {
		t.Fatalf("log = %q", log)
	}
	raw, _ := os.ReadFile(filepath.Join(e.logDir, "printer.log"))
	if !strings.Contains(string(raw), " stdout F hello world\n") || !strings.Contains(string(raw), " stderr F err: hello world\n") {
		t.Fatalf("raw CRI log = %q", raw)
	}
}
