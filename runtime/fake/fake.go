// Package fake is an in-memory lifecycle.Driver for fast tests of everything above the runtime.
// It runs no processes: a container "runs" the behaviour of Shoal's test program (tests/testapp)
// that its command names — serve, sleep, exit, crash, alloc, print, ticker, read, write,
// ignore-term — or of the gRPC health server (runtime/imagetest/grpchealth), so that the runtime
// conformance suite passes against it and against real containers alike.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// TestAppPath is where the test program lives in the fake's images.
const TestAppPath = "/testapp"

// GRPCHealthPath is where the gRPC health server lives in the fake's GRPCHealthImage.
const GRPCHealthPath = "/grpchealth"

// Limits of termination messages, as the kubelet's.
const (
	maxMessage        = 4096 // bytes of the termination message file
	maxLogMessage     = 2048 // bytes of the log tail that stands in for it
	maxLogMessageLine = 80   // lines of that tail
)

// Driver is the fake. The zero value is not usable; call New.
type Driver struct {
	mu         sync.Mutex
	images     map[string]lifecycle.Image // pullable
	present    map[string]bool            // pulled
	sandboxes  map[string]*sandbox
	containers map[string]*container
	nextID     int
	nextIP     int
	stops      []Stop
	usage      map[string]usage // by pod UID + "/" + container name, as SetUsage set it
}

// usage is what SetUsage says a container of a pod uses.
type usage struct {
	milliCPU int64 // its CPU time grows by milliCPU/1000 of a second each second
	memory   int64 // its memory working set
}

// Stop records one StopContainer call: which container, with what grace, when.
type Stop struct {
	Pod, Container string
	Grace          time.Duration
	At             time.Time
}

// Stops returns the StopContainer calls so far, in order, for tests that check how the runtime
// stops containers.
func (d *Driver) Stops() []Stop {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Stop(nil), d.stops...)
}

type sandbox struct {
	sb    lifecycle.Sandbox
	files map[string][]byte // volume name + "/" + file path
	vols  map[string]lifecycle.VolumeConfig
}

type container struct {
	info   lifecycle.ContainerInfo
	cfg    lifecycle.ContainerConfig
	mode   string
	args   []string
	logs   []logLine
	exited chan struct{}
	term   chan struct{} // closed on SIGTERM
	killed chan struct{} // closed on SIGKILL
	port   int           // serve, grpchealth
	files  map[string][]byte
	// grpchealth: the status of each service ("" : the server); nil: no health service.
	health map[string]string
	// cpu is the CPU time the container has used up to cpuAt (see SetUsage).
	cpu   uint64
	cpuAt time.Time
}

type logLine struct {
	t      time.Time
	stream string
	text   string
}

// New returns a fake whose registry serves the given images by reference.
func New(images ...lifecycle.Image) *Driver {
	d := &Driver{
		images:     map[string]lifecycle.Image{},
		present:    map[string]bool{},
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		usage:      map[string]usage{},
	}
	for _, img := range images {
		d.images[img.Ref] = img
	}
	return d
}

// GRPCHealthImage returns an image like the one imagetest.GRPCHealthImage builds.
func GRPCHealthImage(ref string) lifecycle.Image {
	return lifecycle.Image{Ref: ref, ID: "sha256:" + strings.Repeat("1", 64), Entrypoint: []string{GRPCHealthPath},
		Cmd: []string{"9090"}, WorkingDir: "/"}
}

// TestAppImage returns an image like the one tests build around tests/testapp.
func TestAppImage(ref string) lifecycle.Image {
	return lifecycle.Image{Ref: ref, ID: "sha256:" + strings.Repeat("0", 64), Entrypoint: []string{TestAppPath},
		Cmd: []string{"serve"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, WorkingDir: "/"}
}

var _ lifecycle.Driver = (*Driver)(nil)

// CreateSandbox records the sandbox and its volume files.
func (d *Driver) CreateSandbox(_ context.Context, cfg lifecycle.SandboxConfig) (lifecycle.Sandbox, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sandboxes[cfg.UID]; ok {
		return s.sb, nil
	}
	d.nextIP++
	start := cfg.StartTime
	if start.IsZero() {
		start = time.Now()
	}
	s := &sandbox{
		sb: lifecycle.Sandbox{UID: cfg.UID, Namespace: cfg.Namespace, Name: cfg.Name, NetNS: "/fake/netns/" + cfg.UID,
			IP: fmt.Sprintf("10.244.0.%d", 1+d.nextIP%250), StartTime: start},
		files: map[string][]byte{},
		vols:  map[string]lifecycle.VolumeConfig{},
	}
	for _, v := range cfg.Volumes {
		s.vols[v.Name] = v
		for _, f := range v.Files {
			s.files[v.Name+"/"+f.Path] = f.Data
		}
	}
	d.sandboxes[cfg.UID] = s
	return s.sb, nil
}

// RemoveSandbox forgets the sandbox.
func (d *Driver) RemoveSandbox(_ context.Context, uid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sandboxes, uid)
	return nil
}

// Sandboxes lists the sandboxes.
func (d *Driver) Sandboxes(context.Context) ([]lifecycle.Sandbox, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]lifecycle.Sandbox, 0, len(d.sandboxes))
	for _, s := range d.sandboxes {
		out = append(out, s.sb)
	}
	return out, nil
}

// EnsureImage "pulls" an image the fake registry serves.
func (d *Driver) EnsureImage(_ context.Context, ref string, policy manifests.PullPolicy, _ lifecycle.PullSecrets) (lifecycle.Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	img, ok := d.images[ref]
	if policy == manifests.PullNever && !d.present[ref] {
		return lifecycle.Image{}, fmt.Errorf("image %s: %w", ref, lifecycle.ErrImageNeverPull)
	}
	if !ok {
		return lifecycle.Image{}, fmt.Errorf("pull %s: manifest unknown: the registry has no such image", ref)
	}
	d.present[ref] = true
	return img, nil
}

// StartContainer starts the simulated process.
func (d *Driver) StartContainer(_ context.Context, cfg lifecycle.ContainerConfig) (string, error) {
	if len(cfg.Args) == 0 {
		return "", errors.New("no command")
	}
	grpcHealth := cfg.Args[0] == GRPCHealthPath
	if cfg.Args[0] != TestAppPath && path.Base(cfg.Args[0]) != "testapp" && !grpcHealth {
		return "", fmt.Errorf("exec: %q: executable file not found in $PATH", cfg.Args[0])
	}
	if p := cfg.TerminationMessagePath; p != "" && !path.IsAbs(p) {
		return "", fmt.Errorf("terminationMessagePath %q must be an absolute path", p)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sandboxes[cfg.Meta.PodUID]; !ok {
		return "", fmt.Errorf("sandbox of pod %s: %w", cfg.Meta.PodUID, runtime.ErrNotFound)
	}
	d.nextID++
	c := &container{
		info: lifecycle.ContainerInfo{
			ID: fmt.Sprintf("fake-%06d", d.nextID), Meta: cfg.Meta, ImageRef: cfg.Image.Ref, ImageID: cfg.Image.ID,
			Status: lifecycle.ContainerRunning, PID: 10000 + d.nextID, StartedAt: time.Now(),
		},
		cpuAt:  time.Now(),
		cfg:    cfg,
		exited: make(chan struct{}),
		term:   make(chan struct{}),
		killed: make(chan struct{}),
		files:  map[string][]byte{},
	}
	switch {
	case grpcHealth:
		c.mode, c.args = "grpchealth", cfg.Args[1:]
	case len(cfg.Args) > 1:
		c.mode, c.args = cfg.Args[1], cfg.Args[2:]
	}
	if p := cfg.TerminationMessagePath; p != "" {
		c.files[p] = nil // an empty file the container may write
	}
	d.containers[c.info.ID] = c
	go d.simulate(c)
	return c.info.ID, nil
}

func arg(args []string, i int, def string) string {
	if i < len(args) {
		return args[i]
	}
	return def
}

// simulate plays the test program's behaviour for the container's mode.
func (d *Driver) simulate(c *container) {
	after := func(dur time.Duration, code int32) {
		select {
		case <-time.After(dur):
			d.exit(c, code, 0, false)
		case <-c.term:
		}
	}
	forever := func() { <-c.term }
	switch c.mode {
	case "grpchealth":
		d.serveHealth(c)
		forever()
	case "ignore-term":
		d.logf(c, "stdout", "ignoring SIGTERM")
		<-c.killed
	case "write":
		if err := d.writeFile(c, arg(c.args, 0, ""), []byte(arg(c.args, 1, "x"))); err != nil {
			d.logf(c, "stderr", "testapp: %v", err)
			d.exit(c, 1, 0, false)
			return
		}
		d.logf(c, "stdout", "ok")
		d.exit(c, 0, 0, false)
	case "serve":
		p, _ := strconv.Atoi(arg(c.args, 0, "8080"))
		d.mu.Lock()
		c.port = p
		d.mu.Unlock()
		d.logf(c, "stdout", "serving on :%d", p)
		forever()
	case "echo-tcp", "echo-udp", "forkbomb", "":
		forever()
	case "sleep":
		if s := arg(c.args, 0, "inf"); s != "inf" {
			n, _ := strconv.Atoi(s)
			after(time.Duration(n)*time.Second, 0)
			return
		}
		forever()
	case "exit":
		n, _ := strconv.Atoi(arg(c.args, 0, "0"))
		d.exit(c, int32(n), 0, false)
	case "crash":
		s, _ := strconv.Atoi(arg(c.args, 0, "1"))
		code, _ := strconv.Atoi(arg(c.args, 1, "1"))
		after(time.Duration(s)*time.Second, int32(code))
	case "alloc":
		mib, _ := strconv.Atoi(arg(c.args, 0, "64"))
		if c.cfg.MemoryLimit > 0 && int64(mib)<<20 >= c.cfg.MemoryLimit {
			select {
			case <-time.After(50 * time.Millisecond):
				d.exit(c, 137, 9, true) // the kernel's OOM killer
			case <-c.term:
			}
			return
		}
		d.logf(c, "stdout", "allocated %d MiB", mib)
		forever()
	case "print":
		text := strings.Join(c.args, " ")
		d.logf(c, "stdout", "%s", text)
		d.logf(c, "stderr", "err: %s", text)
		d.exit(c, 0, 0, false)
	case "ticker":
		ms, _ := strconv.Atoi(arg(c.args, 0, "100"))
		for i := 0; ; i++ {
			d.logf(c, "stdout", "tick %d", i)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-c.term:
				return
			}
		}
	case "read":
		data, err := d.readFile(c, arg(c.args, 0, ""))
		if err != nil {
			d.logf(c, "stderr", "testapp: %v", err)
			d.exit(c, 1, 0, false)
			return
		}
		d.logf(c, "stdout", "%s", strings.TrimSuffix(string(data), "\n"))
		d.exit(c, 0, 0, false)
	default:
		d.logf(c, "stderr", "testapp: unknown mode %q", c.mode)
		d.exit(c, 2, 0, false)
	}
}

// serveHealth plays grpchealth PORT [SERVICE=STATUS...] | PORT unimplemented: the server's
// status is SERVING unless "=STATUS" sets it, services have the statuses given.
func (d *Driver) serveHealth(c *container) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c.port, _ = strconv.Atoi(arg(c.args, 0, "9090"))
	if arg(c.args, 1, "") == "unimplemented" {
		return
	}
	c.health = map[string]string{"": "SERVING"}
	for _, a := range c.args[min(1, len(c.args)):] {
		svc, status, _ := strings.Cut(a, "=")
		c.health[svc] = status
	}
}

// writeFile writes a file of the container: in an emptyDir volume (shared with the pod's other
// containers that mount it), or its own (rootfs, termination message file).
func (d *Driver) writeFile(c *container, name string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sandboxes[c.cfg.Meta.PodUID]
	if s == nil {
		return errors.New("no sandbox")
	}
	if name == c.cfg.TerminationMessagePath {
		c.files[name] = data
		return nil
	}
	for _, m := range c.cfg.Mounts {
		rel, ok := strings.CutPrefix(name, strings.TrimSuffix(m.Destination, "/")+"/")
		if !ok {
			continue
		}
		if m.ReadOnly || s.vols[m.Volume].EmptyDir == nil {
			return fmt.Errorf("open %s: read-only file system", name)
		}
		s.files[m.Volume+"/"+path.Join(m.SubPath, rel)] = data
		return nil
	}
	if c.cfg.ReadonlyRootfs {
		return fmt.Errorf("open %s: read-only file system", name)
	}
	c.files[name] = data
	return nil
}

// readFile reads a file of a mounted volume or of the container's own.
func (d *Driver) readFile(c *container, name string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sandboxes[c.cfg.Meta.PodUID]
	if s == nil {
		return nil, errors.New("no sandbox")
	}
	if data, ok := c.files[name]; ok {
		return data, nil
	}
	for _, m := range c.cfg.Mounts {
		rel, ok := strings.CutPrefix(name, strings.TrimSuffix(m.Destination, "/")+"/")
		if !ok {
			continue
		}
		if data, ok := s.files[m.Volume+"/"+path.Join(m.SubPath, rel)]; ok {
			return data, nil
		}
	}
	return nil, fmt.Errorf("open %s: no such file or directory", name)
}

func (d *Driver) logf(c *container, stream, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		c.logs = append(c.logs, logLine{t: time.Now(), stream: stream, text: line})
	}
}

// exit ends the simulated process once.
func (d *Driver) exit(c *container, code, signal int32, oom bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.info.Status == lifecycle.ContainerExited {
		return
	}
	c.info.Status = lifecycle.ContainerExited
	c.info.ExitCode, c.info.Signal, c.info.OOMKilled = code, signal, oom
	c.info.FinishedAt = time.Now()
	c.info.PID = 0
	c.info.Message = c.terminationMessage()
	close(c.exited)
}

// terminationMessage is the end of the container's termination message file, or with
// FallbackToLogsOnError, when that is empty and the container failed, the end of its log.
func (c *container) terminationMessage() string {
	p := c.cfg.TerminationMessagePath
	if p == "" {
		return ""
	}
	if msg := c.files[p]; len(msg) > 0 {
		return string(msg[max(0, len(msg)-maxMessage):])
	}
	if c.cfg.TerminationMessagePolicy != manifests.TerminationMessageFallbackToLogsOnError || c.info.ExitCode == 0 {
		return ""
	}
	var b strings.Builder
	for _, l := range c.logs[max(0, len(c.logs)-maxLogMessageLine):] {
		b.WriteString(l.text + "\n")
	}
	out := b.String()
	return out[max(0, len(out)-maxLogMessage):]
}

// Containers lists the containers.
func (d *Driver) Containers(_ context.Context, podUID string) ([]lifecycle.ContainerInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]lifecycle.ContainerInfo, 0, len(d.containers))
	for _, c := range d.containers {
		if podUID == "" || c.info.Meta.PodUID == podUID {
			out = append(out, c.info)
		}
	}
	return out, nil
}

func (d *Driver) get(id string) (*container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return c, nil
}

// WaitContainer waits for the simulated process to exit.
func (d *Driver) WaitContainer(ctx context.Context, id string) (lifecycle.ContainerInfo, error) {
	c, err := d.get(id)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	select {
	case <-ctx.Done():
		return lifecycle.ContainerInfo{}, ctx.Err()
	case <-c.exited:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.info, nil
}

// StopContainer "sends SIGTERM": the test program exits 0 on it at once, except in mode
// ignore-term, which only SIGKILL stops, grace later.
func (d *Driver) StopContainer(ctx context.Context, id string, grace time.Duration) (lifecycle.ContainerInfo, error) {
	c, err := d.get(id)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	d.mu.Lock()
	d.stops = append(d.stops, Stop{Pod: c.info.Meta.PodUID, Container: c.info.Meta.Name, Grace: grace, At: time.Now()})
	d.mu.Unlock()
	return d.stop(ctx, c, grace)
}

func (d *Driver) stop(ctx context.Context, c *container, grace time.Duration) (lifecycle.ContainerInfo, error) {
	d.mu.Lock()
	running := c.info.Status == lifecycle.ContainerRunning
	if running {
		closeOnce(c.term)
	}
	d.mu.Unlock()
	switch {
	case !running:
	case c.mode == "ignore-term" && grace > 0:
		t := time.NewTimer(grace)
		select {
		case <-t.C:
			d.kill(c)
		case <-c.exited:
		case <-ctx.Done():
			t.Stop()
			return lifecycle.ContainerInfo{}, ctx.Err()
		}
	case c.mode == "ignore-term":
		d.kill(c)
	default:
		d.exit(c, 0, 0, false)
	}
	return d.WaitContainer(ctx, c.info.ID)
}

// kill plays SIGKILL.
func (d *Driver) kill(c *container) {
	d.mu.Lock()
	closeOnce(c.killed)
	d.mu.Unlock()
	d.exit(c, 137, 9, false)
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// RemoveContainer forgets a container, stopping it first.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	c, err := d.get(id)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := d.stop(ctx, c, 0); err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return nil
		}
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.containers, id)
	return nil
}

// SetUsage sets what the container of that name in the pod uses from now on, in this run and
// later ones: milliCPU thousandths of a CPU (its CPU time grows at that rate, from what it is
// now) and a memory working set of memory bytes. Until then a container uses nothing. Each run
// of a container counts its CPU time from zero, as a new cgroup does.
func (d *Driver) SetUsage(podUID, container string, milliCPU, memory int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for _, c := range d.containers {
		if c.info.Meta.PodUID == podUID && c.info.Meta.Name == container {
			d.advanceCPU(c, now) // the time so far counts at the old rate
		}
	}
	d.usage[podUID+"/"+container] = usage{milliCPU: max(0, milliCPU), memory: max(0, memory)}
}

// advanceCPU adds the CPU time the container used since cpuAt, while it ran, to c.cpu.
func (d *Driver) advanceCPU(c *container, now time.Time) {
	end := now
	if c.info.Status != lifecycle.ContainerRunning {
		end = c.info.FinishedAt
	}
	if end.After(c.cpuAt) {
		u := d.usage[c.info.Meta.PodUID+"/"+c.info.Meta.Name]
		c.cpu += uint64(u.milliCPU) * uint64(end.Sub(c.cpuAt)) / 1000
	}
	if now.After(c.cpuAt) {
		c.cpuAt = now
	}
}

// ContainerUsage reports what SetUsage says the container uses.
func (d *Driver) ContainerUsage(_ context.Context, id string) (lifecycle.ContainerUsage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.containers[id]
	if !ok {
		return lifecycle.ContainerUsage{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if c.info.Status != lifecycle.ContainerRunning {
		return lifecycle.ContainerUsage{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotRunning)
	}
	now := time.Now()
	d.advanceCPU(c, now)
	return lifecycle.ContainerUsage{CPUUsageNanos: c.cpu, MemoryWorkingSet: d.usage[c.info.Meta.PodUID+"/"+c.info.Meta.Name].memory, Time: now}, nil
}

// Exec simulates a test-program command in a running container.
func (d *Driver) Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error) {
	c, err := d.get(id)
	if err != nil {
		return -1, err
	}
	d.mu.Lock()
	running := c.info.Status == lifecycle.ContainerRunning
	d.mu.Unlock()
	if !running {
		return -1, fmt.Errorf("exec in container %s: %w", id, runtime.ErrNotRunning)
	}
	cmd := opts.Command
	if len(cmd) == 0 || (cmd[0] != TestAppPath && path.Base(cmd[0]) != "testapp") {
		return -1, fmt.Errorf("exec %v: executable file not found in $PATH", cmd)
	}
	out := func(w io.Writer, s string) {
		if w != nil {
			_, _ = io.WriteString(w, s) // like a process writing to a closed pipe
		}
	}
	switch arg(cmd, 1, "") {
	case "exit":
		n, _ := strconv.Atoi(arg(cmd, 2, "0"))
		return n, nil
	case "print":
		text := strings.Join(cmd[2:], " ")
		out(opts.Stdout, text+"\n")
		out(opts.Stderr, "err: "+text+"\n")
		return 0, nil
	case "cat":
		if opts.Stdin != nil && opts.Stdout != nil {
			if _, err := io.Copy(opts.Stdout, opts.Stdin); err != nil {
				return 1, nil
			}
		}
		return 0, nil
	case "read":
		data, err := d.readFile(c, arg(cmd, 2, ""))
		if err != nil {
			out(opts.Stderr, "testapp: "+err.Error()+"\n")
			return 1, nil
		}
		out(opts.Stdout, string(data))
		return 0, nil
	case "write":
		if err := d.writeFile(c, arg(cmd, 2, ""), []byte(arg(cmd, 3, "x"))); err != nil {
			out(opts.Stderr, "testapp: "+err.Error()+"\n")
			return 1, nil
		}
		out(opts.Stdout, "ok\n")
		return 0, nil
	case "sleep":
		n, _ := strconv.Atoi(arg(cmd, 2, "1"))
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(time.Duration(n) * time.Second):
			return 0, nil
		}
	}
	return 0, nil
}

// Logs writes the container's log lines.
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, w io.Writer) error {
	c, err := d.get(id)
	if err != nil {
		return err
	}
	sent := 0
	for {
		d.mu.Lock()
		lines := c.logs[sent:]
		if opts.Tail > 0 && sent == 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		sent = len(c.logs)
		done := c.info.Status == lifecycle.ContainerExited
		d.mu.Unlock()
		for _, l := range lines {
			if !opts.Since.IsZero() && l.t.Before(opts.Since) {
				continue
			}
			if opts.Timestamps {
				fmt.Fprintf(w, "%s %s\n", l.t.UTC().Format(time.RFC3339Nano), l.text)
			} else {
				fmt.Fprintln(w, l.text)
			}
		}
		if !opts.Follow || done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ProbeTCP succeeds when a running container of the pod serves the port.
func (d *Driver) ProbeTCP(_ context.Context, sb lifecycle.Sandbox, _ string, port int) error {
	if d.serving(sb.UID, port) != nil {
		return nil
	}
	return fmt.Errorf("dial tcp :%d: connect: connection refused", port)
}

// ProbeHTTP succeeds when a running container of the pod serves the port (the test program
// answers every path).
func (d *Driver) ProbeHTTP(_ context.Context, sb lifecycle.Sandbox, p lifecycle.HTTPProbe) error {
	if c := d.serving(sb.UID, p.Port); c != nil && c.mode == "serve" {
		return nil
	}
	return fmt.Errorf("get http://:%d%s: connect: connection refused", p.Port, p.Path)
}

// ProbeGRPC answers as the gRPC health server a running container of the pod plays.
func (d *Driver) ProbeGRPC(_ context.Context, sb lifecycle.Sandbox, p lifecycle.GRPCProbe) error {
	c := d.serving(sb.UID, p.Port)
	if c == nil {
		return fmt.Errorf("grpc probe: connect to port %d: connection refused", p.Port)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch status, ok := c.health[p.Service]; {
	case c.mode != "grpchealth":
		return fmt.Errorf("grpc probe: port %d does not speak gRPC", p.Port)
	case c.health == nil:
		return fmt.Errorf("grpc probe: the server on port %d does not implement the grpc health protocol (grpc.health.v1.Health)", p.Port)
	case !ok:
		return fmt.Errorf("grpc probe: health rpc failed: NotFound: unknown service %q", p.Service)
	case status != "SERVING":
		return fmt.Errorf("grpc probe: service %q is unhealthy: it answered %s", p.Service, status)
	}
	return nil
}

func (d *Driver) serving(uid string, port int) *container {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		if c.cfg.Meta.PodUID == uid && c.port == port && c.info.Status == lifecycle.ContainerRunning {
			return c
		}
	}
	return nil
}
