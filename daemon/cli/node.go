package cli

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/shoal-dev/shoal/daemon/node"
	"github.com/spf13/cobra"
)

func newNodeCmd(s Streams, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Reset this node, or remove a node from the cluster"}
	var dataDir, name, cgroup string
	var grace time.Duration
	var keepData bool
	reset := &cobra.Command{
		Use:   "reset",
		Short: "Stop and remove every pod of this node and its data (the daemon must be stopped)",
		Long: `Reset undoes what a node made: it stops and removes its pods (they outlive the daemon),
their cgroups and mounts, and deletes the data directory unless --keep-data is given.`,
		Args: cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				h, err := os.Hostname()
				if err != nil {
					return err
				}
				name = h
			}
			if cgroup == "" {
				cgroup = "/shoal/" + name
			}
			log := slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return node.Reset(cmd.Context(), dataDir, cgroup, grace, !keepData, log)
		},
	}
	reset.Flags().StringVar(&dataDir, "data-dir", DefaultDataDir, "the node's data directory")
	reset.Flags().StringVar(&name, "node-name", "", "the node's name (default: the host name)")
	reset.Flags().StringVar(&cgroup, "cgroup-parent", "", "cgroup of the node's pods (default /shoal/<node>)")
	reset.Flags().DurationVar(&grace, "grace", 5*time.Second, "how long pods get to stop before SIGKILL")
	reset.Flags().BoolVar(&keepData, "keep-data", false, "keep the data directory")
	cmd.AddCommand(reset)
	remove := &cobra.Command{
		Use:   "remove NODE",
		Short: "Delete a stopped node from the cluster for good, with its store member",
		Long: `Remove deletes a node that is gone for good: its store member leaves the store's cluster (so
that a new node can take its place as a member), and its record, pod CIDR and cordon are deleted.
Its pods are placed on other nodes at once. A running node is refused: drain it, stop its daemon
and reset it first. A removed node that should come back joins again with an empty data dir.`,
		Example: `  shoal drain n3 && ssh n3 'systemctl stop shoal && shoal node reset'
  shoal node remove n3`,
		Args: cobraArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), "/v1/nodes/"+url.PathEscape(args[0])); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "node/%s removed\n", args[0])
			return nil
		},
	}
	cf.add(remove)
	cmd.AddCommand(remove)
	return cmd
}
