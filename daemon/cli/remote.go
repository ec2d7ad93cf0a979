package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// clientFlags are the flags of every command that talks to a daemon.
type clientFlags struct {
	socket, server, token, caFile string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.socket, "socket", "", "the daemon's unix socket (default $SHOAL_SOCKET, then "+client.DefaultSocket+")")
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "a daemon's TCP API, https://HOST:PORT (instead of the socket)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "bearer token for --server (default $SHOAL_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.caFile, "ca-file", "", "CA certificate that signed the --server certificate")
}

func (f *clientFlags) client() (*client.Client, error) {
	tok := f.token
	if tok == "" {
		tok = os.Getenv("SHOAL_TOKEN")
	}
	return client.New(client.Config{Socket: f.socket, Server: f.server, Token: tok, CAFile: f.caFile})
}

// fetch decodes the daemon's JSON answer to GET path.
func fetch[T any](cmd *cobra.Command, cf *clientFlags, path string, q url.Values) (T, error) {
	var v T
	c, err := cf.client()
	if err != nil {
		return v, err
	}
	err = c.Get(cmd.Context(), path, q, &v)
	return v, err
}

func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	if sha == "" {
		return "-"
	}
	return sha
}

func newStatusCmd(s Streams, cf *clientFlags) *cobra.Command {
	var watch bool
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: nodes, the commit each has converged to, Deployments, rejections",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			draw := func() error {
				st, err := fetch[cluster.Status](cmd, cf, "/v1/status", nil)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(s.Out, st)
				}
				printStatus(s.Out, st, time.Now())
				return nil
			}
			if !watch {
				return draw()
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if isTerminal(s.Out) {
					fmt.Fprint(s.Out, "\033[H\033[2J")
				} else {
					fmt.Fprintln(s.Out, "---", time.Now().UTC().Format(time.RFC3339))
				}
				if err := draw(); err != nil {
					fmt.Fprintln(s.Err, "shoal:", err)
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw every second until interrupted")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the raw status")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st cluster.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	master := st.Master
	if master == "" {
		master = "<none elected>"
	}
	fmt.Fprintf(tw, "Master:\t%s\n", master)
	if a := st.Applied; a != nil {
		fmt.Fprintf(tw, "Applied commit:\t%s %q by %s, seen %s ago\n", short(a.SHA), a.Message, a.Author, age(a.SeenAt, now))
	} else {
		fmt.Fprintf(tw, "Applied commit:\t<none yet>\n")
	}
	if st.Converged != "" {
		fmt.Fprintf(tw, "Converged commit:\t%s\n", short(st.Converged))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tMASTER\tSTORE\tCONVERGED\tPODS")
	for _, n := range st.Nodes {
		m := ""
		if n.Master {
			m = "*"
		}
		ready := "True"
		if !n.Ready {
			ready = "False"
		}
		if n.Unschedulable {
			ready += ",SchedulingDisabled"
		}
		storeRole := n.Store
		if n.Name == st.StoreLeader && storeRole == "member" {
			storeRole = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\n", n.Name, ready, m, storeRole, short(n.Converged), n.PodsRunning, n.PodsDesired)
	}
	tw.Flush()
	if len(st.Deployments) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPLOYMENT\tREADY\tUP-TO-DATE\tAVAILABLE\tROLLOUT")
		for _, d := range st.Deployments {
			roll := "in progress"
			if d.Complete {
				roll = "complete"
			}
			fmt.Fprintf(tw, "%s/%s\t%d/%d\t%d\t%d\t%s\n", d.Namespace, d.Name, d.Ready, d.Desired, d.Updated, d.Available, roll)
		}
		tw.Flush()
	}
	if st.Pending > 0 {
		fmt.Fprintf(w, "\n%d pod(s) cannot be scheduled: see shoal get pods and shoal events\n", st.Pending)
	}
	if a := st.Applied; a != nil && len(a.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings of the applied commit %s:\n", short(a.SHA))
		for _, warning := range a.Warnings {
			fmt.Fprintf(w, "  %s\n", warning)
		}
	}
	if r := st.LastRejected; r != nil {
		fmt.Fprintf(w, "\nLast rejected commit: %s %q (seen %s ago)\n", short(r.SHA), r.Message, age(r.SeenAt, now))
		for _, reason := range r.Reasons {
			fmt.Fprintf(w, "  %s\n", reason)
		}
	}
}

func newGetCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, selector, output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get pods|deployments|services|configmaps|secrets|namespaces|nodes [NAME]",
		Short: "List objects with their status, as kubectl get does",
		Example: `  shoal get pods
  shoal get pods -A -o wide
  shoal get deploy -l app=web -o json | jq '.items[].status'`,
		Args: cobraArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := api.KindOf(args[0])
			if !ok {
				return usageErrorf("unknown resource %q: use pods, deployments, services, configmaps, secrets, namespaces or nodes", args[0])
			}
			switch output {
			case "", "wide", "json", "yaml", "name":
			default:
				return usageErrorf("unknown output format %q: use wide, json, yaml or name", output)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if namespace != "" {
				q.Set("namespace", namespace)
			}
			if all {
				q.Set("all", "true")
			}
			if selector != "" {
				q.Set("selector", selector)
			}
			if len(args) == 2 {
				q.Set("name", args[1])
			}
			raw, err := c.GetRaw(cmd.Context(), "/v1/"+args[0], q)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				_, err = s.Out.Write(raw)
				return err
			case "yaml":
				y, err := yaml.JSONToYAML(raw)
				if err != nil {
					return err
				}
				_, err = s.Out.Write(y)
				return err
			}
			var list struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("decode the daemon's answer: %w", err)
			}
			if len(list.Items) == 0 {
				where := "in namespace " + namespace
				if namespace == "" {
					where = "in namespace default"
				}
				if all || kind == "Node" || kind == "Namespace" {
					where = ""
				}
				fmt.Fprintf(s.Err, "No resources found %s\n", where)
				return nil
			}
			return printTable(s.Out, kind, list.Items, output, all, time.Now())
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, as kubectl -l: app=web,tier!=db,env in (a,b)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "wide, json, yaml or name")
	return cmd
}

// listItem holds the fields the tables show, for every kind.
type listItem struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		Labels            map[string]string `json:"labels"`
		Annotations       map[string]string `json:"annotations"`
		CreationTimestamp time.Time         `json:"creationTimestamp"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName      string            `json:"nodeName"`
		Replicas      *int32            `json:"replicas"`
		Type          string            `json:"type"`
		ClusterIP     string            `json:"clusterIP"`
		Selector      json.RawMessage   `json:"selector"`
		Unschedulable bool              `json:"unschedulable"`
		PodCIDR       string            `json:"podCIDR"`
		Taints        []manifests.Taint `json:"taints"`
		Ports         []json.RawMessage `json:"ports"`
		Containers    []struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		} `json:"containers"`
		Template struct {
			Spec struct {
				Containers []struct {
					Name  string `json:"name"`
					Image string `json:"image"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Data   map[string]any `json:"data"`
	Status struct {
		Phase             string `json:"phase"`
		Reason            string `json:"reason"`
		PodIP             string `json:"podIP"`
		ReadyReplicas     int32  `json:"readyReplicas"`
		UpdatedReplicas   int32  `json:"updatedReplicas"`
		AvailableReplicas int32  `json:"availableReplicas"`
		ContainerStatuses []struct {
			Ready        bool  `json:"ready"`
			RestartCount int32 `json:"restartCount"`
			State        struct {
				Waiting    *struct{ Reason string } `json:"waiting"`
				Terminated *struct {
					Reason   string
					ExitCode int32
				} `json:"terminated"`
			} `json:"state"`
		} `json:"containerStatuses"`
		InitContainerStatuses []struct {
			State struct {
				Waiting    *struct{ Reason string } `json:"waiting"`
				Terminated *struct {
					Reason   string
					ExitCode int32
				} `json:"terminated"`
			} `json:"state"`
		} `json:"initContainerStatuses"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		Addresses []struct {
			Address string `json:"address"`
		} `json:"addresses"`
		NodeInfo struct {
			KubeletVersion string `json:"kubeletVersion"`
		} `json:"nodeInfo"`
		LoadBalancer manifests.LoadBalancerStatus `json:"loadBalancer"`
	} `json:"status"`
}

// externalIPText is what kubectl prints in a Service's EXTERNAL-IP column: the ingress
// addresses of a LoadBalancer, <pending> while it has none, <none> for other types.
func externalIPText(it *listItem) string {
	var ips []string
	for _, in := range it.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			ips = append(ips, in.IP)
		} else if in.Hostname != "" {
			ips = append(ips, in.Hostname)
		}
	}
	switch {
	case len(ips) > 0:
		return strings.Join(ips, ",")
	case it.Spec.Type == string(manifests.ServiceTypeLoadBalancer):
		return "<pending>"
	default:
		return "<none>"
	}
}

// podStatusText is what kubectl prints in the STATUS column.
func podStatusText(it *listItem) string {
	if it.Metadata.DeletionTimestamp != nil {
		return "Terminating"
	}
	for i, ic := range it.Status.InitContainerStatuses {
		if t := ic.State.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		if w := ic.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" {
			return "Init:" + w.Reason
		}
		return fmt.Sprintf("Init:%d/%d", i, len(it.Status.InitContainerStatuses))
	}
	reason := it.Status.Phase
	if it.Status.Reason != "" && it.Status.Reason != "NotReported" {
		reason = it.Status.Reason
	}
	for _, cs := range it.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			reason = w.Reason
		} else if t := cs.State.Terminated; t != nil && t.Reason != "" && reason == "Running" {
			reason = t.Reason
		}
	}
	return reason
}

func printTable(w io.Writer, kind string, raw []json.RawMessage, output string, all bool, now time.Time) error {
	items := make([]listItem, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &items[i]); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
	}
	if output == "name" {
		for _, it := range items {
			fmt.Fprintf(w, "%s/%s\n", strings.ToLower(kind), it.Metadata.Name)
		}
		return nil
	}
	wide := output == "wide"
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	cols := func(c ...string) {
		if all && kind != "Node" && kind != "Namespace" {
			c = append([]string{"NAMESPACE"}, c...)
		}
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	row := func(it *listItem, c ...string) {
		if all && kind != "Node" && kind != "Namespace" {
			c = append([]string{it.Metadata.Namespace}, c...)
		}
		fmt.Fprintln(tw, strings.Join(c, "\t"))
	}
	switch kind {
	case "Pod":
		h := []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
		if wide {
			h = append(h, "IP", "NODE", "COMMIT")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			ready, restarts := 0, int32(0)
			for _, cs := range it.Status.ContainerStatuses {
				if cs.Ready {
					ready++
				}
				restarts += cs.RestartCount
			}
			total := max(len(it.Spec.Containers), len(it.Status.ContainerStatuses))
			c := []string{it.Metadata.Name, fmt.Sprintf("%d/%d", ready, total), podStatusText(it), fmt.Sprint(restarts), age(it.Metadata.CreationTimestamp, now)}
			if wide {
				ip, node := it.Status.PodIP, it.Spec.NodeName
				if ip == "" {
					ip = "<none>"
				}
				if node == "" {
					node = "<none>"
				}
				c = append(c, ip, node, short(it.Metadata.Annotations["shoal.dev/commit"]))
			}
			row(it, c...)
		}
	case "Deployment":
		h := []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE"}
		if wide {
			h = append(h, "CONTAINERS", "IMAGES", "SELECTOR")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			var want int32 = 1
			if it.Spec.Replicas != nil {
				want = *it.Spec.Replicas
			}
			c := []string{it.Metadata.Name, fmt.Sprintf("%d/%d", it.Status.ReadyReplicas, want), fmt.Sprint(it.Status.UpdatedReplicas), fmt.Sprint(it.Status.AvailableReplicas)}
			if wide {
				var names, images []string
				for _, ct := range it.Spec.Template.Spec.Containers {
					names, images = append(names, ct.Name), append(images, ct.Image)
				}
				c = append(c, strings.Join(names, ","), strings.Join(images, ","), selectorText(it.Spec.Selector))
			}
			row(it, c...)
		}
	case "Service":
		h := []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"}
		if wide {
			h = append(h, "SELECTOR", "ENDPOINTS")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			ip := it.Spec.ClusterIP
			if ip == "" {
				ip = "<pending>"
			}
			c := []string{it.Metadata.Name, it.Spec.Type, ip, externalIPText(it), portsText(it.Spec.Ports)}
			if wide {
				eps := it.Metadata.Annotations["shoal.dev/endpoints"]
				if eps == "" {
					eps = "<none>"
				}
				c = append(c, selectorText(it.Spec.Selector), eps)
			}
			row(it, c...)
		}
	case "Node":
		h := []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"}
		if wide {
			h = append(h, "INTERNAL-IP", "POD-CIDR", "CONVERGED", "TAINTS")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			st := "NotReady"
			for _, c := range it.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					st = "Ready"
				}
			}
			if it.Spec.Unschedulable {
				st += ",SchedulingDisabled"
			}
			c := []string{it.Metadata.Name, st, it.Metadata.Annotations["shoal.dev/role"], age(it.Metadata.CreationTimestamp, now), it.Status.NodeInfo.KubeletVersion}
			if wide {
				ip := "<none>"
				if len(it.Status.Addresses) > 0 {
					ip = it.Status.Addresses[0].Address
				}
				cidr := it.Spec.PodCIDR
				if cidr == "" {
					cidr = "<none>"
				}
				c = append(c, ip, cidr, short(it.Metadata.Annotations["shoal.dev/converged-commit"]), taintsText(it.Spec.Taints))
			}
			row(it, c...)
		}
	default:
		cols("NAME", "DATA")
		for i := range items {
			row(&items[i], items[i].Metadata.Name, fmt.Sprint(len(items[i].Data)))
		}
	}
	return tw.Flush()
}

// taintsText renders taints as kubectl taint takes them: key=value:Effect, comma-separated.
func taintsText(taints []manifests.Taint) string {
	if len(taints) == 0 {
		return "<none>"
	}
	parts := make([]string, len(taints))
	for i, t := range taints {
		parts[i] = t.Key
		if t.Value != "" {
			parts[i] += "=" + t.Value
		}
		parts[i] += ":" + string(t.Effect)
	}
	return strings.Join(parts, ",")
}

func selectorText(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return "<none>"
	}
	if ml, ok := m["matchLabels"].(map[string]any); ok {
		m = ml
	}
	var parts []string
	for k, v := range m {
		if s, ok := v.(string); ok {
			parts = append(parts, k+"="+s)
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, ",")
}

func portsText(ports []json.RawMessage) string {
	var out []string
	for _, raw := range ports {
		var p struct {
			Port     int32  `json:"port"`
			Protocol string `json:"protocol"`
			NodePort int32  `json:"nodePort"`
		}
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		s := fmt.Sprint(p.Port)
		if p.NodePort != 0 {
			s += fmt.Sprintf(":%d", p.NodePort)
		}
		out = append(out, s+"/"+p.Protocol)
	}
	if len(out) == 0 {
		return "<none>"
	}
	return strings.Join(out, ",")
}

func newLogsCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, container string
	var follow, previous, timestamps bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print the logs of a pod's container",
		Example: `  shoal logs hello-6c8f7d9b5-x2k4q
  shoal logs -f hello-6c8f7d9b5-x2k4q -c hello`,
		Args: cobraArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if container != "" {
				q.Set("container", container)
			}
			if follow {
				q.Set("follow", "true")
			}
			if previous {
				q.Set("previous", "true")
			}
			if timestamps {
				q.Set("timestamps", "true")
			}
			if tail > 0 {
				q.Set("tail", fmt.Sprint(tail))
			}
			return c.Logs(cmd.Context(), nsOrDefault(namespace), args[0], q, s.Out)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing as the container writes")
	cmd.Flags().BoolVarP(&previous, "previous", "p", false, "the previous run of a restarted container")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "prefix each line with its time")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines")
	return cmd
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func newExecCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, container string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] -- COMMAND [ARGS...]",
		Short: "Run a command in a pod's container",
		Example: `  shoal exec hello-6c8f7d9b5-x2k4q -- /testapp id
  echo hi | shoal exec -i web-0 -- cat`,
		Args: cobraArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageErrorf("put the command after --: shoal exec POD -- COMMAND [ARGS...]")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var in io.Reader
			if stdin {
				in = s.In
			}
			code, err := c.Exec(cmd.Context(), nsOrDefault(namespace), args[0], container, args[1:], in, s.Out, s.Err)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass standard input to the command")
	return cmd
}

func newEventsCmd(s Streams, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "events",
		Short: "Show recent events of the cluster",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			evs, err := fetch[[]cluster.Event](cmd, cf, "/v1/events", nil)
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(s.Out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(e.Time, now), e.Type, e.Reason, e.Object, e.Message)
			}
			return tw.Flush()
		},
	}
}

func newHistoryCmd(s Streams, cf *clientFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show every commit seen: applied (with warnings) or rejected (with reasons), and how long it took to converge",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hist, err := fetch[[]api.HistoryEntry](cmd, cf, "/v1/history", nil)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(s.Out, hist)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(s.Out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "COMMIT\tRESULT\tSEEN\tCONVERGED IN\tAUTHOR\tMESSAGE")
			for _, h := range hist {
				res := h.Result
				if h.Current {
					res += " (current)"
				}
				conv := "-"
				if h.ConvergeSeconds > 0 {
					conv = fmt.Sprintf("%.2fs", h.ConvergeSeconds)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\t%s\n", short(h.SHA), res, age(h.SeenAt, now), conv, h.Author, h.Message)
				for _, r := range h.Reasons {
					fmt.Fprintf(tw, "\t  %s\t\t\t\t\n", r)
				}
				for _, w := range h.Warnings {
					fmt.Fprintf(tw, "\t  %s\t\t\t\t\n", w)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the raw history")
	return cmd
}

func newDescribeCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show an object in full, with its status and events",
		Args:  cobraArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := api.KindOf(args[0])
			if !ok {
				return usageErrorf("unknown resource %q: use pods, deployments, services, configmaps, secrets, namespaces or nodes", args[0])
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ns := nsOrDefault(namespace)
			raw, err := c.GetRaw(cmd.Context(), "/v1/"+args[0], url.Values{"namespace": {ns}, "name": {args[1]}})
			if err != nil {
				return err
			}
			var list struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) != 1 {
				return fmt.Errorf("%s %s not found", strings.ToLower(kind), args[1])
			}
			y, err := yaml.JSONToYAML(list.Items[0])
			if err != nil {
				return err
			}
			if _, err := s.Out.Write(y); err != nil {
				return err
			}
			evs, err := fetch[[]cluster.Event](cmd, cf, "/v1/events", nil)
			if err != nil {
				return err
			}
			object := kind + " " + args[1]
			if kind != "Node" && kind != "Namespace" {
				object = kind + " " + ns + "/" + args[1]
			}
			fmt.Fprintln(s.Out, "events:")
			now, n := time.Now(), 0
			for _, e := range evs {
				if e.Object == object || strings.HasPrefix(e.Object, object+"-") {
					fmt.Fprintf(s.Out, "  %s ago\t%s\t%s\t%s\n", age(e.Time, now), e.Type, e.Reason, e.Message)
					n++
				}
			}
			if n == 0 {
				fmt.Fprintln(s.Out, "  <none>")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	return cmd
}

func newNetplaneCmd(s Streams, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "netplane", Short: "Inspect this node's network plane"}
	cmd.AddCommand(&cobra.Command{
		Use:   "dump",
		Short: "Show the Services this node's eBPF load balancer holds, as the kernel maps have them",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svcs, err := fetch[[]struct {
				VIP             string
				Port            uint16
				Proto           uint8
				Backends        []string
				Affinity        uint8
				AffinityTimeout time.Duration
			}](cmd, cf, "/v1/netplane", nil)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.Out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "VIP\tPORT\tPROTO\tAFFINITY\tBACKENDS")
			for _, v := range svcs {
				proto := map[uint8]string{6: "TCP", 17: "UDP"}[v.Proto]
				aff := "None"
				if v.Affinity == 1 {
					aff = "ClientIP " + v.AffinityTimeout.String()
				}
				backends := strings.Join(v.Backends, ",")
				if backends == "" {
					backends = "<none: connections are refused>"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.VIP, v.Port, proto, aff, backends)
			}
			return tw.Flush()
		},
	})
	return cmd
}

// newNodeActionCmd makes cordon, uncordon and drain.
func newNodeActionCmd(s Streams, cf *clientFlags, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " NODE",
		Short: short,
		Args:  cobraArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Post(cmd.Context(), "/v1/nodes/"+url.PathEscape(args[0])+"/"+action); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "node/%s %sed\n", args[0], strings.TrimSuffix(action, "n")+map[bool]string{true: "n", false: ""}[strings.HasSuffix(action, "n")])
			return nil
		},
	}
}
