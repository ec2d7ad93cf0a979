package manifests

import (
	"errors"
	"fmt"
	"strings"
)

// Name rules of Kubernetes (apimachinery validation), written out as small
// hand-rolled checks. Each returns "" when valid or a message saying what is
// wrong.

const (
	dns1123LabelMax     = 63
	dns1123SubdomainMax = 253
	qualifiedNameMax    = 63
	labelValueMax       = 63
	ianaSvcNameMax      = 15
	totalAnnotationMax  = 256 * 1024
)

func isLowerAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z') }

// validateDNS1123Label: lowercase alphanumerics and '-', starting and ending
// alphanumeric, at most 63 characters.
func validateDNS1123Label(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > dns1123LabelMax {
		return fmt.Sprintf("must be at most %d characters, is %d", dns1123LabelMax, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '-' {
			return fmt.Sprintf("%q is not a DNS-1123 label: use lowercase letters, digits and '-' (such as \"my-name\")", s)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Sprintf("%q is not a DNS-1123 label: must start and end with a letter or digit", s)
	}
	return ""
}

// validateDNS1035Label: a DNS-1123 label that starts with a letter.
func validateDNS1035Label(s string) string {
	if msg := validateDNS1123Label(s); msg != "" {
		return msg
	}
	if s[0] < 'a' || s[0] > 'z' {
		return fmt.Sprintf("%q must start with a lowercase letter", s)
	}
	return ""
}

// CheckDNSSubdomain returns an error when s is not a DNS-1123 subdomain, what Kubernetes
// requires of most names, node names among them.
func CheckDNSSubdomain(s string) error {
	if m := validateDNS1123Subdomain(s); m != "" {
		return errors.New(m)
	}
	return nil
}

// validateDNS1123Subdomain: dot-separated DNS-1123 labels, at most 253
// characters.
func validateDNS1123Subdomain(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > dns1123SubdomainMax {
		return fmt.Sprintf("must be at most %d characters, is %d", dns1123SubdomainMax, len(s))
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || validateDNS1123Label(part) != "" {
			return fmt.Sprintf("%q is not a DNS-1123 subdomain: use lowercase letters, digits, '-' and '.' (such as \"example.com\")", s)
		}
	}
	return ""
}

// validateQualifiedName: label and annotation keys, "[prefix/]name" with a
// DNS subdomain prefix and a name of at most 63 characters of alphanumerics,
// '-', '_' and '.', starting and ending alphanumeric.
func validateQualifiedName(s string) string {
	name := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		prefix := s[:i]
		name = s[i+1:]
		if prefix == "" {
			return "prefix before '/' must not be empty"
		}
		if msg := validateDNS1123Subdomain(prefix); msg != "" {
			return "prefix: " + msg
		}
	}
	if name == "" {
		return "name part must not be empty"
	}
	if len(name) > qualifiedNameMax {
		return fmt.Sprintf("name part must be at most %d characters, is %d", qualifiedNameMax, len(name))
	}
	if !isQualifiedChars(name) {
		return "must consist of letters, digits, '-', '_' or '.', start and end with a letter or digit, with an optional DNS prefix (such as \"example.com/MyName\")"
	}
	return ""
}

func isQualifiedChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return isAlnum(s[0]) && isAlnum(s[len(s)-1])
}

// validateLabelValue: empty, or at most 63 characters of alphanumerics, '-',
// '_' and '.', starting and ending alphanumeric.
func validateLabelValue(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > labelValueMax {
		return fmt.Sprintf("must be at most %d characters, is %d", labelValueMax, len(s))
	}
	if !isQualifiedChars(s) {
		return "must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	}
	return ""
}

// validatePortName: IANA_SVC_NAME, at most 15 lowercase alphanumerics and
// '-', with at least one letter, no leading, trailing or double '-'.
func validatePortName(s string) string {
	if len(s) > ianaSvcNameMax {
		return fmt.Sprintf("port name %q must be at most %d characters", s, ianaSvcNameMax)
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '-' {
			return fmt.Sprintf("port name %q may contain only lowercase letters, digits and '-'", s)
		}
		if c >= 'a' && c <= 'z' {
			letter = true
		}
	}
	if !letter {
		return fmt.Sprintf("port name %q must contain at least one letter", s)
	}
	if strings.Contains(s, "--") || s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Sprintf("port name %q must not start or end with '-' or contain \"--\"", s)
	}
	return ""
}

// validateConfigKey: ConfigMap and Secret keys, [-._a-zA-Z0-9]+, not "." or
// "..", at most 253 characters.
func validateConfigKey(s string) string {
	if s == "" {
		return "key must not be empty"
	}
	if len(s) > dns1123SubdomainMax {
		return fmt.Sprintf("key must be at most %d characters", dns1123SubdomainMax)
	}
	if s == "." || s == ".." || strings.HasPrefix(s, "..") {
		return fmt.Sprintf("key %q must not be '.' or start with '..'", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("key %q may contain only letters, digits, '-', '_' and '.'", s)
		}
	}
	return ""
}

// validateDNS1123SubdomainWithUnderscore: a DNS-1123 subdomain whose labels
// may also contain '_' (Kubernetes' relaxed rule for DNS search domains).
func validateDNS1123SubdomainWithUnderscore(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > dns1123SubdomainMax {
		return fmt.Sprintf("must be at most %d characters, is %d", dns1123SubdomainMax, len(s))
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || validateDNS1123Label(strings.ReplaceAll(part, "_", "a")) != "" {
			return fmt.Sprintf("%q is not a DNS domain: use lowercase letters, digits, '-', '_' and '.' (such as \"svc.cluster.local\")", s)
		}
	}
	return ""
}

// validatePathSegmentName: the names of RBAC objects, which may be anything
// but "." and ".." and may not contain '/' or '%' (such as
// "system:aggregate-to-view").
func validatePathSegmentName(s string) string {
	if s == "." || s == ".." {
		return fmt.Sprintf("%q may not be a name; use another", s)
	}
	if strings.ContainsAny(s, "/%") {
		return fmt.Sprintf("%q may not contain '/' or '%%'", s)
	}
	return ""
}
