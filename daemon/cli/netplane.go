package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

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
