package lbbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"
)

// loadEnv carries a LoadConfig (JSON) to a re-executed test binary, which
// then runs loadMain instead of the tests.
const loadEnv = "SHOAL_LBBENCH_LOAD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(loadEnv); cfg != "" {
		os.Exit(loadMain(cfg))
	}
	os.Exit(m.Run())
}

// loadMain runs Load as described by cfg (JSON) and prints its Result as
// JSON on stdout.
func loadMain(cfg string) int {
	var c LoadConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintf(os.Stderr, "load generator: bad config: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Duration+time.Minute)
	defer cancel()
	r, err := Load(ctx, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load generator: %v\n", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "load generator: %v\n", err)
		return 1
	}
	return 0
}
