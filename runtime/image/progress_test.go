package image

import (
	"strings"
	"testing"
)

func TestProgressDraw(t *testing.T) {
	tests := []struct {
		name        string
		tty         bool
		width       int
		done, total int64
		final       bool
		want        []string
	}{
		{"terminal half", true, 80, 512 << 10, 1 << 20, false, []string{"\rreg/app:v1 [", "=====", "  50% 512.0 KiB/1.0 MiB"}},
		{"terminal done", true, 80, 1 << 20, 1 << 20, true, []string{" 100% ", "\n"}},
		{"narrow terminal", true, 20, 1, 2, false, []string{"\r [", "50%"}},
		{"plain", false, 0, 3 << 20, 4 << 20, false, []string{"pull reg/app:v1: 3.0 MiB/4.0 MiB (75%)\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			p := &progress{ref: "reg/app:v1", out: &out, tty: tc.tty, width: tc.width}
			p.draw(tc.done, tc.total, tc.final)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
			if tc.tty && len(out.String()) > tc.width+2 && tc.width >= 40 {
				t.Errorf("line longer than the terminal: %q", out.String())
			}
		})
	}
}
