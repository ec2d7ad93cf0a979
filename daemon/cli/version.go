package cli

import (
	"encoding/json"
	"fmt"

	"github.com/shoal-dev/shoal/daemon/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(s Streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, git commit and Go version of this shoal",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			switch output {
			case "":
				_, err := fmt.Fprint(s.Out, info.String())
				return err
			case "json":
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			default:
				return usageErrorf("unknown output format %q: use json, or no -o for text", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
