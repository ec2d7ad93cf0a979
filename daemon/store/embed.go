package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
)

// Cluster states for EmbedConfig.ClusterState.
const (
	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

// Settings of the embedded server, chosen for small clusters (1 to 5 members).
const (
	// DefaultPeerURL listens on a free loopback port. A single member never dials its peers,
	// so the port only has to be real once members join; give them a reachable PeerURL then.
	DefaultPeerURL = "http://127.0.0.1:0"
	// SocketName is the file name of the default client socket inside EmbedConfig.Dir.
	SocketName = "etcd.sock"

	snapshotCount     = 10000
	compactionMode    = "periodic"
	compactionPeriod  = "1h"
	quotaBackendBytes = 2 << 30 // etcd's default, 2 GiB
	heartbeatMs       = 100
	electionMs        = 1000
	clusterToken      = "shoal"
	markerName        = "shoal-store.json"
	defaultReady      = time.Minute
	dbLockTimeout     = 2 * time.Second
)

// TLSFiles names PEM files for one side (clients or peers) of an embedded server. When CAFile
// is set, the other side must present a certificate signed by it.
type TLSFiles struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

func (f TLSFiles) empty() bool { return f.CertFile == "" && f.KeyFile == "" && f.CAFile == "" }

func (f TLSFiles) info() transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:       f.CertFile,
		KeyFile:        f.KeyFile,
		TrustedCAFile:  f.CAFile,
		ClientCertAuth: f.CAFile != "",
	}
}

// EmbedConfig configures an embedded etcd member. Only Dir is required.
type EmbedConfig struct {
	// Dir is the etcd data directory, normally <data dir>/store. It is created if missing.
	Dir string
	// Name is the member name, the node name. Default "default".
	Name string
	// ClientURL is where clients connect. Default unix://<Dir>/etcd.sock: a socket file
	// inside the data directory, so several members on one machine never collide and
	// nothing listens on the network. Use http(s)://IP:PORT to serve other nodes.
	ClientURL string
	// NetworkClientURL, when set, is served besides ClientURL (normally the socket) and is the
	// only client URL the member advertises to the others: https://IP:PORT with ClientTLS.
	NetworkClientURL string
	// PeerURL is where other members reach this one. Default DefaultPeerURL.
	PeerURL string
	// InitialCluster lists the members at bootstrap ("a=https://10.0.0.1:2380,b=...").
	// Default: this member alone.
	InitialCluster string
	// ClusterState is ClusterStateNew (default) to bootstrap a cluster, or
	// ClusterStateExisting to join one that already runs.
	ClusterState string
	// ClientTLS and PeerTLS are optional; they apply to https:// URLs.
	ClientTLS TLSFiles
	PeerTLS   TLSFiles
	// ReadyTimeout bounds how long StartEmbedded waits for the member to serve when ctx has
	// no earlier deadline. Default one minute.
	ReadyTimeout time.Duration
	// Logger receives etcd's warnings and errors. Nil discards them.
	Logger *slog.Logger
}

// Embedded is a running embedded etcd member. Close stops it.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	dir       string
	closeOnce sync.Once
}

// StartEmbedded starts an etcd member in cfg.Dir and waits until it serves clients. A data
// directory that cannot be opened gives an error saying how to recover; it never panics.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	ecfg, err := etcdConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the store directory: %w", err)
	}
	if err := checkDataDir(cfg.Dir); err != nil {
		if errors.Is(err, errInUse) {
			return nil, fmt.Errorf("start the store in %s: %w", cfg.Dir, err)
		}
		return nil, badDirError(cfg.Dir, err)
	}
	e, err := startEtcd(ecfg)
	if err != nil {
		return nil, err
	}
	emb := &Embedded{etcd: e, dir: cfg.Dir}

	wait := cfg.ReadyTimeout
	if wait <= 0 {
		wait = defaultReady
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		emb.Close()
		return nil, fmt.Errorf("start the store in %s: %w", cfg.Dir, err)
	case <-timer.C:
		emb.Close()
		return nil, fmt.Errorf("start the store in %s: not ready after %s; "+
			"if it is one member of several, start the others or check that peers can reach %s",
			cfg.Dir, wait, ecfg.AdvertisePeerUrls[0].String())
	case <-ctx.Done():
		emb.Close()
		return nil, fmt.Errorf("start the store in %s: %w", cfg.Dir, ctx.Err())
	}

	for i, ln := range e.Clients {
		u := ecfg.ListenClientUrls[i]
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			emb.endpoints = append(emb.endpoints, u.String())
			continue
		}
		emb.endpoints = append(emb.endpoints, u.Scheme+"://"+ln.Addr().String())
	}
	if err := writeMarker(cfg.Dir, ecfg.Name); err != nil {
		emb.Close()
		return nil, err
	}
	return emb, nil
}

// startEtcd runs embed.StartEtcd, turning a panic of etcd's bootstrap (its logger panics
// instead of exiting, see newZapLogger) into an error about the data directory.
func startEtcd(cfg *embed.Config) (e *embed.Etcd, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, badDirError(cfg.Dir, fmt.Errorf("%v", r))
		}
	}()
	e, err = embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start the store in %s: %w", cfg.Dir, err)
	}
	return e, nil
}

func badDirError(dir string, err error) error {
	return fmt.Errorf("the store in %s cannot be opened: %w; move it aside to start a new cluster, "+
		"or restore a snapshot into it", dir, err)
}

// Endpoints returns the client URLs of the member, ready for Config.Endpoints.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err reports a fatal error of the running member (for example a listener that failed).
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Dir returns the data directory.
func (e *Embedded) Dir() string { return e.dir }

// Close stops the member and waits until it has stopped. It is safe to call more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() { e.etcd.Close() })
	return nil
}

func etcdConfig(cfg EmbedConfig) (*embed.Config, error) {
	if cfg.Dir == "" {
		return nil, errors.New("start the store: no data directory given")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("start the store: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = "unix://" + filepath.Join(dir, SocketName)
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultPeerURL
	}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.Name + "=" + cfg.PeerURL
	}
	switch cfg.ClusterState {
	case "":
		cfg.ClusterState = ClusterStateNew
	case ClusterStateNew, ClusterStateExisting:
	default:
		return nil, fmt.Errorf("start the store: cluster state %q: use %q or %q",
			cfg.ClusterState, ClusterStateNew, ClusterStateExisting)
	}
	curl, err := parseListenURL(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("start the store: client URL: %w", err)
	}
	purl, err := parseListenURL(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("start the store: peer URL: %w", err)
	}
	if purl.Scheme == "unix" || purl.Scheme == "unixs" {
		return nil, fmt.Errorf("start the store: peer URL %q: use http:// or https://", cfg.PeerURL)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = dir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	if curl.Scheme == "unix" || curl.Scheme == "unixs" {
		// etcd wants host:port in advertised URLs; the address is only informational here.
		adv := *curl
		adv.Host = "localhost:0"
		ec.AdvertiseClientUrls = []url.URL{adv}
	}
	if cfg.NetworkClientURL != "" {
		nurl, err := parseListenURL(cfg.NetworkClientURL)
		if err != nil || nurl.Scheme == "unix" || nurl.Scheme == "unixs" {
			return nil, fmt.Errorf("start the store: network client URL %q: use https://IP:PORT", cfg.NetworkClientURL)
		}
		ec.ListenClientUrls = append(ec.ListenClientUrls, *nurl)
		ec.AdvertiseClientUrls = []url.URL{*nurl}
	}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = cfg.InitialCluster
	ec.InitialClusterToken = clusterToken
	ec.ClusterState = cfg.ClusterState
	ec.SnapshotCount = snapshotCount
	ec.AutoCompactionMode = compactionMode
	ec.AutoCompactionRetention = compactionPeriod
	ec.QuotaBackendBytes = quotaBackendBytes
	ec.TickMs = heartbeatMs
	ec.ElectionMs = electionMs
	ec.EnableGRPCGateway = false
	// Only requests slower than this are logged (as warnings); the zero value logs every one.
	ec.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	if !cfg.ClientTLS.empty() {
		ec.ClientTLSInfo = cfg.ClientTLS.info()
	}
	if !cfg.PeerTLS.empty() {
		ec.PeerTLSInfo = cfg.PeerTLS.info()
	}
	ec.Logger = "zap"
	ec.LogLevel = "warn"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(cfg.Logger))
	if err := ec.Validate(); err != nil {
		return nil, fmt.Errorf("start the store: %w", err)
	}
	return ec, nil
}

func parseListenURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%q has no host:port", s)
		}
	case "unix", "unixs":
		if !strings.HasPrefix(u.Path, "/") || u.Host != "" {
			return nil, fmt.Errorf("%q: write a unix socket as unix:///absolute/path", s)
		}
	default:
		return nil, fmt.Errorf("%q: use http://, https://, unix:// or unixs://", s)
	}
	return u, nil
}

// marker is written into the data directory once a member has started there, so that a
// member directory that vanished later is an error rather than a silent new, empty cluster.
type marker struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

func writeMarker(dir, name string) error {
	p := filepath.Join(dir, markerName)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	b, err := json.Marshal(marker{Name: name, Created: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w; check the permissions of the data directory", p, err)
	}
	return nil
}

var errInUse = errors.New("member/snap/db is locked by another running store member; stop it first")

// checkDataDir looks for damage that would make etcd exit the process or panic in a
// goroutine while it opens the data directory, and reports it as an error instead.
func checkDataDir(dir string) error {
	if _, err := os.ReadDir(dir); err != nil {
		return err
	}
	member := filepath.Join(dir, "member")
	walDir := filepath.Join(member, "wal")
	dbPath := filepath.Join(member, "snap", "db")
	_, markerErr := os.Stat(filepath.Join(dir, markerName))
	initialised := markerErr == nil

	if _, err := os.Stat(member); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if initialised {
				return errors.New("the member directory is missing, but a store was created here before")
			}
			return nil
		}
		return err
	}
	if _, err := os.ReadDir(member); err != nil {
		return err
	}
	haveWAL := false
	if names, err := os.ReadDir(walDir); err == nil {
		for _, n := range names {
			if strings.HasSuffix(n.Name(), ".wal") {
				haveWAL = true
				break
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dbInfo, dbErr := os.Stat(dbPath)
	haveDB := dbErr == nil
	if dbErr != nil && !errors.Is(dbErr, os.ErrNotExist) {
		return dbErr
	}
	switch {
	case !haveWAL && !haveDB:
		if initialised {
			return errors.New("the write-ahead log member/wal is missing, but a store was created here before")
		}
		return nil
	case !haveWAL:
		return errors.New("member/snap/db exists but the write-ahead log member/wal is missing")
	case !haveDB:
		return errors.New("the write-ahead log member/wal exists but the database member/snap/db is missing")
	}
	if dbInfo.IsDir() {
		return errors.New("member/snap/db is a directory")
	}
	if err := checkDB(dbPath, dbInfo.Size()); err != nil {
		return err
	}
	return checkWAL(walDir, filepath.Dir(dbPath))
}

// checkDB opens the bbolt database read-only. etcd panics in a goroutine when the file is
// not a database, and a truncated file faults on first access, so both are caught here.
func checkDB(path string, size int64) error {
	if size < 2*int64(os.Getpagesize()) {
		return fmt.Errorf("member/snap/db is too small (%d bytes) to be a database", size)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: dbLockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return errInUse
		}
		return fmt.Errorf("member/snap/db: %w", err)
	}
	defer db.Close()
	var want int64
	if err := db.View(func(tx *bolt.Tx) error {
		want = tx.Size()
		return nil
	}); err != nil {
		return fmt.Errorf("member/snap/db: %w", err)
	}
	if size < want {
		return fmt.Errorf("member/snap/db is truncated: %d bytes, its pages need %d", size, want)
	}
	return nil
}

// checkWAL reads the write-ahead log as etcd does when it starts, but without repairing it:
// etcd cuts a log off at its first bad record, which on a log damaged at its start would
// throw the whole store away.
func checkWAL(walDir, snapDir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("member/wal: %v", r)
		}
	}()
	lg := newZapLogger(nil)
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return fmt.Errorf("member/wal: %w", err)
	}
	// start at the newest snapshot whose file exists, as etcd does
	var at walpb.Snapshot
	for i := len(snaps) - 1; i >= 0; i-- {
		name := fmt.Sprintf("%016x-%016x.snap", snaps[i].Term, snaps[i].Index)
		if _, err := os.Stat(filepath.Join(snapDir, name)); err == nil {
			at = snaps[i]
			break
		}
	}
	w, err := wal.OpenForRead(lg, walDir, at)
	if err != nil {
		return fmt.Errorf("member/wal: %w", err)
	}
	defer w.Close()
	meta, _, _, err := w.ReadAll()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) { // a torn last write is repaired by etcd
		return fmt.Errorf("member/wal: %w", err)
	}
	var m etcdserverpb.Metadata
	if len(meta) == 0 || m.Unmarshal(meta) != nil || m.NodeID == 0 || m.ClusterID == 0 {
		return errors.New("member/wal has no valid member metadata")
	}
	return nil
}

// ID returns the member's id in the cluster.
func (e *Embedded) ID() uint64 { return uint64(e.etcd.Server.MemberID()) }
