package store

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger for etcd that forwards warnings and errors to l (nothing
// when l is nil). Fatal entries panic instead of exiting the process, so that StartEmbedded can
// turn a failure while opening the data directory into an error.
func newZapLogger(l *slog.Logger) *zap.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	core := &slogCore{l: l, min: zapcore.WarnLevel, seen: &repeats{last: map[string]time.Time{}}}
	return zap.New(core, zap.WithFatalHook(zapcore.WriteThenPanic))
}

// slogCore is a zapcore.Core writing to a slog.Logger.
type slogCore struct {
	l      *slog.Logger
	min    zapcore.Level
	fields []zapcore.Field
	seen   *repeats
}

// repeatEvery is how often the same etcd warning is logged at its level; repeats in between
// (a member that is down is reported every few seconds) go to debug.
const repeatEvery = time.Minute

// repeats remembers when each warning was last logged at its level.
type repeats struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// fresh reports whether key was not logged within repeatEvery, and records it.
func (r *repeats) fresh(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < repeatEvery {
		return false
	}
	if len(r.last) > 1000 {
		clear(r.last)
	}
	r.last[key] = now
	return true
}

func (c *slogCore) Enabled(lvl zapcore.Level) bool { return lvl >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	all = append(all, c.fields...)
	all = append(all, fields...)
	return &slogCore{l: c.l, min: c.min, fields: all, seen: c.seen}
}

func (c *slogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *slogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	if ent.LoggerName != "" {
		attrs = append(attrs, slog.String("component", ent.LoggerName))
	}
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	level := slogLevel(ent.Level)
	if level == slog.LevelWarn {
		key := ent.Message
		for _, k := range []string{"remote-peer-id", "remote-member-id", "peer-id", "address"} {
			if v, ok := enc.Fields[k]; ok {
				key += fmt.Sprint(" ", v)
			}
		}
		if !c.seen.fresh(key, time.Now()) {
			level = slog.LevelDebug
		}
	}
	c.l.LogAttrs(context.Background(), level, "etcd: "+ent.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
