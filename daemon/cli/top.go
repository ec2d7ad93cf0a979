package cli

import (
	"cmp"
	"fmt"
	"io"
	"net/url"
	"slices"
	"text/tabwriter"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/spf13/cobra"
)

// notAvailable is what `shoal top` says before any node has sampled the pods it asks about.
const notAvailable = "error: metrics not available yet: each node measures its pods every 15 s, and a first CPU rate " +
	"takes two measurements; wait ~15 s and try again"

func newTopCmd(s Streams, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top nodes|pods",
		Short: "Show the CPU and memory that nodes and pods use, as kubectl top does",
		Long: `Show the CPU and memory that the nodes' pods use, as each node measures them from the pods'
cgroups every 15 s (there is no metrics-server: the nodes keep their last sample in the store, where
the autoscalers read it). CPU is in thousandths of a core averaged over the last interval, memory the
working set: what the kernel cannot reclaim at once.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageErrorf("unknown resource %q: use nodes or pods\nSee '%s --help'.", args[0], cmd.CommandPath())
		},
	}
	cmd.AddCommand(newTopNodesCmd(s, cf), newTopPodsCmd(s, cf))
	return cmd
}

func newTopNodesCmd(s Streams, cf *clientFlags) *cobra.Command {
	var selector, output, sortBy string
	cmd := &cobra.Command{
		Use:     "nodes [NAME]",
		Aliases: []string{"node", "no"},
		Short:   "Show the CPU and memory the pods of each node use, and what share of the node's allocatable",
		Example: `  shoal top nodes
  shoal top nodes --sort-by cpu
  shoal top nodes -o json | jq '.items[] | {name, milliCPU}'`,
		Args: cobraArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := topFlags(output, sortBy); err != nil {
				return err
			}
			q := url.Values{}
			if selector != "" {
				q.Set("selector", selector)
			}
			if len(args) == 1 {
				q.Set("name", args[0])
			}
			l, err := fetch[cluster.NodeUsageList](cmd, cf, "/v1/top/nodes", q)
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				fmt.Fprintln(s.Err, "No resources found")
				return nil
			}
			if !slices.ContainsFunc(l.Items, func(n cluster.NodeUsage) bool { return n.Available }) {
				fmt.Fprintln(s.Err, notAvailable)
				return failed()
			}
			if output == "json" {
				return printJSON(s.Out, l)
			}
			sortNodeUsage(l.Items, sortBy)
			printTopNodes(s.Out, l.Items)
			return nil
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, as kubectl -l")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the raw usage")
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "cpu or memory: the largest first")
	return cmd
}

func newTopPodsCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, selector, output, sortBy string
	var all, containers bool
	cmd := &cobra.Command{
		Use:     "pods [NAME]",
		Aliases: []string{"pod", "po"},
		Short:   "Show the CPU and memory each pod (or container) uses",
		Example: `  shoal top pods
  shoal top pods -A --sort-by memory
  shoal top pods web-7d4b9 --containers
  shoal top pods -n shop -o json | jq '.items[] | {name, milliCPU, memory}'`,
		Args: cobraArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := topFlags(output, sortBy); err != nil {
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
			if len(args) == 1 {
				q.Set("name", args[0])
			}
			l, err := fetch[cluster.PodUsageList](cmd, cf, "/v1/top/pods", q)
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				if len(l.Unmeasured) > 0 {
					fmt.Fprintln(s.Err, notAvailable)
					return failed()
				}
				if all {
					fmt.Fprintln(s.Err, "No resources found")
				} else {
					fmt.Fprintf(s.Err, "No resources found in namespace %s\n", nsOrDefault(namespace))
				}
				return nil
			}
			if output == "json" {
				return printJSON(s.Out, l)
			}
			sortPodUsage(l.Items, sortBy)
			printTopPods(s.Out, l.Items, all, containers)
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "show every namespace")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, as kubectl -l")
	cmd.Flags().BoolVar(&containers, "containers", false, "show each container of the pods")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the raw usage")
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "cpu or memory: the largest first")
	return cmd
}

func topFlags(output, sortBy string) error {
	switch output {
	case "", "json":
	default:
		return usageErrorf("unknown output format %q: use json", output)
	}
	switch sortBy {
	case "", "cpu", "memory":
	default:
		return usageErrorf("--sort-by %q: use cpu or memory", sortBy)
	}
	return nil
}

// sortNodeUsage orders nodes by sortBy ("": as the daemon sent them, by name), the largest
// first, nodes without a sample last.
func sortNodeUsage(nodes []cluster.NodeUsage, sortBy string) {
	if sortBy == "" {
		return
	}
	slices.SortStableFunc(nodes, func(a, b cluster.NodeUsage) int {
		if a.Available != b.Available {
			if a.Available {
				return -1
			}
			return 1
		}
		if sortBy == "cpu" {
			return cmp.Compare(b.MilliCPU, a.MilliCPU)
		}
		return cmp.Compare(b.Memory, a.Memory)
	})
}

// sortPodUsage orders pods by sortBy ("": as the daemon sent them, by namespace and name), the
// largest first.
func sortPodUsage(pods []cluster.PodUsage, sortBy string) {
	if sortBy == "" {
		return
	}
	slices.SortStableFunc(pods, func(a, b cluster.PodUsage) int {
		if sortBy == "cpu" {
			return cmp.Compare(b.MilliCPU, a.MilliCPU)
		}
		return cmp.Compare(b.Memory, a.Memory)
	})
}

// milliCores writes CPU as kubectl top does: thousandths of a core, "250m".
func milliCores(m int64) string { return fmt.Sprintf("%dm", m) }

// mebibytes writes memory as kubectl top does: whole mebibytes, "120Mi".
func mebibytes(b int64) string { return fmt.Sprintf("%dMi", b/(1<<20)) }

// printTopNodes prints kubectl top node's table; nodes without a sample show <unknown>.
func printTopNodes(w io.Writer, nodes []cluster.NodeUsage) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCPU(cores)\tCPU%\tMEMORY(bytes)\tMEMORY%")
	for _, n := range nodes {
		if !n.Available {
			fmt.Fprintf(tw, "%s\t<unknown>\t<unknown>\t<unknown>\t<unknown>\n", n.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d%%\t%s\t%d%%\n", n.Name, milliCores(n.MilliCPU), n.CPUPercent, mebibytes(n.Memory), n.MemoryPercent)
	}
	tw.Flush()
}

// printTopPods prints kubectl top pod's table: a line per pod, or per container with
// containers; a NAMESPACE column first with all.
func printTopPods(w io.Writer, pods []cluster.PodUsage, all, containers bool) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	ns := ""
	if all {
		ns = "NAMESPACE\t"
	}
	if containers {
		fmt.Fprintf(tw, "%sPOD\tNAME\tCPU(cores)\tMEMORY(bytes)\n", ns)
	} else {
		fmt.Fprintf(tw, "%sNAME\tCPU(cores)\tMEMORY(bytes)\n", ns)
	}
	for _, p := range pods {
		prefix := ""
		if all {
			prefix = p.Namespace + "\t"
		}
		if !containers {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\n", prefix, p.Name, milliCores(p.MilliCPU), mebibytes(p.Memory))
			continue
		}
		for _, c := range p.Containers {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", prefix, p.Name, c.Name, milliCores(c.MilliCPU), mebibytes(c.Memory))
		}
	}
	tw.Flush()
}
