package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

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
