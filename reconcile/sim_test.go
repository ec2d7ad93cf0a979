package reconcile

import (
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// seqIDs hands out UIDs and name suffixes from counters.
type seqIDs struct{ uids, suffixes int }

func (s *seqIDs) NewUID() string {
	s.uids++
	return fmt.Sprintf("u%d", s.uids)
}

func (s *seqIDs) Suffix() string {
	s.suffixes++
	n := s.suffixes
	b := make([]byte, 5)
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = SuffixAlphabet[n%len(SuffixAlphabet)]
		n /= len(SuffixAlphabet)
	}
	return string(b)
}

// sim is a small cluster that applies plans the way the master does and
// lets tests play the nodes.
type sim struct {
	now   time.Time
	grace time.Duration
	// nodes are the registered nodes; unregistered holds the nodes that
	// stopped registering, to register again as they were; known names
	// the nodes that joined and were not removed.
	nodes        []Node
	unregistered map[string]Node
	known        map[string]bool
	pods         []Pod
	objects      []manifests.Object
	commit       string
	commits      int
	ids          seqIDs
	last         Plan
	// claims are the claims before the last plan, to print what it changed.
	claims map[string]ClaimState
	// violations collects broken rolling-update invariants.
	violations []string
	// usage is what the nodes measured of the pods, by pod name; every
	// pod of a name gets it, sampled at the time of the command.
	usage map[string]PodUsage
}

func newSim() *sim {
	return &sim{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), unregistered: map[string]Node{}, known: map[string]bool{}}
}

func (s *sim) state() State {
	conds := map[string][]manifests.DeploymentCondition{}
	for _, d := range s.last.Deployments {
		conds[d.Namespace+"/"+d.Name] = d.Conditions
	}
	jobs := map[string]JobStatus{}
	for _, j := range s.last.Jobs {
		jobs[j.Namespace+"/"+j.Name] = j
	}
	cronJobs := map[string]CronJobStatus{}
	for _, c := range s.last.CronJobs {
		cronJobs[c.Namespace+"/"+c.Name] = c
	}
	sets := map[string]StatefulSetStatus{}
	for _, c := range s.last.StatefulSets {
		sets[c.Namespace+"/"+c.Name] = c
	}
	hpas := map[string]HPAStatus{}
	for _, h := range s.last.Autoscalers {
		hpas[h.Namespace+"/"+h.Name] = h
	}
	metrics := map[string]PodUsage{}
	for _, p := range s.pods {
		if u, ok := s.usage[p.Name]; ok {
			metrics[p.UID] = u
		}
	}
	return State{
		StatefulSets: sets, Autoscalers: hpas, PodMetrics: metrics,
		Objects: s.objects, Commit: s.commit, Pods: slices.Clone(s.pods), Nodes: slices.Clone(s.nodes),
		Known: maps.Clone(s.known), Lost: s.last.Lost,
		Now: s.now, NodeLostGrace: s.grace, DeploymentConditions: conds, Jobs: jobs, CronJobs: cronJobs,
		Claims: claimMap(s.last.Claims),
	}
}

func (s *sim) node(name string) *Node {
	for i := range s.nodes {
		if s.nodes[i].Name == name {
			return &s.nodes[i]
		}
	}
	return nil
}

func (s *sim) podByUID(uid string) *Pod {
	for i := range s.pods {
		if s.pods[i].UID == uid {
			return &s.pods[i]
		}
	}
	return nil
}

func (s *sim) apply(yaml string) error {
	objs, errs := manifests.DecodeFile("input.yaml", []byte(yaml), manifests.LoadOptions{})
	if len(errs) > 0 {
		return errs
	}
	s.commits++
	s.commit = fmt.Sprintf("c%d", s.commits)
	s.objects = objs
	return nil
}

// applyUnvalidated is apply for commits that use fields Shoal does not
// accept yet ("not by Shoal yet"), to test what the scheduler does with
// them; other errors still fail.
func (s *sim) applyUnvalidated(yaml string) error {
	objs, err := decodeUnvalidated(yaml)
	if err != nil {
		return err
	}
	s.commits++
	s.commit = fmt.Sprintf("c%d", s.commits)
	s.objects = objs
	return nil
}

// decodeUnvalidated decodes objects, letting through the fields that Shoal
// refuses as "not by Shoal yet".
func decodeUnvalidated(yaml string) ([]manifests.Object, error) {
	objs, errs := manifests.DecodeFile("input.yaml", []byte(yaml), manifests.LoadOptions{})
	for _, e := range errs {
		if !strings.Contains(e.Error(), "not by Shoal yet") {
			return nil, errs
		}
	}
	return objs, nil
}

// reconcile plans, checks the invariants and applies the plan.
func (s *sim) reconcile() Plan {
	st := s.state()
	plan := Reconcile(st, &s.ids)
	s.checkInvariants(st, plan)
	s.applyPlan(plan)
	s.claims = st.Claims
	s.last = plan
	s.checkClaims(plan)
	return plan
}

func claimMap(list []ClaimState) map[string]ClaimState {
	m := make(map[string]ClaimState, len(list))
	for _, c := range list {
		m[ClaimKey(c.Namespace, c.Name)] = c
	}
	return m
}

// checkClaims asserts that every pod placed on a node that uses a bound
// claim is on the claim's node, and that a ReadWriteOncePod claim has one
// running pod at most. Pods left on a removed node are not counted: their
// claims were made anew.
func (s *sim) checkClaims(plan Plan) {
	claims := claimMap(plan.Claims)
	users := map[string]int{}
	for _, p := range s.pods {
		if _, lost := plan.Lost[p.Node]; p.Node == "" || p.Spec == nil || p.Terminating || lost && !s.known[p.Node] {
			continue
		}
		for _, name := range PodClaims(&p.Spec.Spec) {
			key := ClaimKey(p.Namespace, name)
			c, ok := claims[key]
			switch {
			case !ok:
				s.violations = append(s.violations, fmt.Sprintf("pod %s/%s on %s uses claim %s, which the plan does not have", p.Namespace, p.Name, p.Node, key))
			case c.Node != p.Node:
				s.violations = append(s.violations, fmt.Sprintf("pod %s/%s on %s uses claim %s of node %q", p.Namespace, p.Name, p.Node, key, c.Node))
			}
			users[key]++
			if ok && c.ReadWriteOncePod() && users[key] > 1 {
				s.violations = append(s.violations, fmt.Sprintf("ReadWriteOncePod claim %s has %d pods", key, users[key]))
			}
		}
	}
}

func (s *sim) applyPlan(plan Plan) {
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case CreatePod:
			s.pods = append(s.pods, a.Pod)
		case DeletePod:
			if a.Force {
				s.pods = slices.DeleteFunc(s.pods, func(p Pod) bool { return p.UID == a.UID })
			} else if p := s.podByUID(a.UID); p != nil {
				p.Terminating, p.DeleteReason = true, a.Reason
			}
		case BindPod:
			if p := s.podByUID(a.UID); p != nil {
				p.Node = a.Node
				p.Reason, p.Message = "", ""
			}
		case SetPodStatus:
			if p := s.podByUID(a.UID); p != nil {
				p.Phase, p.Reason, p.Message = a.Phase, a.Reason, a.Message
			}
		}
	}
	for _, pp := range plan.Pending {
		if p := s.podByUID(pp.UID); p != nil {
			p.Reason, p.Message = "Unschedulable", pp.Reason
		}
	}
}

// available is the tests' own definition of an available pod.
func (s *sim) available(p *Pod, minReady time.Duration) bool {
	if p.Terminating || !p.Ready || p.Node == "" {
		return false
	}
	n := s.node(p.Node)
	if n == nil || !n.Ready {
		return false
	}
	return s.now.Sub(p.ReadySince) >= minReady
}

// checkInvariants asserts the rolling-update guarantees for every
// RollingUpdate Deployment: a plan that creates pods leaves at most
// replicas+maxSurge pods that are not terminating (as Kubernetes counts a
// ReplicaSet's replicas), and a plan never
// takes the available pods below replicas-maxUnavailable (nor below what
// was available before, when that was already lower). Evictions for
// NoExecute taints are involuntary and bound by no budget.
func (s *sim) checkInvariants(st State, plan Plan) {
	deleted := map[string]DeletePod{}
	created := map[string]int{}
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case DeletePod:
			deleted[a.UID] = a
		case CreatePod:
			created[a.Pod.Owner]++
		}
	}
	s.checkJobs(st, plan, deleted)
	s.checkStatefulSets(st, plan)
	for _, o := range st.Objects {
		d, ok := o.(*manifests.Deployment)
		if !ok || d.Spec.Paused || d.Spec.Strategy.Type != manifests.RollingUpdateDeploymentStrategyType {
			continue
		}
		owner := DeploymentOwner(d.Namespace, d.Name)
		replicas := int(*d.Spec.Replicas)
		for _, h := range plan.Autoscalers {
			if h.Target == owner && h.DesiredReplicas > 0 {
				dc := *d
				dc.Spec.Replicas = &h.DesiredReplicas
				d = &dc
				replicas = int(h.DesiredReplicas)
			}
		}
		surge, unavail := RolloutBounds(d)
		minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second
		total, availBefore, availAfter := created[owner], 0, 0
		for i := range st.Pods {
			p := &st.Pods[i]
			if p.Owner != owner {
				continue
			}
			del, isDel := deleted[p.UID]
			if !isDel && !p.Terminating {
				total++
			}
			if isDel && (del.Reason == DeleteTaintEviction || del.Reason == DeleteDrained) {
				// Involuntary as a lost node, or asked for by a drain (kubectl drain evicts
				// every pod at once when no disruption budget applies): not the rollout's budget.
				continue
			}
			if s.available(p, minReady) {
				availBefore++
				if !isDel {
					availAfter++
				}
			}
		}
		if created[owner] > 0 && total > replicas+surge {
			s.violations = append(s.violations, fmt.Sprintf("%s at %s: %d pods after creating %d, more than replicas %d + maxSurge %d",
				owner, s.now.Format(time.TimeOnly), total, created[owner], replicas, surge))
		}
		if floor := min(availBefore, replicas-unavail); availAfter < floor {
			s.violations = append(s.violations, fmt.Sprintf("%s at %s: %d available pods left, fewer than %d (replicas %d - maxUnavailable %d, %d available before)",
				owner, s.now.Format(time.TimeOnly), availAfter, floor, replicas, unavail, availBefore))
		}
	}
}

// checkStatefulSets asserts that a StatefulSet's pod is made only when no
// pod of its name exists at all (never two pods with one ordinal, not even
// one terminating on a lost node), and, for OrderedReady, only when every
// lower ordinal has a Running and Ready pod.
func (s *sim) checkStatefulSets(st State, plan Plan) {
	byName := map[string]*Pod{}
	for i := range st.Pods {
		byName[st.Pods[i].Namespace+"/"+st.Pods[i].Name] = &st.Pods[i]
	}
	sets := map[string]*manifests.StatefulSet{}
	for _, o := range st.Objects {
		if set, ok := o.(*manifests.StatefulSet); ok {
			sets[StatefulSetOwner(set.Namespace, set.Name)] = set
		}
	}
	for _, a := range plan.Actions {
		c, ok := a.(CreatePod)
		if !ok || !isStatefulSetPod(&c.Pod) {
			continue
		}
		if old := byName[c.Pod.Namespace+"/"+c.Pod.Name]; old != nil {
			s.violations = append(s.violations, fmt.Sprintf("%s at %s: creates %s while pod %s of that name exists (terminating=%t, node %q)",
				c.Pod.Owner, s.now.Format(time.TimeOnly), c.Pod.Name, old.UID, old.Terminating, old.Node))
		}
		byName[c.Pod.Namespace+"/"+c.Pod.Name] = &c.Pod
		set := sets[c.Pod.Owner]
		if set == nil || set.Spec.PodManagementPolicy != manifests.OrderedReadyPodManagement {
			continue
		}
		for ord := set.StartOrdinal(); ord < ordinalOf(set.Name, c.Pod.Name); ord++ {
			if prev := byName[set.Namespace+"/"+set.PodName(ord)]; prev == nil || !prev.Ready || prev.Phase != manifests.PodRunning || prev.Terminating {
				s.violations = append(s.violations, fmt.Sprintf("%s at %s: creates %s before %s is Running and Ready (OrderedReady)",
					c.Pod.Owner, s.now.Format(time.TimeOnly), c.Pod.Name, set.PodName(ord)))
				break
			}
		}
	}
}

// checkJobs asserts that a plan that creates a Job's pods leaves at most parallelism of them
// running, and for an Indexed Job at most one per index.
func (s *sim) checkJobs(st State, plan Plan, deleted map[string]DeletePod) {
	running := map[string][]*manifests.Pod{}
	creates := map[string]bool{}
	for i := range st.Pods {
		p := &st.Pods[i]
		if _, del := deleted[p.UID]; !del && !p.Terminating && p.Phase != manifests.PodSucceeded && p.Phase != manifests.PodFailed {
			running[p.Owner] = append(running[p.Owner], p.Spec)
		}
	}
	for _, a := range plan.Actions {
		if c, ok := a.(CreatePod); ok {
			running[c.Pod.Owner] = append(running[c.Pod.Owner], c.Pod.Spec)
			creates[c.Pod.Owner] = true
		}
	}
	for _, o := range st.Objects {
		j, ok := o.(*manifests.Job)
		if !ok {
			continue
		}
		owner := JobOwner(j.Namespace, j.Name)
		if !creates[owner] {
			continue
		}
		if n := len(running[owner]); n > int(*j.Spec.Parallelism) {
			s.violations = append(s.violations, fmt.Sprintf("%s at %s: %d pods running after creating, more than parallelism %d",
				owner, s.now.Format(time.TimeOnly), n, *j.Spec.Parallelism))
		}
		seen := map[string]bool{}
		for _, pod := range running[owner] {
			if i, ok := pod.Annotations[manifests.JobCompletionIndexKey]; ok {
				if seen[i] {
					s.violations = append(s.violations, fmt.Sprintf("%s at %s: two running pods of index %s", owner, s.now.Format(time.TimeOnly), i))
				}
				seen[i] = true
			}
		}
	}
}

// report plays a node reporting on the pods whose names match glob.
func (s *sim) report(glob, what string) (int, error) {
	n := 0
	var keep []Pod
	for i := range s.pods {
		p := &s.pods[i]
		if ok, err := path.Match(glob, p.Name); err != nil {
			return 0, err
		} else if !ok {
			keep = append(keep, *p)
			continue
		}
		if what == "stopped" {
			_, silent := s.unregistered[p.Node]
			if nd := s.node(p.Node); p.Terminating && !silent && (nd == nil || nd.Ready) {
				n++
				continue // gone
			}
			keep = append(keep, *p)
			continue
		}
		if nd := s.node(p.Node); nd == nil || !nd.Ready || p.Terminating {
			keep = append(keep, *p) // a node that is down reports nothing
			continue
		}
		n++
		switch what {
		case "ready":
			if !p.Ready {
				p.Ready, p.ReadySince = true, s.now
			}
			p.Phase = manifests.PodRunning
		case "notready":
			p.Ready, p.ReadySince = false, time.Time{}
		case "running":
			p.Phase = manifests.PodRunning
		case "failed", "succeeded":
			p.Phase, p.Ready, p.ReadySince = manifests.PodFailed, false, time.Time{}
			code := int32(1)
			if what == "succeeded" {
				p.Phase, code = manifests.PodSucceeded, 0
			}
			p.Status = s.exited(p, code)
		case "restarted":
			p.Restarts++
		default:
			code, ok := strings.CutPrefix(what, "exit=")
			c, err := strconv.Atoi(code)
			if !ok || err != nil {
				return 0, fmt.Errorf("unknown report %q: want ready, notready, running, failed, exit=CODE, succeeded, restarted or stopped", what)
			}
			p.Phase, p.Ready, p.ReadySince = manifests.PodFailed, false, time.Time{}
			p.Status = s.exited(p, int32(c))
		}
		keep = append(keep, *p)
	}
	s.pods = keep
	return n, nil
}

// exited is the status of a pod whose containers all exited with code.
func (s *sim) exited(p *Pod, code int32) *manifests.PodStatus {
	st := &manifests.PodStatus{Phase: p.Phase}
	if p.Spec != nil {
		for _, c := range p.Spec.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, manifests.ContainerStatus{Name: c.Name,
				State: manifests.ContainerState{Terminated: &manifests.ContainerStateTerminated{ExitCode: code, FinishedAt: manifests.NewTime(s.now)}}})
		}
	}
	return st
}

// converge reconciles, reports every bound pod ready and every terminating
// pod stopped, and advances a second, until a plan changes nothing.
func (s *sim) converge(maxRounds int) int {
	for round := 1; round <= maxRounds; round++ {
		plan := s.reconcile()
		// Autoscalers ask to be evaluated again every HPASyncPeriod: that
		// is no change in itself.
		requeue := plan.RequeueAfter > 0 && len(plan.Autoscalers) == 0
		if len(plan.Actions) == 0 && !requeue && !s.anyTerminating() && s.allReady() {
			return round
		}
		_, _ = s.report("*", "ready")
		_, _ = s.report("*", "stopped")
		s.now = s.now.Add(time.Second)
	}
	return -1
}

func (s *sim) anyTerminating() bool {
	return slices.ContainsFunc(s.pods, func(p Pod) bool { return p.Terminating })
}

func (s *sim) allReady() bool {
	return !slices.ContainsFunc(s.pods, func(p Pod) bool {
		if p.Node == "" || p.Ready {
			return false
		}
		n := s.node(p.Node)
		return n != nil && n.Ready
	})
}

// formatPlan renders a plan one line per item, in plan order.
func (s *sim) formatPlan(plan Plan, before []Pod) string {
	var b strings.Builder
	name := func(uid string) string {
		for _, list := range [][]Pod{before, s.pods} {
			for _, p := range list {
				if p.UID == uid {
					return p.Namespace + "/" + p.Name
				}
			}
		}
		return "?"
	}
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case CreatePod:
			node := a.Pod.Node
			if node == "" {
				node = "<none>"
			}
			fmt.Fprintf(&b, "create %s/%s uid=%s node=%s\n", a.Pod.Namespace, a.Pod.Name, a.Pod.UID, node)
		case DeletePod:
			force := ""
			if a.Force {
				force = " force"
			}
			fmt.Fprintf(&b, "delete %s/%s reason=%s%s\n", a.Namespace, a.Name, a.Reason, force)
		case BindPod:
			fmt.Fprintf(&b, "bind %s node=%s\n", name(a.UID), a.Node)
		case SetPodStatus:
			fmt.Fprintf(&b, "set-status %s phase=%s reason=%s\n", name(a.UID), a.Phase, a.Reason)
		}
	}
	for _, p := range plan.Pending {
		fmt.Fprintf(&b, "pending %s/%s: %s\n", p.Namespace, p.Name, p.Reason)
	}
	for _, e := range plan.Events {
		fmt.Fprintf(&b, "event %s %s %s: %s\n", e.Type, e.Object, e.Reason, e.Message)
	}
	for _, d := range plan.Deployments {
		b.WriteString(formatStatus(d) + "\n")
	}
	for _, j := range plan.Jobs {
		b.WriteString(formatJob(j) + "\n")
	}
	for _, d := range plan.DaemonSets {
		fmt.Fprintf(&b, "daemonset %s/%s: desired=%d current=%d updated=%d ready=%d available=%d misscheduled=%d complete=%t\n",
			d.Namespace, d.Name, d.DesiredNumberScheduled, d.CurrentNumberScheduled, d.UpdatedNumberScheduled, d.NumberReady,
			d.NumberAvailable, d.NumberMisscheduled, d.Complete)
	}
	for _, c := range plan.CronJobs {
		b.WriteString(formatCronJob(c) + "\n")
	}
	for _, c := range plan.StatefulSets {
		b.WriteString(formatStatefulSet(c) + "\n")
	}
	for _, h := range plan.Autoscalers {
		b.WriteString(formatHPA(h) + "\n")
	}
	for _, c := range plan.Claims {
		if prev, ok := s.claims[ClaimKey(c.Namespace, c.Name)]; ok && reflect.DeepEqual(prev, c) {
			continue
		}
		deleting := ""
		if c.Deleting {
			deleting = " deleting"
		}
		owner := ""
		if c.Owner != "" {
			owner = " owner=" + c.Owner
		}
		fmt.Fprintf(&b, "claim %s/%s uid=%s %s node=%s capacity=%d policy=%s%s%s\n", c.Namespace, c.Name, c.UID, c.Phase(), c.Node, c.Capacity, c.ReclaimPolicy, owner, deleting)
	}
	for _, c := range plan.ReleasedClaims {
		fmt.Fprintf(&b, "released %s/%s uid=%s node=%s policy=%s\n", c.Namespace, c.Name, c.UID, c.Node, c.ReclaimPolicy)
	}
	for _, c := range plan.NodeChanges {
		fmt.Fprintf(&b, "node %s %s since %s\n", c.Node, c.What, formatSince(c.Since))
	}
	for _, name := range slices.Sorted(maps.Keys(plan.Lost)) {
		fmt.Fprintf(&b, "lost %s since %s\n", name, formatSince(plan.Lost[name]))
	}
	if plan.RequeueAfter > 0 {
		fmt.Fprintf(&b, "requeue after %s\n", plan.RequeueAfter)
	}
	if b.Len() == 0 {
		return "nothing to do"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func formatHPA(h HPAStatus) string {
	var metrics []string
	for _, m := range h.CurrentMetrics {
		if r := m.Resource; r != nil {
			v := string(r.Name) + "=" + r.Current.AverageValue.String()
			if r.Current.AverageUtilization != nil {
				v += fmt.Sprintf("(%d%%)", *r.Current.AverageUtilization)
			}
			metrics = append(metrics, v)
		}
	}
	var conds []string
	for _, c := range h.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	return fmt.Sprintf("hpa %s/%s: current=%d desired=%d metrics=[%s] %s", h.Namespace, h.Name, h.CurrentReplicas, h.DesiredReplicas,
		strings.Join(metrics, " "), strings.Join(conds, " "))
}

func formatStatefulSet(c StatefulSetStatus) string {
	return fmt.Sprintf("statefulset %s/%s: replicas=%d ready=%d available=%d current=%d updated=%d revisions=%s/%s complete=%t",
		c.Namespace, c.Name, c.Replicas, c.ReadyReplicas, c.AvailableReplicas, c.CurrentReplicas, c.UpdatedReplicas,
		c.CurrentRevision, c.UpdateRevision, c.Complete)
}

// formatSince renders a lost node's time: "removal" for the zero time.
func formatSince(t time.Time) string {
	if t.IsZero() {
		return "removal"
	}
	return t.Format(time.TimeOnly)
}

func formatStatus(d DeploymentStatus) string {
	return fmt.Sprintf("deployment %s/%s: replicas=%d updated=%d ready=%d available=%d unavailable=%d complete=%t",
		d.Namespace, d.Name, d.Replicas, d.UpdatedReplicas, d.ReadyReplicas, d.AvailableReplicas, d.UnavailableReplicas, d.Complete)
}

func formatJob(j JobStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s/%s: active=%d ready=%d terminating=%d succeeded=%d failed=%d", j.Namespace, j.Name, j.Active, deref(j.Ready), deref(j.Terminating), j.Succeeded, j.Failed)
	if j.CompletedIndexes != "" {
		fmt.Fprintf(&b, " completed=%s", j.CompletedIndexes)
	}
	for _, c := range j.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
		if c.Reason != "" {
			fmt.Fprintf(&b, "(%s)", c.Reason)
		}
	}
	if j.StartTime != nil {
		fmt.Fprintf(&b, " start=%s", j.StartTime.Format(time.TimeOnly))
	}
	if j.CompletionTime != nil {
		fmt.Fprintf(&b, " completion=%s", j.CompletionTime.Format(time.TimeOnly))
	}
	if j.Expired {
		b.WriteString(" expired")
	}
	return b.String()
}

func formatCronJob(c CronJobStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cronjob %s/%s: active=%d", c.Namespace, c.Name, len(c.Active))
	var runs []string
	for _, r := range c.Runs {
		runs = append(runs, r.Job.Name)
	}
	fmt.Fprintf(&b, " runs=[%s]", strings.Join(runs, " "))
	if c.LastScheduleTime != nil {
		fmt.Fprintf(&b, " last-schedule=%s", c.LastScheduleTime.UTC().Format(time.TimeOnly))
	}
	if c.LastSuccessfulTime != nil {
		fmt.Fprintf(&b, " last-success=%s", c.LastSuccessfulTime.UTC().Format(time.TimeOnly))
	}
	return b.String()
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func (s *sim) formatPods() string {
	pods := slices.Clone(s.pods)
	slices.SortFunc(pods, func(a, b Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	if len(pods) == 0 {
		return "no pods"
	}
	var b strings.Builder
	for _, p := range pods {
		node := p.Node
		if node == "" {
			node = "<none>"
		}
		fmt.Fprintf(&b, "%s/%s node=%s phase=%s ready=%t", p.Namespace, p.Name, node, p.Phase, p.Ready)
		if p.Terminating {
			b.WriteString(" terminating")
		}
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}
