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
	// milli is the amount in thousandths when exact is true: every quantity
	// people write for CPU and memory. Others are computed exactly from s.
	milli int64
	exact bool
}

// Limits that keep parsing cheap for hostile input; real quantities are far
// shorter.
const (
	maxQuantityLen = 64
	maxQuantityExp = 100
)

// ParseQuantity parses s in Kubernetes quantity syntax.
func ParseQuantity(s string) (Quantity, error) {
	p, err := scanQuantity(s)
	if err != nil {
		return Quantity{}, err
	}
	q := Quantity{s: s}
	q.milli, q.exact = p.milli()
	return q, nil
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
	if q.exact {
		return q.milli == 0
	}
	r, err := parseQuantity(q.s)
	return err != nil || r.Sign() == 0
}

// Value returns the amount rounded up to an integer, saturating at the int64
// range.
func (q Quantity) Value() int64 {
	if q.exact {
		if q.milli > 0 {
			return q.milli/1000 + min(q.milli%1000, 1)
		}
		return q.milli / 1000 // truncation is the ceiling for negatives
	}
	return q.scaled(1)
}

// MilliValue returns the amount in thousandths rounded up, saturating at the
// int64 range. For CPU this is millicores.
func (q Quantity) MilliValue() int64 {
	if q.exact {
		return q.milli
	}
	return q.scaled(1000)
}

// Cmp compares two quantities exactly: -1 if q < o, 0 if equal, +1 if q > o.
func (q Quantity) Cmp(o Quantity) int {
	if (q.exact || q.s == "") && (o.exact || o.s == "") {
		switch {
		case q.milli < o.milli:
			return -1
		case q.milli > o.milli:
			return 1
		}
		return 0
	}
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

// quantityParts is a quantity taken apart: ±digits × 10^exp10 × 2^exp2.
type quantityParts struct {
	neg         bool
	digits      [maxQuantityLen]byte
	n           int // used bytes of digits
	exp10, exp2 int
}

func parseQuantity(s string) (*big.Rat, error) {
	p, err := scanQuantity(s)
	if err != nil {
		return nil, err
	}
	return p.rat(s)
}

// milli returns the amount in thousandths when it is an integer that fits
// int64.
func (p *quantityParts) milli() (int64, bool) {
	if p.n > 18 {
		return 0, false
	}
	var v int64
	for _, c := range p.digits[:p.n] {
		v = v*10 + int64(c-'0')
	}
	pow10 := func(e int) int64 {
		r := int64(1)
		for range e {
			r *= 10
		}
		return r
	}
	switch e := p.exp10 + 3; {
	case e > 18:
		return 0, false
	case e >= 0:
		f := pow10(e)
		if v != 0 && v > math.MaxInt64/f {
			return 0, false
		}
		v *= f
	case e >= -18:
		f := pow10(-e)
		if v%f != 0 {
			return 0, false
		}
		v /= f
	default:
		return 0, false
	}
	if p.exp2 > 0 {
		if v != 0 && v > math.MaxInt64>>p.exp2 {
			return 0, false
		}
		v <<= p.exp2
	}
	if p.neg {
		v = -v
	}
	return v, true
}

func (p *quantityParts) rat(s string) (*big.Rat, error) {
	num, ok := new(big.Int).SetString(string(p.digits[:p.n]), 10)
	if !ok {
		return nil, fmt.Errorf("invalid quantity %q; %w", s, errQuantity)
	}
	if p.neg {
		num.Neg(num)
	}
	r := new(big.Rat).SetInt(num)
	if p.exp10 != 0 {
		pw := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(p.exp10))), nil)
		if p.exp10 > 0 {
			r.Mul(r, new(big.Rat).SetInt(pw))
		} else {
			r.Quo(r, new(big.Rat).SetInt(pw))
		}
	}
	if p.exp2 != 0 {
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(p.exp2))))
	}
	return r, nil
}

func scanQuantity(s string) (*quantityParts, error) {
	if s == "" {
		return nil, fmt.Errorf("empty quantity; %w", errQuantity)
	}
	if len(s) > maxQuantityLen {
		return nil, fmt.Errorf("quantity is %d characters long, more than %d", len(s), maxQuantityLen)
	}
	p := &quantityParts{}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		p.neg = s[0] == '-'
		i++
	}
	intDigits, fracDigits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		p.digits[p.n] = s[i]
		p.n++
		intDigits++
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			p.digits[p.n] = s[i]
			p.n++
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
	p.exp10, p.exp2 = exp10, exp2
	return p, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// NewQuantity is the quantity of n bytes, written as Kubernetes writes a
// size: with the largest binary suffix (Ki, Mi, Gi, Ti, Pi, Ei) that divides
// it, as a plain number when none does.
func NewQuantity(n int64) Quantity {
	s := strconv.FormatInt(n, 10)
	if n != 0 {
		for i, suffix := range []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"} {
			unit := int64(1) << (10 * (6 - i))
			if n%unit == 0 {
				s = strconv.FormatInt(n/unit, 10) + suffix
				break
			}
		}
	}
	q, err := ParseQuantity(s)
	if err != nil {
		panic("manifests: NewQuantity: " + err.Error()) // cannot happen: s is a number with a suffix
	}
	return q
}

// NewMilliQuantity returns a quantity of n thousandths, as Kubernetes
// prints CPU: "250m", or whole units ("2") when n is a multiple of 1000.
func NewMilliQuantity(n int64) Quantity {
	s := strconv.FormatInt(n, 10) + "m"
	if n%1000 == 0 {
		s = strconv.FormatInt(n/1000, 10)
	}
	q, err := ParseQuantity(s)
	if err != nil {
		panic("manifests: NewMilliQuantity: " + err.Error()) // cannot happen: s is a number
	}
	return q
}
