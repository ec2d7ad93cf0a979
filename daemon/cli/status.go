package cli

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/spf13/cobra"
)

func newStatusCmd(s Streams, cf *clientFlags) *cobra.Command {
	var watch bool
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: nodes, the commit each has converged to, Deployments, DaemonSets, StatefulSets, Jobs, rejections",
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

func printStatus(w io.Writer, st cluster.Status, now time.Time) {
	if st.Scope != "" {
		fmt.Fprintf(w, "%s\n\n", st.Scope)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	master := st.Master
	switch {
	case master == "" && st.Scope != "":
		master = "<seen from a server node>"
	case master == "":
		master = "<none elected>"
	}
	fmt.Fprintf(tw, "Master:\t%s\n", master)
	if a := st.Applied; a != nil && a.Message == "" && a.Author == "" {
		fmt.Fprintf(tw, "Applied commit:\t%s, applied %s ago\n", short(a.SHA), age(a.SeenAt, now))
	} else if a != nil {
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
	var deployments, daemonSets, statefulSets []rolloutRow
	for _, d := range st.Deployments {
		deployments = append(deployments, rolloutRow{d.Namespace + "/" + d.Name, d.Ready, d.Desired, d.Updated, d.Available, d.Complete})
	}
	for _, d := range st.DaemonSets {
		daemonSets = append(daemonSets, rolloutRow{d.Namespace + "/" + d.Name, d.Ready, d.Desired, d.Updated, d.Available, d.Complete})
	}
	for _, d := range st.StatefulSets {
		statefulSets = append(statefulSets, rolloutRow{d.Namespace + "/" + d.Name, d.Ready, d.Replicas, d.Updated, d.Available, d.Complete})
	}
	printRollouts(w, "DEPLOYMENT", deployments)
	printRollouts(w, "DAEMONSET", daemonSets)
	printRollouts(w, "STATEFULSET", statefulSets)
	if len(st.Autoscalers) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "AUTOSCALER\tTARGET\tMETRICS\tMIN\tMAX\tREPLICAS\tSTATUS")
		for _, h := range st.Autoscalers {
			state := "scaling"
			if h.Problem != "" {
				state = h.Problem
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%d\t%d\t%s\n", h.Namespace, h.Name, h.Target, h.Metrics, h.Min, h.Max, h.Desired, state)
		}
		tw.Flush()
	}
	if len(st.Jobs) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tCOMPLETIONS\tACTIVE\tFAILED\tSTATUS")
		for _, j := range st.Jobs {
			completions := fmt.Sprintf("%d/%d", j.Succeeded, j.Completions)
			if j.Completions == 0 {
				completions = fmt.Sprintf("%d (work queue)", j.Succeeded)
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%d\t%d\t%s\n", j.Namespace, j.Name, completions, j.Active, j.Failed, j.State)
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

// rolloutRow is a workload in the rollout tables of `shoal status`.
type rolloutRow struct {
	name                               string
	ready, desired, updated, available int32
	complete                           bool
}

// printRollouts prints a rollout table headed by kind, after a blank line; nothing when there
// are no rows.
func printRollouts(w io.Writer, kind string, rows []rolloutRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, kind+"\tREADY\tUP-TO-DATE\tAVAILABLE\tROLLOUT")
	for _, r := range rows {
		roll := "in progress"
		if r.complete {
			roll = "complete"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d\t%s\n", r.name, r.ready, r.desired, r.updated, r.available, roll)
	}
	tw.Flush()
}
