package fake_test

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		d := fake.New(fake.TestAppImage("localhost/testapp:v1"), fake.GRPCHealthImage("localhost/grpchealth:v1"))
		return &runtimetest.Harness{
			Open: func(t *testing.T) runtime.Runtime {
				m, err := lifecycle.New(lifecycle.Config{Driver: d, Backoff: lifecycle.Backoff{Base: 100 * time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				return m
			},
			Image:        "localhost/testapp:v1",
			MissingImage: "localhost/missing:v1",
			GRPCImage:    "localhost/grpchealth:v1",
		}
	})
}
