package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
)

func TestPrintKeyring(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		rep  cluster.SecretsReport
		want []string
	}{
		{"keys", cluster.SecretsReport{Primary: "4e5f6a7b", Keys: []cluster.KeyUse{
			{ID: "0a1b2c3d", Created: now.Add(-48 * time.Hour), Secrets: 1},
			{ID: "4e5f6a7b", Created: now.Add(-time.Minute), Primary: true, Secrets: 3},
		}}, []string{"KEY        PRIMARY   SECRETS   AGE", "0a1b2c3d             1         2d", "4e5f6a7b   *         3         60s"}},
		{"plain ones", cluster.SecretsReport{Primary: "4e5f6a7b", Plain: 2, Keys: []cluster.KeyUse{{ID: "4e5f6a7b", Primary: true, Created: now}}},
			[]string{"2 Secrets are stored in plain text", "shoal secrets rotate-key encrypts them"}},
		{"no keyring", cluster.SecretsReport{}, []string{"no keyring yet"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printKeyring(&out, tc.rep, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output\n%s\nlacks %q", out.String(), w)
				}
			}
		})
	}
}
