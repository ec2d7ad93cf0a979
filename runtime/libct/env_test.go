package libct

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEnvEncoding(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		enc  string
	}{
		{"none", nil, ""},
		{"one", []string{"A=1"}, "A=1\x00"},
		{"empty value and spaces", []string{"A=", "B=x y", "C==="}, "A=\x00B=x y\x00C===\x00"},
		{"not UTF-8", []string{"K=\xff\xfe"}, "K=\xff\xfe\x00"},
		{"empty entry", []string{"A=1", "", "B=2"}, "A=1\x00\x00B=2\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encodeEnv(tt.env)); got != tt.enc {
				t.Errorf("encodeEnv = %q, want %q", got, tt.enc)
			}
			if got := decodeEnv([]byte(tt.enc)); !slices.Equal(got, tt.env) {
				t.Errorf("decodeEnv = %q, want %q", got, tt.env)
			}
		})
	}
	// /proc/<pid>/environ of a process that rewrote its last entry may lack the final NUL.
	if got := decodeEnv([]byte("A=1\x00B=2")); !slices.Equal(got, []string{"A=1", "B=2"}) {
		t.Errorf("decodeEnv without the last NUL = %q", got)
	}
}

func FuzzEnvEncoding(f *testing.F) {
	f.Add([]byte("A=1\x00B=2\x00"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("A=1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env := decodeEnv(b)
		for _, e := range env {
			if strings.IndexByte(e, 0) >= 0 {
				t.Fatalf("decoded entry %q holds a NUL", e)
			}
		}
		// Whatever was read, writing it out and reading it again gives the same environment.
		if again := decodeEnv(encodeEnv(env)); !slices.Equal(again, env) {
			t.Fatalf("round trip of %q: %q, want %q", b, again, env)
		}
	})
}

func TestSpecFileLeavesEnvOut(t *testing.T) {
	sp := shimSpec{Config: Config{ID: "a", Args: []string{"/app", "--flag"}, Env: []string{"TOKEN=hunter2"}}, Rootfs: "/r"}
	b, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("hunter2")) || bytes.Contains(b, []byte("TOKEN")) || bytes.Contains(b, []byte(`"env"`)) {
		t.Fatalf("spec.json holds the environment: %s", b)
	}
	if !bytes.Contains(b, []byte("--flag")) || !bytes.Contains(b, []byte(`"rootfs":"/r"`)) {
		t.Fatalf("spec.json lost the rest of the spec: %s", b)
	}
	if sp.Config.Env == nil {
		t.Fatal("marshalling cleared the caller's Env")
	}
	// A spec.json from an earlier version, with the environment, still reads.
	var legacy shimSpec
	if err := json.Unmarshal([]byte(`{"config":{"id":"a","args":["/app"],"env":["TOKEN=x"]},"rootfs":"/r"}`), &legacy); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(legacy.Config.Env, []string{"TOKEN=x"}) {
		t.Fatalf("legacy env = %q", legacy.Config.Env)
	}
}

func TestEnvFileSealed(t *testing.T) {
	env := []string{"A=1", "B=two words"}
	f, err := newEnvFile(env)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := readEnvFile(f)
	if err != nil || !slices.Equal(got, env) {
		t.Fatalf("readEnvFile = %q, %v; want %q", got, err, env)
	}
	if _, err := f.WriteAt([]byte("X"), 0); err == nil {
		t.Fatal("wrote to the sealed environment memfd")
	}
	if err := f.Truncate(0); err == nil {
		t.Fatal("truncated the sealed environment memfd")
	}
	if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("the daemon's copy of the memfd is inherited by every child: flags %#x, %v", flags, err)
	}
}

// secretLeaks returns the files under root whose content holds one of the needles, and how
// many regular files it read.
func secretLeaks(t *testing.T, root string, needles ...string) (leaks []string, files int) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() { // directories, fifos, sockets, links: no content of their own
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				leaks = append(leaks, path+" holds "+strconv.Quote(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return leaks, files
}

// secretEnv is a container environment with values that must never reach the disk, and a
// marker in the command line (which is on disk) to show that the search finds what is there.
type secretEnv struct {
	cfg     Config
	secrets []string // the values, and base64 forms in case something writes them as bytes
	marker  string
}

func newSecretEnv(e *testEnv, id string) secretEnv {
	s := secretEnv{marker: "marker-" + randHex(8)}
	pw, key := "pw-"+randHex(16), "key-"+randHex(16)
	s.cfg = e.config(id, "sleep", "inf", s.marker)
	s.cfg.Env = []string{"DB_PASSWORD=" + pw, "API_KEY=" + key, "PLAIN=visible"}
	s.secrets = []string{pw, key, base64.StdEncoding.EncodeToString([]byte(pw)), base64.StdEncoding.EncodeToString([]byte(key))}
	return s
}

// checkNotOnDisk searches every file under the test's data dir (the runner's state: spec.json,
// state.json, exit.json, shim.log; libcontainer's state.json; the container's rootfs layers;
// the logs) for the secrets, and libcontainer's state.json of the container also for the names.
func (s secretEnv) checkNotOnDisk(t *testing.T, e *testEnv) {
	t.Helper()
	leaks, files := secretLeaks(t, e.state, s.secrets...)
	for _, l := range leaks {
		t.Errorf("secret on disk: %s", l)
	}
	spec := filepath.Join(e.r.dir(s.cfg.ID), specFile)
	if found, _ := secretLeaks(t, filepath.Dir(spec), s.marker); len(found) == 0 {
		t.Fatalf("the search does not find the command line marker in %s: it would miss a secret too", spec)
	}
	lcState := filepath.Join(e.r.lcRoot(), s.cfg.ID, "state.json")
	b, err := os.ReadFile(lcState)
	if err != nil {
		t.Fatalf("libcontainer state: %v", err)
	}
	for _, n := range []string{"DB_PASSWORD", "API_KEY", "PLAIN=visible"} {
		if bytes.Contains(b, []byte(n)) {
			t.Errorf("libcontainer's state.json holds the container's environment (%s)", n)
		}
	}
	t.Logf("searched %d files under %s", files, e.state)
}

// checkShimProc: the shim's command line, which any user of the host can read, and its own
// environment hold no secret.
func (s secretEnv) checkShimProc(t *testing.T, c *Container) {
	t.Helper()
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(c.st.ShimPID) + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range s.secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("the shim's /proc/%d/%s holds a secret", c.st.ShimPID, f)
			}
		}
	}
}

func execOut(t *testing.T, c *Container, ec ExecConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	ec.Stdout, ec.Stderr = &out, &errOut
	code, err := c.Exec(ctx, ec)
	if err != nil || code != 0 {
		t.Fatalf("exec %q: code %d, %v, stderr %q", ec.Args, code, err, errOut.String())
	}
	return out.String()
}

// checkSeen: the container's init has the environment, and an exec'd process gets it too, with
// the exec's own variables on top.
func (s secretEnv) checkSeen(t *testing.T, c *Container) {
	t.Helper()
	initEnv := decodeEnv([]byte(execOut(t, c, ExecConfig{Args: []string{"/testapp", "read", "/proc/1/environ"}})))
	for _, kv := range s.cfg.Env {
		if !slices.Contains(initEnv, kv) {
			t.Errorf("the container's init lacks %s: %q", strings.SplitN(kv, "=", 2)[0], initEnv)
		}
	}
	execEnv := decodeEnv([]byte(execOut(t, c, ExecConfig{
		Args: []string{"/testapp", "read", "/proc/self/environ"},
		Env:  []string{"PLAIN=overridden", "EXTRA=1"},
	})))
	want := append(slices.Clone(s.cfg.Env[:2]), "PLAIN=overridden", "EXTRA=1")
	for _, kv := range want {
		if !slices.Contains(execEnv, kv) {
			t.Errorf("the exec'd process lacks %s: %q", strings.SplitN(kv, "=", 2)[0], execEnv)
		}
	}
	if slices.Contains(execEnv, "PLAIN=visible") {
		t.Errorf("the exec's PLAIN did not replace the container's: %q", execEnv)
	}
	if !slices.ContainsFunc(execEnv, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		t.Errorf("the exec'd process has no PATH: %q", execEnv)
	}
}

// TestEnvNeverOnDisk starts a container with secrets in its environment: no file of the runtime
// holds them, the container and the processes exec'd in it have them.
func TestEnvNeverOnDisk(t *testing.T) {
	e := newTestEnv(t)
	s := newSecretEnv(e, "secret")
	c := e.start(t, s.cfg)
	if env, err := c.Env(context.Background()); err != nil || !slices.Equal(env, s.cfg.Env) {
		t.Fatalf("Env = %q, %v; want %q", env, err, s.cfg.Env)
	}
	s.checkSeen(t, c)
	s.checkShimProc(t, c)
	s.checkNotOnDisk(t, e)

	// Another handle on the container, as the driver loads one per call: the environment comes
	// back from the shim.
	again, err := e.r.Load(context.Background(), s.cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Config().Env != nil {
		t.Fatalf("a loaded Config has Env %q: it came from disk", again.Config().Env)
	}
	if env, err := again.Env(context.Background()); err != nil || !slices.Equal(env, s.cfg.Env) {
		t.Fatalf("Env of a loaded container = %q, %v; want %q", env, err, s.cfg.Env)
	}
}

// TestEnvAfterOwnerKilled: a daemon that started a container with secrets in its environment
// dies; a new one re-adopts the container, and exec gets the environment from the shim; with the
// shim killed too, from the container's init. Nothing is ever on disk.
func TestEnvAfterOwnerKilled(t *testing.T) {
	e := newTestEnv(t)
	s := newSecretEnv(e, "adopted")
	owner, pids := startOwner(t, e, s.cfg)
	if err := owner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()

	// This process is the restarted daemon: a new Runner over the same state, which never had
	// the environment in memory.
	r, err := NewRunner(e.r.root, WithShimCgroup(e.shimCg))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := r.Load(ctx, s.cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || st.Status != StatusRunning || st.PID != pids[s.cfg.ID] {
		t.Fatalf("re-adopted container: %+v, %v; want running with pid %d", st, err, pids[s.cfg.ID])
	}
	if env, err := c.Env(ctx); err != nil || !slices.Equal(env, s.cfg.Env) {
		t.Fatalf("Env after the restart = %q, %v; want %q from the shim", env, err, s.cfg.Env)
	}
	s.checkSeen(t, c)
	s.checkShimProc(t, c)
	s.checkNotOnDisk(t, e)

	// The shim dies too; the container runs on, and its init still has the environment.
	if err := unix.Kill(c.st.ShimPID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the shim gone", func() bool {
		_, err := shimEnv(c.st.ShimPID, c.st.ShimStart)
		return errors.Is(err, errEnvGone)
	})
	orphan, err := r.Load(ctx, s.cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := orphan.State(ctx); err != nil || st.Status != StatusRunning {
		t.Fatalf("container without its shim: %+v, %v; want running", st, err)
	}
	env, err := orphan.Env(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range s.cfg.Env {
		if !slices.Contains(env, kv) {
			t.Errorf("Env from the init lacks %s: %q", strings.SplitN(kv, "=", 2)[0], env)
		}
	}
	s.checkSeen(t, orphan)
	s.checkNotOnDisk(t, e)
}

// TestEnvOfLegacySpec: a container whose spec.json an earlier version wrote with the
// environment in it keeps that environment for exec.
func TestEnvOfLegacySpec(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.config("legacy", "sleep", "inf")
	cfg.Env = []string{"A=1"}
	e.start(t, cfg)
	path := filepath.Join(e.r.dir(cfg.ID), specFile)
	var raw map[string]any
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	raw["config"].(map[string]any)["env"] = []string{"A=from-the-old-spec"}
	if b, err = json.Marshal(raw); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := e.r.Load(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config().Env != nil {
		t.Errorf("Config().Env = %q, want none", c.Config().Env)
	}
	if env, err := c.Env(context.Background()); err != nil || !slices.Equal(env, []string{"A=from-the-old-spec"}) {
		t.Fatalf("Env = %q, %v; want the old spec's", env, err)
	}
}

// BenchmarkEnv measures what keeping the environment off disk adds: the memfd the daemon makes
// for each start, and reading the environment back from a running shim (each Exec of a loaded
// container, so each exec probe). The environment is 40 variables of 64 bytes.
func BenchmarkEnv(b *testing.B) {
	env := make([]string, 40)
	for i := range env {
		env[i] = "VAR_" + strconv.Itoa(i) + "=" + strings.Repeat("x", 58)
	}
	b.Run("memfd", func(b *testing.B) {
		for b.Loop() {
			f, err := newEnvFile(env)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("read-from-shim", func(b *testing.B) {
		e := newTestEnv(b)
		cfg := e.config("bench-env", "sleep", "inf")
		cfg.Env = env
		c := e.start(b, cfg)
		for b.Loop() {
			got, err := shimEnv(c.st.ShimPID, c.st.ShimStart)
			if err != nil || len(got) != len(env) {
				b.Fatalf("shimEnv = %d entries, %v", len(got), err)
			}
		}
	})
}
