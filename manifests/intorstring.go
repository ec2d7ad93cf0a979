package manifests

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// IntOrStringType tells which member of an IntOrString is set.
type IntOrStringType int

// The two kinds of IntOrString.
const (
	Int IntOrStringType = iota
	String
)

// IntOrString holds an int32 or a string, like Kubernetes' intstr.IntOrString:
// a port number or a port name, a count or a percentage.
type IntOrString struct {
	Type   IntOrStringType
	IntVal int32
	StrVal string
}

// FromInt returns an IntOrString holding i.
func FromInt(i int32) IntOrString { return IntOrString{Type: Int, IntVal: i} }

// FromString returns an IntOrString holding s.
func FromString(s string) IntOrString { return IntOrString{Type: String, StrVal: s} }

// String returns the value as text.
func (v IntOrString) String() string {
	if v.Type == String {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// IsZero reports whether v is the integer 0 or the empty string.
func (v IntOrString) IsZero() bool {
	if v.Type == String {
		return v.StrVal == ""
	}
	return v.IntVal == 0
}

// MarshalJSON writes a JSON number or string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.Type == String {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a JSON number or string.
func (v *IntOrString) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*v = FromString(s)
		return nil
	}
	var i int32
	if err := json.Unmarshal(data, &i); err != nil {
		return fmt.Errorf("expected an integer or a string: %w", err)
	}
	*v = FromInt(i)
	return nil
}

// ScaledValue resolves v against total: an integer is returned as is, a
// percentage such as "25%" is that share of total, rounded up when roundUp
// is true and down otherwise.
func (v IntOrString) ScaledValue(total int, roundUp bool) (int, error) {
	if v.Type == Int {
		return int(v.IntVal), nil
	}
	p, err := parsePercent(v.StrVal)
	if err != nil {
		return 0, err
	}
	if roundUp {
		return int(math.Ceil(float64(p) * float64(total) / 100)), nil
	}
	return int(math.Floor(float64(p) * float64(total) / 100)), nil
}

func parsePercent(s string) (int, error) {
	n, ok := strings.CutSuffix(s, "%")
	if !ok || n == "" {
		return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage such as 25%%", s)
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage such as 25%%", s)
		}
	}
	p, err := strconv.Atoi(n)
	if err != nil {
		return 0, fmt.Errorf("invalid value %q: percentage out of range", s)
	}
	return p, nil
}
