package cli

import (
	"log/slog"
	"os"
	"time"

	"github.com/shoal-dev/shoal/daemon/node"
	"github.com/spf13/cobra"
)

func newNodeCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage this node"}
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
	return cmd
}
