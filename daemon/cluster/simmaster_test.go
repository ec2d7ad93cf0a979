package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// simMasterEnv, set to the store's endpoints, makes the test binary run only a master (the
// simulated cluster's, in a process of its own) that takes its commands on stdin; the master
// holds the CA of the directory simMasterPKIEnv names.
const (
	simMasterEnv    = "SHOAL_SIM_MASTER_STORE"
	simMasterPKIEnv = "SHOAL_SIM_MASTER_PKI"
)

// simMasterProfileEnv and simMasterHeapEnv name files for a CPU profile of the simulated
// master and a heap profile of it when it stops (pprof).
const (
	simMasterProfileEnv = "SHOAL_SIM_MASTER_CPUPROFILE"
	simMasterHeapEnv    = "SHOAL_SIM_MASTER_MEMPROFILE"
)

func TestMain(m *testing.M) {
	if eps := os.Getenv(simMasterEnv); eps != "" {
		if err := runSimMaster(strings.Split(eps, ","), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "simulated master:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// simRequest is a command to the master process: "commit" the files on top of Parent and hand
// the commit to the master, or report its "stats".
type simRequest struct {
	Op     string            `json:"op"`
	Parent string            `json:"parent,omitempty"`
	Files  map[string]string `json:"files,omitempty"`
}

type simReply struct {
	SHA string `json:"sha,omitempty"`
	// Requests are the master's store requests so far; Keys the keys its passes wrote.
	Requests store.Requests `json:"requests"`
	Keys     float64        `json:"keys"`
	Err      string         `json:"err,omitempty"`
}

// runSimMaster runs a master over the store until in ends, answering each request on out.
func runSimMaster(endpoints []string, in io.Reader, out io.Writer) error {
	if path := os.Getenv(simMasterProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv(simMasterHeapEnv); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mst, err := store.Connect(ctx, store.Config{Endpoints: endpoints})
	if err != nil {
		return err
	}
	defer mst.Close()
	git := &fakeGit{commits: map[string]fakeCommit{}}
	metrics := NewMetrics(nil)
	ca, err := pki.LoadCA(os.Getenv(simMasterPKIEnv))
	if err != nil {
		return err
	}
	master := NewMaster(MasterConfig{Node: simNode(0), Store: mst, Git: git, Metrics: metrics, Keys: &Keys{CA: ca.Cert, CAKey: ca.Key}})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for ctx.Err() == nil {
			lead, err := mst.Campaign(ctx, masterPrefix, simNode(0), 5*time.Second)
			if err != nil {
				return
			}
			_ = master.Run(ctx, lead)
		}
	})
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	for {
		var req simRequest
		if err := dec.Decode(&req); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read a command: %w", err)
		}
		var rep simReply
		switch req.Op {
		case "commit":
			rep.SHA = git.commit(req.Parent, "sim", req.Files)
			master.SetHead(revision.Head{SHA: rep.SHA, SeenAt: time.Now()})
		case "stats":
			rep.Requests, rep.Keys = mst.Requests(), counterValue(metrics.StoreWrites)
		default:
			rep.Err = fmt.Sprintf("unknown command %q", req.Op)
		}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("reply: %w", err)
		}
	}
}

// simMaster is the master process as the benchmark sees it.
type simMaster struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	in     io.WriteCloser
	out    *json.Decoder
	stderr string // file
}

// startSimMaster starts the test binary again as the simulated cluster's master.
func startSimMaster(tb testing.TB, endpoints []string, pkiDir string) *simMaster {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	m := &simMaster{stderr: tb.TempDir() + "/master.log"}
	logf, err := os.Create(m.stderr)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	m.cmd = exec.Command(self)
	m.cmd.Env = append(os.Environ(), simMasterEnv+"="+strings.Join(endpoints, ","), simMasterPKIEnv+"="+pkiDir)
	m.cmd.Stderr = logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the benchmark
	if m.in, err = m.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	m.out = json.NewDecoder(bufio.NewReader(stdout))
	if err := m.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		m.in.Close() // the master stops at the end of its input
		done := make(chan error, 1)
		go func() { done <- m.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("the master process: %v\n%s", err, m.log())
			}
		case <-time.After(30 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
			tb.Errorf("the master process did not stop within 30 s of the end of its input")
		}
	})
	return m
}

func (m *simMaster) do(tb testing.TB, req simRequest) simReply {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var rep simReply
	err := json.NewEncoder(m.in).Encode(req)
	if err == nil {
		err = m.out.Decode(&rep)
	}
	if err == nil && rep.Err != "" {
		err = errors.New(rep.Err)
	}
	if err != nil {
		tb.Fatalf("the master process, %s: %v\n%s", req.Op, err, m.log())
	}
	return rep
}

// commit makes a commit of files on top of parent and hands it to the master.
func (m *simMaster) commit(tb testing.TB, parent string, files map[string]string) string {
	return m.do(tb, simRequest{Op: "commit", Parent: parent, Files: files}).SHA
}

func (m *simMaster) stats(tb testing.TB) simReply { return m.do(tb, simRequest{Op: "stats"}) }

// log is the end of the master process's standard error.
func (m *simMaster) log() string {
	data, _ := os.ReadFile(m.stderr)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// cpu is the CPU time the master process has used, user and system, of all its threads (from
// /proc/PID/stat, in the kernel's clock ticks of 10 ms).
func (m *simMaster) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: the fields count from after it.
	end := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[end+1:]))
	var ticks int64
	for _, i := range []int{11, 12} { // utime and stime, fields 14 and 15 of stat(5)
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			tb.Fatalf("/proc/PID/stat %q: %v", data, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// memory is the master process's proportional set size now and its peak resident set size,
// in MiB.
func (m *simMaster) memory(tb testing.TB) (pss, peakRSS float64) {
	tb.Helper()
	kib := func(file, field string) float64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", m.cmd.Process.Pid, file))
		if err != nil {
			tb.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err != nil {
					tb.Fatalf("%s %s: %v", file, line, err)
				}
				return v
			}
		}
		tb.Fatalf("no %s in /proc/PID/%s", field, file)
		return 0
	}
	return kib("smaps_rollup", "Pss") / 1024, kib("status", "VmHWM") / 1024
}
