package reconcile

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/*.txt scenarios")

// A scenario file is a sequence of commands, each followed by its expected
// output:
//
//	# comment
//	command arg arg
//	optional input lines (YAML for apply)
//	----
//	expected output
//	(blank line)
//
// Commands:
//
//	nodes n1 n2 cpu=2000m mem=4Gi [storage=10Gi] [labels=k=v,k=v] [taints=k=v:Effect,k:Effect]
//	                                                 add (or reset) ready nodes
//	node-down n1 / node-up n1                        the node stops / resumes reporting (not ready)
//	unregister n1 / register n1                      the node's registration expires / it registers again
//	remove n1                                        an unregistered node is removed (shoal node remove)
//	cordon n1 / uncordon n1 / drain n1
//	taint n1 k=v:Effect / untaint n1 k:Effect        add a taint (added now) / remove one
//	apply [unvalidated]                              input: the YAML of the new commit (all objects);
//	                                                 unvalidated lets fields Shoal refuses yet through
//	reconcile                                        plan, check invariants, apply, print the plan
//	node-report GLOB ready|notready|running|failed|exit=CODE|succeeded|restarted|stopped
//	delete-pod GLOB                                  remove pods by hand
//	tick DURATION                                    advance the clock
//	converge                                         reconcile and report everything ready until stable
//	pods                                             list the pods
//	conditions                                       the last plan's Deployment conditions
type block struct {
	cmd    string
	input  []string
	output []string
}

type segment struct {
	text  []string // comment and blank lines, when block is nil
	block *block
}

func parseScenario(data string) ([]segment, error) {
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	var segs []segment
	for i := 0; i < len(lines); {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			if len(segs) == 0 || segs[len(segs)-1].block != nil {
				segs = append(segs, segment{})
			}
			segs[len(segs)-1].text = append(segs[len(segs)-1].text, l)
			i++
			continue
		}
		b := &block{cmd: l}
		i++
		for i < len(lines) && lines[i] != "----" {
			b.input = append(b.input, lines[i])
			i++
		}
		if i == len(lines) {
			return nil, fmt.Errorf("command %q has no ---- line", b.cmd)
		}
		i++
		for i < len(lines) && lines[i] != "" {
			b.output = append(b.output, lines[i])
			i++
		}
		segs = append(segs, segment{block: b})
	}
	return segs, nil
}

func formatScenario(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.block == nil {
			for _, l := range s.text {
				b.WriteString(l + "\n")
			}
			continue
		}
		b.WriteString(s.block.cmd + "\n")
		for _, l := range s.block.input {
			b.WriteString(l + "\n")
		}
		b.WriteString("----\n")
		for _, l := range s.block.output {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			segs, err := parseScenario(string(data))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			s := newSim()
			for _, seg := range segs {
				b := seg.block
				if b == nil {
					continue
				}
				got := s.run(t, b)
				if *rewrite {
					b.output = strings.Split(got, "\n")
					continue
				}
				if want := strings.Join(b.output, "\n"); got != want {
					t.Errorf("%s: %s\n got:\n%s\nwant:\n%s", file, b.cmd, got, want)
				}
				if len(s.violations) > 0 {
					t.Fatalf("%s: %s: invariants broken:\n%s", file, b.cmd, strings.Join(s.violations, "\n"))
				}
			}
			if *rewrite {
				if err := os.WriteFile(file, []byte(formatScenario(segs)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// run executes one command and returns its output.
func (s *sim) run(t *testing.T, b *block) string {
	t.Helper()
	args := strings.Fields(b.cmd)
	if i := slices.Index(args, "#"); i >= 0 {
		args = args[:i]
	}
	cmd, args := args[0], args[1:]
	fail := func(format string, a ...any) string {
		t.Fatalf("%s: "+format, append([]any{b.cmd}, a...)...)
		return ""
	}
	nodeArg := func() *Node {
		if len(args) != 1 {
			fail("want one node name")
		}
		n := s.node(args[0])
		if n == nil {
			fail("no node %q", args[0])
		}
		return n
	}
	switch cmd {
	case "nodes":
		var names []string
		var alloc Resources
		var labels map[string]string
		var taints []Taint
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			switch {
			case !ok:
				names = append(names, a)
			case k == "cpu":
				q, err := manifests.ParseQuantity(v)
				if err != nil {
					fail("%v", err)
				}
				alloc.MilliCPU = q.MilliValue()
			case k == "mem":
				q, err := manifests.ParseQuantity(v)
				if err != nil {
					fail("%v", err)
				}
				alloc.Memory = q.Value()
			case k == "storage":
				q, err := manifests.ParseQuantity(v)
				if err != nil {
					fail("%v", err)
				}
				alloc.EphemeralStorage = q.Value()
			case k == "labels":
				labels = map[string]string{}
				for _, kv := range strings.Split(v, ",") {
					lk, lv, _ := strings.Cut(kv, "=")
					labels[lk] = lv
				}
			case k == "taints":
				taints = nil
				for _, spec := range strings.Split(v, ",") {
					taints = append(taints, Taint{Taint: parseTestTaint(t, spec), TimeAdded: s.now})
				}
			default:
				fail("unknown argument %q", a)
			}
		}
		for _, name := range names {
			n := Node{Name: name, Ready: true, Labels: labels, Allocatable: alloc, Taints: taints}
			if old := s.node(name); old != nil {
				*old = n
			} else {
				delete(s.unregistered, name)
				s.nodes = append(s.nodes, n)
			}
			s.known[name] = true
		}
		return "ok"
	case "unregister":
		n := nodeArg()
		s.unregistered[n.Name] = *n
		s.nodes = slices.DeleteFunc(s.nodes, func(x Node) bool { return x.Name == n.Name })
		return "ok"
	case "register":
		if len(args) != 1 {
			return fail("want one node name")
		}
		n, ok := s.unregistered[args[0]]
		if !ok {
			return fail("node %q is not unregistered", args[0])
		}
		delete(s.unregistered, n.Name)
		s.nodes = append(s.nodes, n)
		s.known[n.Name] = true
		return "ok"
	case "remove":
		if len(args) != 1 {
			return fail("want one node name")
		}
		if _, ok := s.unregistered[args[0]]; !ok {
			return fail("node %q is not unregistered: only a stopped node can be removed", args[0])
		}
		delete(s.unregistered, args[0])
		delete(s.known, args[0])
		return "ok"
	case "node-down":
		n := nodeArg()
		n.Ready, n.NotReadySince = false, s.now
		return "ok"
	case "node-up":
		n := nodeArg()
		n.Ready, n.NotReadySince = true, time.Time{}
		return "ok"
	case "cordon", "uncordon", "drain":
		n := nodeArg()
		n.Unschedulable, n.Draining = cmd != "uncordon", cmd == "drain"
		return "ok"
	case "taint", "untaint":
		if len(args) != 2 {
			return fail("want: %s NODE KEY[=VALUE]:EFFECT", cmd)
		}
		n := s.node(args[0])
		if n == nil {
			return fail("no node %q", args[0])
		}
		taint := parseTestTaint(t, args[1])
		n.Taints = slices.DeleteFunc(n.Taints, func(x Taint) bool { return x.Key == taint.Key && x.Effect == taint.Effect })
		if cmd == "taint" {
			n.Taints = append(n.Taints, Taint{Taint: taint, TimeAdded: s.now})
		}
		return "ok"
	case "apply":
		yaml := strings.Join(b.input, "\n")
		var err error
		switch {
		case len(args) == 0:
			err = s.apply(yaml)
		case len(args) == 1 && args[0] == "unvalidated":
			err = s.applyUnvalidated(yaml)
		default:
			return fail("want: apply [unvalidated]")
		}
		if err != nil {
			return fail("%v", err)
		}
		return "commit " + s.commit
	case "reconcile":
		before := slices.Clone(s.pods)
		plan := s.reconcile()
		return s.formatPlan(plan, before)
	case "node-report":
		if len(args) != 2 {
			return fail("want: node-report GLOB WHAT")
		}
		n, err := s.report(args[0], args[1])
		if err != nil {
			return fail("%v", err)
		}
		return fmt.Sprintf("%d pod(s)", n)
	case "delete-pod":
		if len(args) != 1 {
			return fail("want: delete-pod GLOB")
		}
		before := len(s.pods)
		s.pods = slices.DeleteFunc(s.pods, func(p Pod) bool {
			ok, _ := filepath.Match(args[0], p.Name)
			return ok
		})
		return fmt.Sprintf("%d pod(s)", before-len(s.pods))
	case "tick":
		if len(args) != 1 {
			return fail("want: tick DURATION")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil {
			return fail("%v", err)
		}
		s.now = s.now.Add(d)
		return "now " + s.now.Format(time.TimeOnly)
	case "converge":
		rounds := s.converge(100)
		if rounds < 0 {
			return fail("no convergence in 100 rounds:\n%s", s.formatPods())
		}
		var out []string
		out = append(out, "stable after "+strconv.Itoa(rounds)+" round(s)")
		for _, d := range s.last.Deployments {
			out = append(out, formatStatus(d))
		}
		for _, c := range s.last.StatefulSets {
			out = append(out, formatStatefulSet(c))
		}
		return strings.Join(out, "\n")
	case "usage":
		// usage GLOB cpu=QUANTITY mem=QUANTITY: the pods' nodes measured this, now.
		if len(args) < 2 {
			return fail("want: usage GLOB cpu=Q [mem=Q]")
		}
		u := PodUsage{Timestamp: s.now}
		for _, a := range args[1:] {
			k, v, _ := strings.Cut(a, "=")
			q, err := manifests.ParseQuantity(v)
			if err != nil {
				return fail("%v", err)
			}
			switch k {
			case "cpu":
				u.MilliCPU = q.MilliValue()
			case "mem":
				u.Memory = q.Value()
			default:
				return fail("unknown usage %q", k)
			}
		}
		if s.usage == nil {
			s.usage = map[string]PodUsage{}
		}
		n := 0
		for _, p := range s.pods {
			if ok, _ := filepath.Match(args[0], p.Name); ok {
				s.usage[p.Name] = u
				n++
			}
		}
		return fmt.Sprintf("%d pod(s)", n)
	case "pods":
		return s.formatPods()
	case "nodes-usage":
		return s.formatUsage()
	case "conditions":
		var out []string
		for _, d := range s.last.Deployments {
			for _, c := range d.Conditions {
				out = append(out, fmt.Sprintf("%s/%s %s=%s %s: %s (transition %s, update %s)", d.Namespace, d.Name, c.Type, c.Status, c.Reason, c.Message,
					c.LastTransitionTime.Format(time.TimeOnly), c.LastUpdateTime.Format(time.TimeOnly)))
			}
		}
		if len(out) == 0 {
			return "no deployments"
		}
		return strings.Join(out, "\n")
	}
	return fail("unknown command %q", cmd)
}

// formatUsage lists, per node, how many pods it runs.
func (s *sim) formatUsage() string {
	var out []string
	for _, n := range s.nodes {
		count := 0
		for _, p := range s.pods {
			if p.Node == n.Name && !p.Terminating {
				count++
			}
		}
		out = append(out, fmt.Sprintf("%s: %d pod(s)", n.Name, count))
	}
	return strings.Join(out, "\n")
}

// parseTestTaint parses KEY[=VALUE]:EFFECT.
func parseTestTaint(t *testing.T, s string) manifests.Taint {
	t.Helper()
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		t.Fatalf("taint %q: want KEY[=VALUE]:EFFECT", s)
	}
	k, v, _ := strings.Cut(kv, "=")
	return manifests.Taint{Key: k, Value: v, Effect: manifests.TaintEffect(effect)}
}
