package manifests

import (
	"reflect"
	"slices"
	"strings"
)

// SupportedFields returns the field paths of kind that Shoal supports, in declaration order, as
// docs/manifest-support.md lists them with "yes": "spec.containers[].ports[].hostPort",
// "metadata.labels". It returns nil for a kind Shoal does not know.
func SupportedFields(kind string) []string {
	ki, _, ok := kindByName(kind)
	if !ok {
		return nil
	}
	var out []string
	for _, r := range supportRows(reflect.TypeOf(ki.newObject()).Elem()) {
		if r.support == "yes" {
			out = append(out, r.path)
		}
	}
	return out
}

type supportRow struct {
	path, support string
}

// supportRows lists the fields of a kind: modelled leaves as yes, not-yet
// fields as no, in declaration order.
func supportRows(t reflect.Type) []supportRow {
	var rows []supportRow
	var walk func(t reflect.Type, prefix string, depth int)
	walk = func(t reflect.Type, prefix string, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		info := structInfoOf(t)
		for _, f := range info.fields {
			if depth == 0 && f.name == "status" {
				rows = append(rows, supportRow{"status", "accepted and ignored"})
				continue
			}
			p := joinField(prefix, f.name)
			ft := f.typ
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case isLeafType(ft) && refusedWhenSet(p):
				rows = append(rows, supportRow{p, refusedSupport})
			case isLeafType(ft):
				rows = append(rows, supportRow{p, "yes"})
			case ft.Kind() == reflect.Slice && !isLeafType(ft.Elem()) && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), p+"[]", depth+1)
			case ft.Kind() == reflect.Struct:
				walk(ft, p, depth+1)
			case refusedWhenSet(p):
				rows = append(rows, supportRow{p, refusedSupport})
			default:
				rows = append(rows, supportRow{p, "yes"})
			}
		}
		var notYet []supportRow
		for _, it := range inlineTypes(t) {
			for name, u := range notYetFields[it] {
				s := "no"
				if len(u.tolerated) > 0 {
					s = "no; accepts `" + strings.Join(u.tolerated, "`, `") + "`"
				}
				notYet = append(notYet, supportRow{joinField(prefix, name), s})
			}
		}
		slices.SortFunc(notYet, func(a, b supportRow) int { return strings.Compare(a.path, b.path) })
		rows = append(rows, notYet...)
	}
	walk(t, "", 0)
	if t != reflect.TypeFor[Job]() {
		for i := range rows {
			if rows[i].path == "metadata.generateName" {
				rows[i].support = refusedSupport
			}
		}
	}
	return rows
}

// refusedSupport marks fields that Shoal models and validation refuses.
const refusedSupport = "no: refused when set"

// refusedWhenSet reports whether validation refuses any value of the field
// at doc path p.
func refusedWhenSet(p string) bool {
	affinityTerm := strings.Contains(p, ".podAffinity.") || strings.Contains(p, ".podAntiAffinity.")
	switch {
	case affinityTerm && (strings.Contains(p, ".namespaceSelector.") || strings.HasSuffix(p, ".matchLabelKeys") || strings.HasSuffix(p, ".mismatchLabelKeys")):
		return true
	case strings.Contains(p, "lifecycle.postStart.tcpSocket.") || strings.Contains(p, "lifecycle.preStop.tcpSocket."):
		return true
	}
	return false
}

func isLeafType(t reflect.Type) bool {
	switch t {
	case typeQuantity, typeIntOrString, typeTime, typeBytes:
		return true
	}
	return t.Kind() != reflect.Struct && (t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Struct)
}
