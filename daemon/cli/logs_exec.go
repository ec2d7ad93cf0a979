package cli

import (
	"fmt"
	"io"
	"net/url"

	"github.com/spf13/cobra"
)

func newLogsCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, container string
	var follow, previous, timestamps bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print the logs of a pod's container",
		Example: `  shoal logs hello-6c8f7d9b5-x2k4q
  shoal logs -f hello-6c8f7d9b5-x2k4q -c hello`,
		Args: cobraArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if container != "" {
				q.Set("container", container)
			}
			if follow {
				q.Set("follow", "true")
			}
			if previous {
				q.Set("previous", "true")
			}
			if timestamps {
				q.Set("timestamps", "true")
			}
			if tail > 0 {
				q.Set("tail", fmt.Sprint(tail))
			}
			return c.Logs(cmd.Context(), nsOrDefault(namespace), args[0], q, s.Out)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing as the container writes")
	cmd.Flags().BoolVarP(&previous, "previous", "p", false, "the previous run of a restarted container")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "prefix each line with its time")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines")
	return cmd
}

func newExecCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace, container string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] -- COMMAND [ARGS...]",
		Short: "Run a command in a pod's container",
		Example: `  shoal exec hello-6c8f7d9b5-x2k4q -- /testapp id
  echo hi | shoal exec -i web-0 -- cat`,
		Args: cobraArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageErrorf("put the command after --: shoal exec POD -- COMMAND [ARGS...]")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var in io.Reader
			if stdin {
				in = s.In
			}
			code, err := c.Exec(cmd.Context(), nsOrDefault(namespace), args[0], container, args[1:], in, s.Out, s.Err)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass standard input to the command")
	return cmd
}
