package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Marshal renders objects as "yaml" (documents separated by ---) or "json"
// (a kubectl-style List: {"apiVersion":"v1","kind":"List","items":[...]}).
func Marshal(objs []Object, format string) ([]byte, error) {
	switch format {
	case "yaml", "yml":
		var b bytes.Buffer
		for i, o := range objs {
			data, err := json.Marshal(o)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", KeyOf(o), err)
			}
			y, err := yaml.JSONToYAML(data)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", KeyOf(o), err)
			}
			if i > 0 {
				b.WriteString("---\n")
			}
			b.Write(y)
		}
		return b.Bytes(), nil
	case "json":
		list := struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Items      []Object `json:"items"`
		}{APIVersion: "v1", Kind: "List", Items: objs}
		if list.Items == nil {
			list.Items = []Object{}
		}
		data, err := json.MarshalIndent(list, "", "    ")
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		return append(data, '\n'), nil
	}
	return nil, fmt.Errorf("unknown output format %q; use yaml or json", format)
}
