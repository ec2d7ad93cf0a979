package manifests

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(deployWeb))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: http}], selector: {a: b}}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==}\nstringData: {b: c}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: c, labels: {<<: *m}}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [&c {name: c, image: i}, *c]}\n"))
	f.Add([]byte(billionLaughs("    command: *l9\n")))
	f.Add([]byte("- [\n\t"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, errs := DecodeFile("f.yaml", data, LoadOptions{MaxAliasNodes: 1000})
		for _, e := range errs {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Fatalf("malformed error %#v", e)
			}
		}
		if len(errs) == 0 {
			// What loads renders and loads again.
			out, err := Marshal(objs, "yaml")
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := DecodeFile("again.yaml", out, LoadOptions{}); errs != nil {
				t.Fatalf("rendered objects do not load: %v\n%s", errs, out)
			}
		}
	})
}

func FuzzLoadFS(f *testing.F) {
	f.Add("a.yaml", []byte(deployWeb), "b/c.yml", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n"), false)
	f.Add(".hidden/a.yaml", []byte("x"), "b.yaml", []byte(deployWeb), true)
	f.Add("a.yaml", []byte(deployWeb), "a.yaml/b.yaml", []byte(deployWeb), false)
	f.Fuzz(func(t *testing.T, n1 string, d1 []byte, n2 string, d2 []byte, link bool) {
		fsys := fstest.MapFS{}
		if fs.ValidPath(n1) && n1 != "." {
			fsys[n1] = &fstest.MapFile{Data: d1}
		}
		if fs.ValidPath(n2) && n2 != "." {
			mode := fs.FileMode(0)
			if link {
				mode = fs.ModeSymlink
			}
			fsys[n2] = &fstest.MapFile{Data: d2, Mode: mode}
		}
		set, err := LoadFS(context.Background(), fsys, ".", LoadOptions{MaxAliasNodes: 1000, MaxFileSize: 64 << 10})
		if err == nil && set == nil {
			t.Fatal("nil set without error")
		}
		if err != nil && set != nil {
			t.Fatal("set with error")
		}
	})
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "a=b", "a==b,c!=d", "a in (x,y),!b", "a notin (x)", "example.com/k", "a=", "a in ()", "(", "!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", sel, s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("String() not stable: %q -> %q", sel, again)
		}
		sel.Matches(map[string]string{"a": "b"})
	})
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"100m", "1", "0.5", "128Mi", "1e3", "1E-3", "-1", "+.5", "10Ei", "1e100", "9999999999999999999999999999G", "m", ".", "1e+", "0.5Ki", "0.0001Ki", "-0.5", "1.5G", "999999999999999999", "8Ei", "1n", "-1500m", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantity(s)
		if err != nil {
			if q != (Quantity{}) {
				t.Fatal("invalid quantity returned a value")
			}
			return
		}
		m, v := q.MilliValue(), q.Value()
		if v > 0 && m < v {
			t.Fatalf("%q: milli %d < value %d", s, m, v)
		}
		if q.String() != s || strings.TrimSpace(s) != s {
			t.Fatalf("%q kept as %q", s, q)
		}
		// The integer fast path agrees with exact arithmetic.
		slow := Quantity{s: s}
		if m != slow.scaled(1000) || v != slow.scaled(1) || q.IsZero() != slow.IsZero() || q.Cmp(slow) != 0 {
			t.Fatalf("%q: fast path milli %d value %d, exact %d %d", s, m, v, slow.scaled(1000), slow.scaled(1))
		}
	})
}
