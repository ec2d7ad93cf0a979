package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newGetCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, selector, output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get pods|deployments|daemonsets|statefulsets|hpa|jobs|cronjobs|services|configmaps|secrets|namespaces|nodes [NAME]",
		Short: "List objects with their status, as kubectl get does",
		Example: `  shoal get pods
  shoal get pods -A -o wide
  shoal get deploy -l app=web -o json | jq '.items[].status'`,
		Args: cobraArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := api.KindOf(args[0])
			if !ok {
				return usageErrorf("unknown resource %q: use %s", args[0], api.Resources)
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

// accessModeShort is an access mode as kubectl abbreviates it.
func accessModeShort(m string) string {
	switch m {
	case "ReadWriteOnce":
		return "RWO"
	case "ReadOnlyMany":
		return "ROX"
	case "ReadWriteMany":
		return "RWX"
	case "ReadWriteOncePod":
		return "RWOP"
	}
	return m
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
		StorageClassName *string `json:"storageClassName"`
		Completions      *int32  `json:"completions"`
		Parallelism      *int32  `json:"parallelism"`
		Schedule         string  `json:"schedule"`
		TimeZone         *string `json:"timeZone"`
		Suspend          *bool   `json:"suspend"`
		Template         struct {
			Spec struct {
				Containers []struct {
					Name  string `json:"name"`
					Image string `json:"image"`
				} `json:"containers"`
				NodeSelector map[string]string `json:"nodeSelector"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Data   map[string]any `json:"data"`
	Status struct {
		Phase string `json:"phase"`
		// PersistentVolumeClaims.
		AccessModes       []string          `json:"accessModes"`
		Capacity          map[string]string `json:"capacity"`
		Reason            string            `json:"reason"`
		PodIP             string            `json:"podIP"`
		ReadyReplicas     int32             `json:"readyReplicas"`
		UpdatedReplicas   int32             `json:"updatedReplicas"`
		AvailableReplicas int32             `json:"availableReplicas"`
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
		// DaemonSets.
		DesiredNumberScheduled int32 `json:"desiredNumberScheduled"`
		CurrentNumberScheduled int32 `json:"currentNumberScheduled"`
		NumberReady            int32 `json:"numberReady"`
		UpdatedNumberScheduled int32 `json:"updatedNumberScheduled"`
		NumberAvailable        int32 `json:"numberAvailable"`
		// Jobs and CronJobs.
		Succeeded        int32           `json:"succeeded"`
		Active           json.RawMessage `json:"active"`
		StartTime        *time.Time      `json:"startTime"`
		CompletionTime   *time.Time      `json:"completionTime"`
		LastScheduleTime *time.Time      `json:"lastScheduleTime"`
	} `json:"status"`
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
				names, images := templateContainers(it)
				c = append(c, names, images, selectorText(it.Spec.Selector))
			}
			row(it, c...)
		}
	case "DaemonSet":
		// Shoal records no creation time of the objects of git: no AGE column.
		h := []string{"NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR"}
		if wide {
			h = append(h, "CONTAINERS", "IMAGES", "SELECTOR")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			st := &it.Status
			c := []string{it.Metadata.Name, fmt.Sprint(st.DesiredNumberScheduled), fmt.Sprint(st.CurrentNumberScheduled), fmt.Sprint(st.NumberReady),
				fmt.Sprint(st.UpdatedNumberScheduled), fmt.Sprint(st.NumberAvailable), nodeSelectorText(it.Spec.Template.Spec.NodeSelector)}
			if wide {
				names, images := templateContainers(it)
				c = append(c, names, images, selectorText(it.Spec.Selector))
			}
			row(it, c...)
		}
	case "HorizontalPodAutoscaler":
		cols("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS")
		for i := range items {
			var h manifests.HorizontalPodAutoscaler
			if err := json.Unmarshal(raw[i], &h); err != nil {
				return fmt.Errorf("decode %s: %w", kind, err)
			}
			minPods := int32(1)
			if h.Spec.MinReplicas != nil {
				minPods = *h.Spec.MinReplicas
			}
			row(&items[i], h.Name, h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name, h.MetricsText(h.Status.CurrentMetrics),
				fmt.Sprint(minPods), fmt.Sprint(h.Spec.MaxReplicas), fmt.Sprint(h.Status.DesiredReplicas))
		}
	case "StatefulSet":
		h := []string{"NAME", "READY"}
		if wide {
			h = append(h, "CONTAINERS", "IMAGES")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			var want int32 = 1
			if it.Spec.Replicas != nil {
				want = *it.Spec.Replicas
			}
			c := []string{it.Metadata.Name, fmt.Sprintf("%d/%d", it.Status.ReadyReplicas, want)}
			if wide {
				names, images := templateContainers(it)
				c = append(c, names, images)
			}
			row(it, c...)
		}
	case "Job":
		h := []string{"NAME", "STATUS", "COMPLETIONS", "DURATION"}
		if wide {
			h = append(h, "CONTAINERS", "IMAGES")
		}
		cols(h...)
		for i := range items {
			it := &items[i]
			// As kubectl: a work queue (no completions) shows "0/1 of <parallelism>".
			completions := fmt.Sprintf("%d/1", it.Status.Succeeded)
			switch {
			case it.Spec.Completions != nil:
				completions = fmt.Sprintf("%d/%d", it.Status.Succeeded, *it.Spec.Completions)
			case it.Spec.Parallelism != nil && *it.Spec.Parallelism > 1:
				completions += fmt.Sprintf(" of %d", *it.Spec.Parallelism)
			}
			c := []string{it.Metadata.Name, jobStatusText(it), completions,
				jobDuration(it, now)}
			if wide {
				names, images := templateContainers(it)
				c = append(c, names, images)
			}
			row(it, c...)
		}
	case "PersistentVolumeClaim":
		cols("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS")
		for i := range items {
			it := &items[i]
			st := it.Status.Phase
			if it.Metadata.Annotations["shoal.dev/deleting"] == "true" {
				st = "Terminating"
			}
			var modes []string
			for _, m := range it.Status.AccessModes {
				modes = append(modes, accessModeShort(m))
			}
			class := ""
			if it.Spec.StorageClassName != nil {
				class = *it.Spec.StorageClassName
			}
			row(it, it.Metadata.Name, st, it.Metadata.Annotations["shoal.dev/volume"], it.Status.Capacity["storage"],
				strings.Join(modes, ","), class)
		}
	case "CronJob":
		cols("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE")
		for i := range items {
			it := &items[i]
			tz, suspend, last := "<none>", "False", "<none>"
			if it.Spec.TimeZone != nil {
				tz = *it.Spec.TimeZone
			}
			if it.Spec.Suspend != nil && *it.Spec.Suspend {
				suspend = "True"
			}
			if it.Status.LastScheduleTime != nil {
				last = age(*it.Status.LastScheduleTime, now)
			}
			var active []json.RawMessage
			_ = json.Unmarshal(it.Status.Active, &active)
			row(it, it.Metadata.Name, it.Spec.Schedule, tz, suspend, fmt.Sprint(len(active)), last)
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

// jobStatusText is what kubectl prints in a Job's STATUS column.
func jobStatusText(it *listItem) string {
	status := map[string]bool{}
	for _, c := range it.Status.Conditions {
		status[c.Type] = c.Status == "True"
	}
	switch {
	case status["Complete"]:
		return "Complete"
	case status["Failed"]:
		return "Failed"
	case status["FailureTarget"]:
		return "FailureTarget"
	case status["SuccessCriteriaMet"]:
		return "SuccessCriteriaMet"
	case status["Suspended"]:
		return "Suspended"
	}
	return "Running"
}

// jobDuration is how long the Job has run (until it completed).
func jobDuration(it *listItem, now time.Time) string {
	if it.Status.StartTime == nil {
		return ""
	}
	end := now
	if it.Status.CompletionTime != nil {
		end = *it.Status.CompletionTime
	}
	return age(*it.Status.StartTime, end)
}

// nodeSelectorText is a pod template's nodeSelector as kubectl prints it.
func nodeSelectorText(sel map[string]string) string {
	if len(sel) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(sel))
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}

// templateContainers is the names and images of a workload's pod template, as kubectl's wide
// CONTAINERS and IMAGES columns show them.
func templateContainers(it *listItem) (names, images string) {
	var n, i []string
	for _, ct := range it.Spec.Template.Spec.Containers {
		n, i = append(n, ct.Name), append(i, ct.Image)
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}
