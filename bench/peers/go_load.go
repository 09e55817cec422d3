// go-load: a goroutine-per-connection Go echo client, the yardstick for corio-load's own efficiency
// (messages per client CPU-second). Each connection writes -size bytes and reads them back, in a loop.
//   go-load -target 127.0.0.1:7000 -conns 50 -size 64 -duration 5s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "127.0.0.1:7000", "echo server")
	conns := flag.Int("conns", 50, "connections")
	size := flag.Int("size", 64, "message size")
	duration := flag.Duration("duration", 5*time.Second, "how long")
	flag.Parse()
	var total, failed int64
	end := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", *target)
			if err != nil {
				atomic.AddInt64(&failed, 1)
				return
			}
			defer c.Close()
			out := bytes.Repeat([]byte{'x'}, *size)
			in := make([]byte, *size)
			n := int64(0)
			for time.Now().Before(end) {
				if _, err := c.Write(out); err != nil {
					atomic.AddInt64(&failed, 1)
					return
				}
				if _, err := io.ReadFull(c, in); err != nil {
					atomic.AddInt64(&failed, 1)
					return
				}
				n++
			}
			atomic.AddInt64(&total, n)
		}()
	}
	wg.Wait()
	fmt.Printf("{\"requests\":%d,\"requests_per_s\":%.1f,\"errors\":%d}\n", total, float64(total)/duration.Seconds(), failed)
	if total == 0 {
		os.Exit(1)
	}
}
