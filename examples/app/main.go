// Command app is the example web server of examples/hello: it answers every request with a
// greeting and the name of the pod that served it, so that a client can see a Service spread
// requests over the replicas.
//
//	app [serve] [PORT]    listen on PORT (default $PORT, then 8080)
//	app lookup NAME       print the addresses NAME resolves to, through the pod's resolv.conf
//	app get URL           GET URL and print the body (exit 1 unless the answer is 200 OK)
//	app poll URL          GET URL every 200 ms forever, over one kept-alive connection and over a
//	                      new connection each time, printing one line per request
//	app echo TEXT...      print TEXT and exit 0, as a Job's pod does its work and ends
//	app exit CODE         exit with CODE at once
//	app sleep SECONDS     wait, then exit 0
//	app write FILE TEXT   write TEXT to FILE and exit 0, as a job that seeds a volume does
//	app cat FILE          print FILE (exit 1 if it cannot be read), as a probe that a volume holds it
//	app burn [PORT]       serve as above while keeping one CPU busy, as a loaded pod does for autoscaling
//
// GET /healthz answers "ok" for probes. SIGTERM stops it gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 2 && args[0] == "lookup" {
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
		return
	}
	if len(args) > 0 && args[0] == "echo" {
		fmt.Println(strings.Join(args[1:], " "))
		return
	}
	if len(args) == 2 && args[0] == "exit" {
		var code int
		if _, err := fmt.Sscan(args[1], &code); err != nil {
			fmt.Fprintln(os.Stderr, "exit: not a number:", args[1])
			os.Exit(2)
		}
		os.Exit(code)
	}
	if len(args) == 2 && args[0] == "sleep" {
		d, err := time.ParseDuration(args[1] + "s")
		if err != nil {
			fmt.Fprintln(os.Stderr, "sleep: not a number of seconds:", args[1])
			os.Exit(2)
		}
		time.Sleep(d)
		return
	}
	if len(args) == 3 && args[0] == "write" {
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(args) == 2 && args[0] == "cat" {
		b, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		return
	}
	if len(args) == 2 && args[0] == "poll" {
		poll(args[1])
		return
	}
	if len(args) == 2 && args[0] == "get" {
		if err := get(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(args) > 0 && args[0] == "burn" {
		go burn()
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	port := os.Getenv("PORT")
	if len(args) > 0 {
		port = args[0]
	}
	if port == "" {
		port = "8080"
	}
	host, _ := os.Hostname()
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s from %s\n", greeting, host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("%s serving on :%s", host, port)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// burn keeps one CPU busy until the process ends.
func burn() {
	for x := uint64(1); ; x = x*6364136223846793005 + 1442695040888963407 {
		if x == 0 {
			runtime.Gosched()
		}
	}
}

// poll GETs url forever over a kept-alive connection and over fresh ones, so that a test can see
// both kinds of connection keep working while something changes underneath.
func poll(url string) {
	keep := &http.Client{Timeout: 2 * time.Second}
	fresh := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; ; i++ {
		for _, c := range []struct {
			name   string
			client *http.Client
		}{{"keepalive", keep}, {"fresh", fresh}} {
			status := "ok"
			resp, err := c.client.Get(url)
			if err != nil {
				status = "error " + err.Error()
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					status = "error " + resp.Status
				}
			}
			fmt.Printf("%s %s %d %s\n", time.Now().UTC().Format(time.RFC3339Nano), c.name, i, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get prints the body of a GET of url.
func get(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s: %s", url, resp.Status, body)
	}
	_, err = os.Stdout.Write(body)
	return err
}
