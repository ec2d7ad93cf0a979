package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
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
			if kind == "Secret" {
				// As kubectl: the keys and sizes of a Secret's data, never its values.
				if err := describeSecret(s.Out, list.Items[0]); err != nil {
					return err
				}
			} else {
				y, err := yaml.JSONToYAML(list.Items[0])
				if err != nil {
					return err
				}
				if _, err := s.Out.Write(y); err != nil {
					return err
				}
			}
			evs, err := fetch[[]cluster.Event](cmd, cf, "/v1/events", nil)
			var se *client.StatusError
			if errors.As(err, &se) && se.Code == http.StatusForbidden {
				// An agent reads no events: the object is shown, its events on a server node.
				fmt.Fprintf(s.Out, "events: <%s>\n", se.Msg)
				return nil
			}
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

// describeSecret prints a Secret as kubectl describe does: its metadata and type, and the size of
// each value of its data, never the values.
func describeSecret(w io.Writer, raw json.RawMessage) error {
	var sec struct {
		Metadata struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Type       string            `json:"type"`
		Data       map[string][]byte `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	if err := json.Unmarshal(raw, &sec); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	pairs := func(m map[string]string) string {
		if len(m) == 0 {
			return "<none>"
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = k + "=" + m[k]
		}
		return strings.Join(keys, "\n              ")
	}
	fmt.Fprintf(w, "Name:         %s\n", sec.Metadata.Name)
	fmt.Fprintf(w, "Namespace:    %s\n", sec.Metadata.Namespace)
	fmt.Fprintf(w, "Labels:       %s\n", pairs(sec.Metadata.Labels))
	fmt.Fprintf(w, "Annotations:  %s\n", pairs(sec.Metadata.Annotations))
	fmt.Fprintf(w, "\nType:  %s\n\nData\n====\n", sec.Type)
	sizes := map[string]int{}
	for k, v := range sec.Data {
		sizes[k] = len(v)
	}
	for k, v := range sec.StringData {
		sizes[k] = len(v)
	}
	keys := make([]string, 0, len(sizes))
	for k := range sizes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s:  %d bytes\n", k, sizes[k])
	}
	return nil
}
