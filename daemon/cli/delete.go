package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

// newDeleteCmd makes `shoal delete pod NAME`: the pod is deleted and its controller replaces
// it, as kubectl delete pod does. Everything else is deleted by removing it from git.
func newDeleteCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "delete pod NAME",
		Short: "Delete a pod: its controller replaces it (other objects: remove them from git)",
		Long: `Delete a pod, as kubectl delete pod does: it stops, and its Deployment, StatefulSet,
DaemonSet or Job replaces it (an OnDelete StatefulSet or DaemonSet with its current template); a
standalone Pod of git is made again. To delete anything for good, remove it from git.`,
		Args: cobraArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "pod" && args[0] != "pods" && args[0] != "po" {
				return usageErrorf("shoal deletes pods only (%q): remove other objects from git, and the master deletes them", args[0])
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ns := nsOrDefault(namespace)
			if err := c.Delete(cmd.Context(), "/v1/namespaces/"+url.PathEscape(ns)+"/pods/"+url.PathEscape(args[1])); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "pod %q deleted\n", args[1])
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	return cmd
}
