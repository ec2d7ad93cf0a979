package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
)

func TestPrintTokens(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printTokens(&b, []join.TokenInfo{
		{ID: "abc123", Role: join.RoleServer, Created: now, Expires: now.Add(23*time.Hour + 30*time.Minute), Description: "n2"},
		{ID: "def456", Role: join.RoleAgent, Created: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)},
		{ID: "ghi789", Role: join.RoleAgent, Created: now},
		{ID: "jkl012", Role: join.RoleAgent, Created: now, Expires: now.Add(90 * time.Second)},
	}, now)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for i, want := range [][]string{
		{"ID", "ROLE", "TTL", "EXPIRES", "DESCRIPTION"},
		{"abc123", "server", "23h", "n2"},
		{"def456", "agent", "<expired>", "<none>"},
		{"ghi789", "agent", "<forever>", "<never>"},
		{"jkl012", "agent", "1m"},
	} {
		for _, w := range want {
			if i >= len(lines) || !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q:\n%s", i, w, b.String())
			}
		}
	}
	for d, want := range map[time.Duration]string{72 * time.Hour: "3d", 47 * time.Hour: "47h", 59 * time.Minute: "59m", 30 * time.Second: "30s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTokenCreateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"token", "create", "--role", "admin"},
		{"token", "create", "--ttl", "-1h"},
		{"token", "list", "-o", "yaml"},
	} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), args, Streams{Out: &out, Err: &errb}); code != ExitUsage {
			t.Errorf("shoal %s: exit %d, want %d: %s", strings.Join(args, " "), code, ExitUsage, errb.String())
		}
	}
}

// TestDaemonRoleFlags: a bad --role, and --no-store-member with --role server, are usage errors
// before the daemon starts anything.
func TestDaemonRoleFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("shoal daemon checks for root first")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "admin"}, `--role: role "admin": use server or agent`},
		{[]string{"--no-store-member", "--role", "server"}, "--no-store-member is --role agent"},
	} {
		code, _, stderr := run(t, append([]string{"daemon", "--data-dir", t.TempDir()}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("shoal daemon %s: exit %d, stderr %q; want a usage error with %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
