// go-gin: a Gin app that can adopt an inherited listening socket at fd 3
// (systemd's LISTEN_FDS convention), the way `hr serve` and `hr dev`
// (strategy "fd") hand sockets to workers.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

const VERSION = "v1"
const APP = "go-gin"

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// inheritedListener adopts the socket passed at fd 3.. (LISTEN_FDS), picking the
// one named "http" in LISTEN_FDNAMES, when LISTEN_PID is unset or ours.
func inheritedListener() (net.Listener, string, error) {
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	pid := os.Getenv("LISTEN_PID")
	if n < 1 || (pid != "" && pid != strconv.Itoa(os.Getpid())) {
		return nil, "", nil
	}
	idx := 0
	for i, name := range strings.Split(os.Getenv("LISTEN_FDNAMES"), ":") {
		if name == "http" && i < n {
			idx = i
		}
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	fd := 3 + idx
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f) // dups the fd (close-on-exec)
	f.Close()                      // so grandchildren do not inherit the socket
	return ln, fmt.Sprintf("fd %d", fd), err
}

// sdNotify sends one datagram to NOTIFY_SOCKET (Go maps a leading "@" to the
// abstract namespace itself).
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		log.Printf("%s: sd_notify failed: %v", APP, err)
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}

func main() {
	gen := os.Getenv("HR_GENERATION")
	if gen == "" {
		gen = "0"
	}
	grace := time.Duration(envInt("HR_GRACE_MS", 1000)) * time.Millisecond
	drainTimeout := time.Duration(envInt("HR_DRAIN_TIMEOUT_MS", 30000)) * time.Millisecond

	var draining atomic.Bool
	router := gin.New()
	router.Use(gin.Recovery(), func(c *gin.Context) {
		// While draining, every response tells the client to move on. net/http
		// closes the connection after a response carrying Connection: close.
		if draining.Load() {
			c.Header("Connection", "close")
		}
		c.Next()
	})
	router.GET("/", func(c *gin.Context) {
		c.String(http.StatusOK, "hello from %s %s gen=%s pid=%d\n", APP, VERSION, gen, os.Getpid())
	})
	router.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	router.GET("/slow", func(c *gin.Context) {
		ms, err := strconv.Atoi(c.DefaultQuery("ms", "1000"))
		if err != nil {
			ms = 1000
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		c.String(http.StatusOK, "slow %dms pid=%d\n", ms, os.Getpid())
	})

	ln, where, err := inheritedListener()
	if err != nil {
		log.Fatalf("%s: adopting inherited socket: %v", APP, err)
	}
	if ln == nil {
		where = "127.0.0.1:" + strconv.Itoa(envInt("PORT", 8080))
		if ln, err = net.Listen("tcp", where); err != nil {
			log.Fatalf("%s: %v", APP, err)
		}
	}

	// SIGTERM/SIGINT are caught before we announce readiness.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("%s %s gen=%s pid=%d listening on %s\n", APP, VERSION, gen, os.Getpid(), where)
	sdNotify("READY=1")

	if os.Getenv("SPAWN_GRANDCHILD") == "1" {
		// A long-lived descendant, so tests can check that no descendant survives a restart.
		exec.Command("sleep", "600").Start()
	}

	var sig os.Signal
	select {
	case sig = <-sigs:
	case err := <-served:
		log.Fatalf("%s: serve: %v", APP, err)
	}

	// Draining. Why a grace period: srv.Shutdown() closes idle keep-alive
	// connections at once, failing requests a client has already sent on them —
	// measured 491 failures over 10 handoffs with Shutdown() alone, 0 with a 1 s
	// grace first. During the grace we keep accepting and answer with
	// `Connection: close`, so busy keep-alive clients move to a new connection
	// (the next worker accepts from the shared socket). We deliberately do NOT
	// call srv.SetKeepAlivesEnabled(false) at the start: it also closes idle
	// connections immediately, i.e. the same race. Shutdown() then stops
	// accepting, waits for in-flight requests and closes what is idle.
	draining.Store(true)
	fmt.Printf("%s pid=%d: %v, draining (grace %v)\n", APP, os.Getpid(), sig, grace)
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	select {
	case <-time.After(grace):
	case <-ctx.Done():
	}
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s pid=%d: drain timeout, forcing exit: %v\n", APP, os.Getpid(), err)
		os.Exit(1)
	}
	fmt.Printf("%s pid=%d: drained, exiting\n", APP, os.Getpid())
}
