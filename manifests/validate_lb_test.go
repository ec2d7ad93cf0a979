package manifests

import (
	"strings"
	"testing"
)

const lbFrontend = `apiVersion: v1
kind: Service
metadata:
  name: frontend
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - name: http
    port: 8081
    targetPort: 8080
`

func TestLoadBalancerServices(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
		// warn are the warnings: what loads but does not do what it would in Kubernetes.
		warn []string
	}{
		{
			name:  "accepted",
			files: map[string]string{"a.yaml": lbFrontend},
		},
		{
			name: "nodePort on a LoadBalancer Service",
			files: map[string]string{"a.yaml": lbFrontend + `    nodePort: 30081
  allocateLoadBalancerNodePorts: true
`},
		},
		{
			name:  "nodePort out of range",
			files: map[string]string{"a.yaml": lbFrontend + "    nodePort: 8082\n"},
			want:  []string{`a.yaml:12: spec.ports[0].nodePort: must be between 30000 and 32767, is 8082`},
		},
		{
			name:  "externalTrafficPolicy Local",
			files: map[string]string{"a.yaml": lbFrontend + "  externalTrafficPolicy: Local\n"},
		},
		{
			name:  "externalTrafficPolicy Local on a ClusterIP Service",
			files: map[string]string{"a.yaml": strings.Replace(lbFrontend, "type: LoadBalancer", "type: ClusterIP", 1) + "  externalTrafficPolicy: Local\n"},
			want:  []string{`a.yaml:12: spec.externalTrafficPolicy: may only be set when type is NodePort or LoadBalancer`},
		},
		{
			name:  "externalTrafficPolicy unknown",
			files: map[string]string{"a.yaml": lbFrontend + "  externalTrafficPolicy: Nearest\n"},
			want:  []string{`a.yaml:12: spec.externalTrafficPolicy: "Nearest" is not one of Cluster, Local`},
		},
		{
			name:  "headless",
			files: map[string]string{"a.yaml": lbFrontend + "  clusterIP: None\n"},
			want:  []string{`a.yaml:12: spec.clusterIP: a LoadBalancer Service cannot be headless (clusterIP: None)`},
		},
		{
			name:  "ExternalName still refused",
			files: map[string]string{"a.yaml": strings.Replace(lbFrontend, "LoadBalancer", "ExternalName", 1)},
			want:  []string{`a.yaml:6: spec.type: ExternalName is supported by Kubernetes, not by Shoal yet; use ClusterIP, NodePort or LoadBalancer`},
		},
		{
			name:  "unknown type",
			files: map[string]string{"a.yaml": strings.Replace(lbFrontend, "LoadBalancer", "Balanced", 1)},
			want:  []string{`a.yaml:6: spec.type: "Balanced" is not one of ClusterIP, NodePort, LoadBalancer`},
		},
		{
			name: "two LoadBalancer Services on one port",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": strings.Replace(lbFrontend, "name: frontend", "name: other", 1),
			},
			warn: []string{`b.yaml:10: spec.ports[0].port: port 8081/TCP is also a port of the LoadBalancer Service default/frontend: a LoadBalancer port is opened on every node's address, so only one of the two is served and the other stays pending (no EXTERNAL-IP), as with k3s's ServiceLB; the one that had the port keeps it, else the first by namespace and name; give each LoadBalancer Service its own ports`},
		},
		{
			name: "same port, other protocol",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": strings.Replace(strings.Replace(lbFrontend, "name: frontend", "name: dns", 1), "port: 8081", "port: 8081\n    protocol: UDP", 1),
			},
		},
		{
			name: "same port in another namespace",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": strings.Replace(lbFrontend, "name: frontend", "name: frontend\n  namespace: shop", 1),
			},
			warn: []string{`b.yaml:11: spec.ports[0].port: port 8081/TCP is also a port of the LoadBalancer Service default/frontend: a LoadBalancer port is opened on every node's address, so only one of the two is served and the other stays pending (no EXTERNAL-IP), as with k3s's ServiceLB; the one that had the port keeps it, else the first by namespace and name; give each LoadBalancer Service its own ports`},
		},
		{
			name: "port is another Service's nodePort",
			files: map[string]string{
				"a.yaml": strings.Replace(lbFrontend, "port: 8081", "port: 30080", 1),
				"b.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: np\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n",
			},
			want: []string{`a.yaml:10: spec.ports[0].port: port 30080/TCP is opened on every node, and it is the nodePort of Service default/np; use another port`},
		},
		{
			name:  "port is its own nodePort",
			files: map[string]string{"a.yaml": strings.Replace(lbFrontend, "port: 8081", "port: 30080", 1) + "    nodePort: 30080\n"},
			want:  []string{`a.yaml:10: spec.ports[0].port: port 30080/TCP is opened on every node, and it is the nodePort of this Service (spec.ports[0]); use another port`},
		},
		{
			name: "port is a host port",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: x\n    ports:\n    - {containerPort: 80, hostPort: 8081}\n",
			},
			want: []string{`a.yaml:10: spec.ports[0].port: port 8081/TCP is opened on every node, and it is a host port of Pod default/p (spec.containers[0].ports[0].hostPort); use another port`},
		},
		{
			name: "a host port on loopback is no conflict",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: x\n    ports:\n    - {containerPort: 80, hostPort: 8081, hostIP: 127.0.0.1}\n",
			},
		},
		{
			name: "a ClusterIP Service on the same port is no conflict",
			files: map[string]string{
				"a.yaml": lbFrontend,
				"b.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 8081\n",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := loadMap(t, tt.files)
			got := errorStrings(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err != nil {
				return
			}
			var warn []string
			for _, w := range set.Warnings {
				warn = append(warn, w.Error())
			}
			if strings.Join(warn, "\n") != strings.Join(tt.warn, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warn, "\n"), strings.Join(tt.warn, "\n"))
			}
		})
	}
}
