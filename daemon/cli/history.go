package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/spf13/cobra"
)

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
