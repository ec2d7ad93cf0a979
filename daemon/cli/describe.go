package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newDescribeCmd(s Streams, cf *clientFlags) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show an object in full, with its status and events",
		Args:  cobraArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := api.KindOf(args[0])
			if !ok {
				return usageErrorf("unknown resource %q: use %s", args[0], api.Resources)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ns := nsOrDefault(namespace)
			raw, err := c.GetRaw(cmd.Context(), "/v1/"+args[0], url.Values{"namespace": {ns}, "name": {args[1]}})
			if err != nil {
				return err
			}
			var list struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) != 1 {
				return fmt.Errorf("%s %s not found", strings.ToLower(kind), args[1])
			}
			y, err := yaml.JSONToYAML(list.Items[0])
			if err != nil {
				return err
			}
			if _, err := s.Out.Write(y); err != nil {
				return err
			}
			evs, err := fetch[[]cluster.Event](cmd, cf, "/v1/events", nil)
			if err != nil {
				return err
			}
			object := kind + " " + args[1]
			if kind != "Node" && kind != "Namespace" {
				object = kind + " " + ns + "/" + args[1]
			}
			fmt.Fprintln(s.Out, "events:")
			now, n := time.Now(), 0
			for _, e := range evs {
				if e.Object == object || strings.HasPrefix(e.Object, object+"-") {
					fmt.Fprintf(s.Out, "  %s ago\t%s\t%s\t%s\n", age(e.Time, now), e.Type, e.Reason, e.Message)
					n++
				}
			}
			if n == 0 {
				fmt.Fprintln(s.Out, "  <none>")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	return cmd
}
