package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/spf13/cobra"
)

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
