// go-http-client: the Go reference for bench/http-client-compare: net/http's Client through its pooled
// Transport, as a Go user would write a load loop: --conns goroutines, each sending GETs one after
// another and reading every body to the end (so the connection is reused). Prints requests done after
// the warm-up, over the measured seconds, as one line: "requests N seconds S".
//   GOMAXPROCS=1 go-http-client -url http://127.0.0.1:8080/plaintext -conns 50 -duration 4 -warmup 1
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/plaintext", "URL to GET")
	conns := flag.Int("conns", 50, "concurrent requests (and pooled connections)")
	duration := flag.Float64("duration", 4, "measured seconds")
	warmup := flag.Float64("warmup", 1, "seconds before measuring")
	flag.Parse()
	tr := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	start := time.Now()
	measured := start.Add(time.Duration(*warmup * float64(time.Second)))
	end := measured.Add(time.Duration(*duration * float64(time.Second)))
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				sent := time.Now()
				if !sent.Before(end) {
					return
				}
				res, err := client.Get(*url)
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if now := time.Now(); !sent.Before(measured) && now.Before(end) {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("requests %d seconds %.3f failed %d\n", done.Load(), *duration, failed.Load())
	if done.Load() == 0 {
		os.Exit(1)
	}
}
