// Command grpchealth is a gRPC server with the standard health service, for the tests of gRPC
// probes; imagetest.GRPCHealthImage packs it into an image.
//
//	grpchealth PORT [SERVICE=STATUS...]  serve grpc.health.v1.Health on PORT: the server as a whole
//	                                     ("" service) is SERVING unless "=STATUS" sets it, each
//	                                     SERVICE has its STATUS (SERVING, NOT_SERVING, ...); other
//	                                     services are unknown (NOT_FOUND)
//	grpchealth PORT unimplemented        serve gRPC on PORT without the health service
//
// It exits on SIGTERM, as a well-behaved workload does.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grpchealth PORT [SERVICE=STATUS...] | PORT unimplemented")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()
	srv := grpc.NewServer()
	if len(os.Args) < 3 || os.Args[2] != "unimplemented" {
		hs := health.NewServer()
		for _, a := range os.Args[2:] {
			svc, st, _ := strings.Cut(a, "=")
			v, ok := healthpb.HealthCheckResponse_ServingStatus_value[st]
			if !ok {
				fmt.Fprintf(os.Stderr, "grpchealth: unknown status %q\n", st)
				os.Exit(2)
			}
			hs.SetServingStatus(svc, healthpb.HealthCheckResponse_ServingStatus(v))
		}
		healthpb.RegisterHealthServer(srv, hs)
	}
	ln, err := net.Listen("tcp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpchealth:", err)
		os.Exit(1)
	}
	fmt.Println("serving gRPC on", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "grpchealth:", err)
		os.Exit(1)
	}
}
