// Package client talks to a Shoal daemon's API, on its unix socket or over TCP with TLS and a
// bearer token.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/daemon/api/wire"
)

// DefaultSocket is where a node's daemon listens unless told otherwise.
const DefaultSocket = "/run/shoal/shoal.sock"

// Config says how to reach the daemon.
type Config struct {
	// Socket is the daemon's unix socket (default $SHOAL_SOCKET, then DefaultSocket).
	Socket string
	// Server is https://host:port for a daemon's TCP API; it takes precedence over Socket.
	Server string
	Token  string
	CAFile string
	// TLS, when set, is used for Server as is (a node calling another with its certificate).
	TLS *tls.Config
}

// Client is an API client.
type Client struct {
	http *http.Client
	base string
	cfg  Config
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Server != "" {
		u, err := url.Parse(cfg.Server)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("server %q: use https://HOST:PORT (the TCP API always uses TLS)", cfg.Server)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLS != nil {
			tc = cfg.TLS
		} else if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s has no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		return &Client{http: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, base: strings.TrimSuffix(cfg.Server, "/"), cfg: cfg}, nil
	}
	if cfg.Socket == "" {
		cfg.Socket = os.Getenv("SHOAL_SOCKET")
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	sock := cfg.Socket
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{http: &http.Client{Transport: tr}, base: "http://shoal", cfg: cfg}, nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if c.cfg.Server == "" {
			return nil, fmt.Errorf("cannot reach the shoal daemon on %s: %w (is it running? set --socket or SHOAL_SOCKET)", c.cfg.Socket, unwrapURL(err))
		}
		return nil, fmt.Errorf("cannot reach the shoal daemon at %s: %w", c.cfg.Server, unwrapURL(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e wire.Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: strings.TrimSpace(string(data))}
	}
	return resp, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// StatusError is an error answer of the API.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Get decodes the JSON answer to GET path into v.
func (c *Client) Get(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	return nil
}

// Post sends an empty POST to path (node actions).
func (c *Client) Post(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodPost, path, nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// PostJSON sends in as JSON to path with POST and decodes the JSON answer into out.
func (c *Client) PostJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode the request: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, path, nil, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	return nil
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Delete sends DELETE to path.
func (c *Client) Delete(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodDelete, path, nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// GetRaw returns the raw JSON answer to GET path.
func (c *Client) GetRaw(ctx context.Context, path string, q url.Values) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Logs copies a pod's log to w.
func (c *Client) Logs(ctx context.Context, namespace, pod string, q url.Values, w io.Writer) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/namespaces/"+url.PathEscape(namespace)+"/pods/"+url.PathEscape(pod)+"/log", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Exec runs a command in a pod's container and returns its exit code.
func (c *Client) Exec(ctx context.Context, namespace, pod, container string, command []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	q := url.Values{"command": command}
	if container != "" {
		q.Set("container", container)
	}
	var body io.Reader
	if stdin != nil {
		q.Set("stdin", "true")
		body = stdin
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/namespaces/"+url.PathEscape(namespace)+"/pods/"+url.PathEscape(pod)+"/exec", q, body)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
			return -1, fmt.Errorf("exec: the connection ended before the command: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > 1<<20 {
			return -1, fmt.Errorf("exec: frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, payload); err != nil {
			return -1, fmt.Errorf("exec: %w", err)
		}
		switch hdr[0] {
		case wire.StreamStdout:
			if _, err := stdout.Write(payload); err != nil {
				return -1, err
			}
		case wire.StreamStderr:
			if _, err := stderr.Write(payload); err != nil {
				return -1, err
			}
		case wire.StreamExit:
			return strconv.Atoi(string(payload))
		case wire.StreamError:
			return -1, errors.New(string(payload))
		}
	}
}
