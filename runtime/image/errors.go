package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

var (
	// ErrNotFound is returned when the store holds no image for a reference.
	ErrNotFound = errors.New("image not found in the local store")
	// ErrImageNeverPull is returned by Pull with PullNever when the image is
	// not in the local store. The runtime reports it as ErrImageNeverPull.
	ErrImageNeverPull = errors.New("image not present locally and pull policy is Never")
	// ErrPullFailed is wrapped by every error of a failed pull or import
	// from a registry. Use errors.As with *PullError for the cause.
	ErrPullFailed = errors.New("image pull failed")
	// ErrStoreClosed is returned by methods called after Close.
	ErrStoreClosed = errors.New("image store is closed")
	// ErrStoreLocked is returned by NewStore when another store holds the root.
	ErrStoreLocked = errors.New("image store root is in use by another store")
)

// PullReason classifies why a pull failed.
type PullReason string

// Pull failure reasons.
const (
	ReasonNotFound          PullReason = "not found"
	ReasonUnauthorized      PullReason = "unauthorized"
	ReasonConnectionRefused PullReason = "connection refused"
	ReasonTLS               PullReason = "TLS"
	ReasonInsecureRefused   PullReason = "plain HTTP not allowed"
	ReasonNoPlatform        PullReason = "no matching platform"
	ReasonBadContent        PullReason = "bad content"
	ReasonCanceled          PullReason = "canceled"
	ReasonOther             PullReason = "error"
)

// PullError describes a failed pull. errors.Is(err, ErrPullFailed) holds for
// it; Unwrap gives the underlying error.
type PullError struct {
	Ref    string
	Reason PullReason
	Err    error
}

func (e *PullError) Error() string {
	msg := fmt.Sprintf("pull image %q: %s: %v", e.Ref, e.Reason, e.Err)
	if hint := e.Reason.hint(); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrPullFailed) true.
func (e *PullError) Is(target error) bool { return target == ErrPullFailed }

// Unwrap returns the underlying error.
func (e *PullError) Unwrap() error { return e.Err }

func (r PullReason) hint() string {
	switch r {
	case ReasonNotFound:
		return "check the repository name and tag or digest"
	case ReasonUnauthorized:
		return "give the pod an imagePullSecret of type kubernetes.io/dockerconfigjson with credentials for the registry, or log in on the node so they are in its docker config.json ($DOCKER_CONFIG or ~/.docker)"
	case ReasonConnectionRefused:
		return "check that the registry is running and reachable from this node"
	case ReasonTLS:
		return "the registry must serve HTTPS with a trusted certificate, or be listed as an insecure registry"
	case ReasonInsecureRefused:
		return "serve the registry over HTTPS or list it as an insecure registry"
	case ReasonNoPlatform:
		return "push an image for this node's platform"
	case ReasonBadContent:
		return "the registry served content that does not match its digest; push the image again"
	}
	return ""
}

// errInsecureRefused is returned by the transport for plain HTTP requests to
// registries not configured as insecure.
type errInsecureRefused struct{ host string }

func (e *errInsecureRefused) Error() string {
	return fmt.Sprintf("registry %s is not configured as insecure, refusing plain HTTP", e.host)
}

// errWrongPlatform marks an image built for another OS or architecture.
var errWrongPlatform = errors.New("image platform does not match this node")

// errBadContent marks content that fails verification.
var errBadContent = errors.New("content verification failed")

// classify turns err from a pull into a *PullError.
func classify(ref string, err error) error {
	var pe *PullError
	if errors.As(err, &pe) {
		return err
	}
	return &PullError{Ref: ref, Reason: reasonOf(err), Err: err}
}

func reasonOf(err error) PullReason {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ReasonCanceled
	}
	if errors.Is(err, errWrongPlatform) {
		return ReasonNoPlatform
	}
	if errors.Is(err, errBadContent) {
		return ReasonBadContent
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ReasonNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ReasonUnauthorized
			}
		}
		switch te.StatusCode {
		case http.StatusNotFound:
			return ReasonNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ReasonUnauthorized
		}
	}
	var ir *errInsecureRefused
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce), errors.As(err, &rh):
		return ReasonTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonConnectionRefused
	case errors.As(err, &ir):
		return ReasonInsecureRefused
	}
	// Some errors (the registry ping tries HTTPS and HTTP at once) are
	// joined without Unwrap; fall back to their text.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return ReasonTLS
	case strings.Contains(msg, "connection refused"):
		return ReasonConnectionRefused
	case strings.Contains(msg, "not configured as insecure"):
		return ReasonInsecureRefused
	case strings.Contains(msg, "no child with platform"):
		return ReasonNoPlatform
	}
	return ReasonOther
}
