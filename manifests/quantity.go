package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Quantity is a Kubernetes resource quantity such as "100m", "64Mi", "1.5" or
// "1e3". It keeps the text it was written with; Value and MilliValue give the
// amount.
//
// Syntax: an optional sign, decimal digits with an optional fraction, and an
// optional suffix: a binary SI suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal SI
// suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2).
type Quantity struct {
	s string
}

// Limits that keep parsing cheap for hostile input; real quantities are far
// shorter.
const (
	maxQuantityLen = 64
	maxQuantityExp = 100
)

// ParseQuantity parses s in Kubernetes quantity syntax.
func ParseQuantity(s string) (Quantity, error) {
	if _, err := parseQuantity(s); err != nil {
		return Quantity{}, err
	}
	return Quantity{s: s}, nil
}

// String returns the quantity as written, or "0" for the zero Quantity.
func (q Quantity) String() string {
	if q.s == "" {
		return "0"
	}
	return q.s
}

// IsZero reports whether the quantity is unset or amounts to zero.
func (q Quantity) IsZero() bool {
	if q.s == "" {
		return true
	}
	r, err := parseQuantity(q.s)
	return err != nil || r.Sign() == 0
}

// Value returns the amount rounded up to an integer, saturating at the int64
// range.
func (q Quantity) Value() int64 { return q.scaled(1) }

// MilliValue returns the amount in thousandths rounded up, saturating at the
// int64 range. For CPU this is millicores.
func (q Quantity) MilliValue() int64 { return q.scaled(1000) }

// Cmp compares two quantities exactly: -1 if q < o, 0 if equal, +1 if q > o.
func (q Quantity) Cmp(o Quantity) int {
	return q.rat().Cmp(o.rat())
}

func (q Quantity) rat() *big.Rat {
	if q.s == "" {
		return new(big.Rat)
	}
	r, err := parseQuantity(q.s)
	if err != nil {
		return new(big.Rat)
	}
	return r
}

func (q Quantity) scaled(mul int64) int64 {
	r := q.rat()
	r.Mul(r, new(big.Rat).SetInt64(mul))
	// Ceiling of num/den (den > 0).
	num, den := r.Num(), r.Denom()
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if rem.Sign() > 0 {
		quo.Add(quo, big.NewInt(1))
	}
	if !quo.IsInt64() {
		if quo.Sign() < 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return quo.Int64()
}

// MarshalJSON writes the quantity as a JSON string, as Kubernetes does.
func (q Quantity) MarshalJSON() ([]byte, error) {
	return json.Marshal(q.String())
}

// UnmarshalJSON accepts a JSON string or number.
func (q *Quantity) UnmarshalJSON(data []byte) error {
	s := string(data)
	if s == "null" {
		*q = Quantity{}
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	p, err := ParseQuantity(s)
	if err != nil {
		return err
	}
	*q = p
	return nil
}

var errQuantity = errors.New("quantities look like 500m, 2, 1.5, 128Mi, 1G or 1e3")

func parseQuantity(s string) (*big.Rat, error) {
	if s == "" {
		return nil, fmt.Errorf("empty quantity; %w", errQuantity)
	}
	if len(s) > maxQuantityLen {
		return nil, fmt.Errorf("quantity is %d characters long, more than %d", len(s), maxQuantityLen)
	}
	i := 0
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		i++
	}
	var digits []byte
	intDigits, fracDigits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		digits = append(digits, s[i])
		intDigits++
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			digits = append(digits, s[i])
			fracDigits++
			i++
		}
	}
	if intDigits+fracDigits == 0 {
		return nil, fmt.Errorf("invalid quantity %q: no digits; %w", s, errQuantity)
	}
	exp10, exp2 := -fracDigits, 0
	switch suffix := s[i:]; suffix {
	case "":
	case "Ki":
		exp2 = 10
	case "Mi":
		exp2 = 20
	case "Gi":
		exp2 = 30
	case "Ti":
		exp2 = 40
	case "Pi":
		exp2 = 50
	case "Ei":
		exp2 = 60
	case "n":
		exp10 -= 9
	case "u":
		exp10 -= 6
	case "m":
		exp10 -= 3
	case "k":
		exp10 += 3
	case "M":
		exp10 += 6
	case "G":
		exp10 += 9
	case "T":
		exp10 += 12
	case "P":
		exp10 += 15
	case "E":
		exp10 += 18
	default:
		if suffix[0] != 'e' && suffix[0] != 'E' {
			return nil, fmt.Errorf("invalid quantity %q: unknown suffix %q; %w", s, suffix, errQuantity)
		}
		e := suffix[1:]
		j := 0
		if j < len(e) && (e[j] == '+' || e[j] == '-') {
			j++
		}
		if j == len(e) {
			return nil, fmt.Errorf("invalid quantity %q: exponent has no digits; %w", s, errQuantity)
		}
		for _, c := range e[j:] {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("invalid quantity %q: unknown suffix %q; %w", s, suffix, errQuantity)
			}
		}
		n, err := strconv.Atoi(e)
		if err != nil || n > maxQuantityExp || n < -maxQuantityExp {
			return nil, fmt.Errorf("invalid quantity %q: exponent out of range ±%d", s, maxQuantityExp)
		}
		exp10 += n
	}
	num, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		return nil, fmt.Errorf("invalid quantity %q; %w", s, errQuantity)
	}
	if neg {
		num.Neg(num)
	}
	r := new(big.Rat).SetInt(num)
	if exp10 != 0 {
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp10))), nil)
		if exp10 > 0 {
			r.Mul(r, new(big.Rat).SetInt(p))
		} else {
			r.Quo(r, new(big.Rat).SetInt(p))
		}
	}
	if exp2 != 0 {
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(exp2))))
	}
	return r, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
